"""Validation that costs less than training: the study's fixed sample of validation users for the pruning
reports, and the evaluation cadence, both chosen from the data and stored with the study.

A pruning decision needs a ranking of trials, not their exact values, so the steps a trial reports on the way
(every ``every`` steps) are evaluated on a seeded sample of the validation users: the same users for every
trial and step of a study. The trial's value and its ``valid_se`` are then computed on ALL validation users
at the best step (the best chosen by the sampled curve), so trial values and the one-standard-error rule stay
exact. Below :data:`ALL_USERS_UP_TO` validation users the sample is all of them and nothing changes.

The rule (from the data, measured on a generated 1M log of 40k users x 4k items, 2 cores):

- Sample size: every validation user up to 20,000; above, a tenth of them, at least 20,000 and at most
  50,000. A mean NDCG over 20k users has a standard error under 0.0035 (per-user values lie in [0, 1]), and
  two trials ranked on the same users differ by far less noise than that, since their errors are paired; the
  tenth keeps a very large log's sample a fair cross-section of its users, the cap bounds its cost.
- Cadence: ``--eval-every``; else every 5th BPR epoch (on the 1M log an epoch takes 0.6-1.3 s, a pass over
  20k users 0.85 s: five epochs between passes already outweigh a pass); ALS every iteration, unless a pass
  costs more than :data:`ALS_PASSES_PER_STEP` iterations: then every ``ceil(S x I / (4 x 64 x nnz))``. A pass
  scores ``S x I`` cells (sample x items); an iteration does roughly 64 times that work per train interaction
  (``nnz``) at usual factor counts. ALS curves peak early and sharply (step 3 of 15 on the 1M log), and the
  model is restored to the best evaluated step: every 2nd iteration there cost the best trial 0.1506 ->
  0.1370 NDCG@10. With the sample a pass costs about 2 iterations on the 1M log and (estimated) 1 at the
  ML-20M shape, so both evaluate every iteration.

The creating worker writes :data:`STUDY_ATTR` (size, seed, cadence, and a digest of the users) under the
study's lock; every later worker and every resume reads it, so the rule may change in a later version without
changing a running study. The users themselves are drawn again from the size, the seed and the split (which
the study's ``data_version_hash`` pins), and the digest proves it.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.prepare import Prepared

#: Every validation user is evaluated at every step up to this many.
ALL_USERS_UP_TO = 20_000
#: Above it, this share of the validation users ...
SAMPLE_FRACTION = 0.1
#: ... and at most this many.
SAMPLE_CAP = 50_000
#: Work of one ALS iteration per train interaction, relative to one scored cell of a validation pass.
ALS_WORK_PER_CELL = 64
#: ALS evaluates every iteration while a pass costs at most this many iterations.
ALS_PASSES_PER_STEP = 4
#: The study attribute holding the sample.
STUDY_ATTR = "validation_sample"
#: Overrides the size rule for a new study: a number of users, or ``all``.
SAMPLE_ENV = "CFTUNE_VALID_SAMPLE"


@dataclass(frozen=True)
class ValidationSample:
    """The study's intermediate-step users: ``size`` of its ``of`` validation users drawn with ``seed``, and
    the default evaluation cadence ``every`` (``--eval-every`` overrides it)."""

    size: int
    of: int
    seed: int
    every: int
    digest: str = ""

    @property
    def sampled(self) -> bool:
        return self.size < self.of

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> ValidationSample:
        return cls(**{k: attr[k] for k in cls.__dataclass_fields__ if k in attr})


def sample_size(n_valid: int, asked: int | None = None) -> int:
    """Users evaluated at intermediate steps: ``asked`` (0: all), else the rule of the module docstring."""
    if asked is not None:
        return n_valid if asked <= 0 else min(asked, n_valid)
    if n_valid <= ALL_USERS_UP_TO:
        return n_valid
    return min(max(ALL_USERS_UP_TO, math.ceil(SAMPLE_FRACTION * n_valid)), SAMPLE_CAP, n_valid)


def asked_size(asked: int | None = None) -> int | None:
    """The size a new study is asked for: ``asked``, else ``$CFTUNE_VALID_SAMPLE`` (a count or ``all``)."""
    if asked is not None:
        return asked
    text = os.environ.get(SAMPLE_ENV, "").strip()
    if not text:
        return None
    if text.lower() == "all":
        return 0
    if not text.isdigit():
        raise ConfigError(f"${SAMPLE_ENV} must be a number of users or 'all', but got {text!r}")
    return int(text)


def default_every(model: str, prepared: Prepared, size: int, of: int) -> int:
    """Steps between validations unless ``--eval-every`` says: see the module docstring."""
    if model != "als":
        return 5
    if size >= of:
        return 1
    s = prepared.split
    cells = size * s.valid.n_items
    iterations = cells / (ALS_WORK_PER_CELL * max(1, len(s.train)))  # what one pass costs
    return max(1, math.ceil(iterations / ALS_PASSES_PER_STEP))


def validation_users(prepared: Prepared) -> np.ndarray:
    """Every validation user (one with at least one validation item), in index order."""
    return np.flatnonzero(np.diff(prepared.split.valid_truth().indptr) > 0)


def draw(prepared: Prepared, size: int, seed: int) -> np.ndarray:
    """``size`` validation users drawn without replacement with ``seed``, in index order: the same users
    for the same split, size and seed."""
    users = validation_users(prepared)
    if size >= len(users):
        return users
    rng = np.random.default_rng(np.random.SeedSequence([seed, len(users), size]))
    return np.sort(rng.choice(users, size=size, replace=False))


def digest(users: np.ndarray) -> str:
    """A short fingerprint of a set of users, to prove that every worker evaluates the same ones."""
    return hashlib.sha256(np.asarray(users, dtype=np.int64).tobytes()).hexdigest()[:16]


def new_sample(model: str, prepared: Prepared, seed: int, asked: int | None = None) -> ValidationSample:
    """The sample a new study gets (its creating worker writes it)."""
    of = len(validation_users(prepared))
    size = sample_size(of, asked_size(asked))
    every = default_every(model, prepared, size, of)
    return ValidationSample(size, of, seed, every, digest(draw(prepared, size, seed)))


def study_sample(
    study: Any, model: str, prepared: Prepared, seed: int, *, new: bool, asked: int | None = None
) -> ValidationSample:
    """The study's sample: read from its attributes; chosen and written by the worker that creates the study
    (``new``, under the study's lock). A study from before samples existed evaluated every user at every step
    (ALS every iteration, BPR every 5th epoch): so it goes on."""
    attr = study.user_attrs.get(STUDY_ATTR)
    if attr is None:
        if new:
            sample = new_sample(model, prepared, seed, asked)
        else:
            users = validation_users(prepared)
            sample = ValidationSample(len(users), len(users), seed, 1 if model == "als" else 5, digest(users))
        study.set_user_attr(STUDY_ATTR, sample.to_attr())
        return sample
    sample = ValidationSample.from_attr(attr)
    if digest(draw(prepared, sample.size, sample.seed)) != sample.digest:
        raise ConfigError(
            f"study {study.study_name!r}: its validation users differ from this split's; resuming it would "
            "mix incomparable trials. Repeat the original data options, or choose another --study-name"
        )
    return sample


def sample_users(prepared: Prepared, sample: ValidationSample | None) -> np.ndarray | None:
    """The users an intermediate step is evaluated on; None for all of them (the evaluator's own default)."""
    if sample is None or not sample.sampled:
        return None
    return draw(prepared, sample.size, sample.seed)
