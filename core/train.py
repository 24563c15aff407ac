"""One training run, end to end, without Optuna or MLflow: ``python -m core.train``.

load -> :class:`Interactions` -> segment -> split -> fit on train (validation callback) -> refit on
train + validation -> evaluate once on test against popularity (bootstrap CIs) -> score_range -> run folder.

The library functions here (:func:`prepare`, :func:`fit_model`, :func:`validate`, :func:`final_test`,
:func:`save`) are what ``search/`` calls for each trial and for the champion refit.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import inspect
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp

from core.artifacts import RunFolderExists, save_run
from core.baselines import PopularityScorer
from core.bpr.advanced import CURRICULA, OPTIMIZERS, SCHEDULERS, FlatTorchBPR, negative_sources
from core.callbacks import Callback, Snapshot, TrainingHistory, ValidationMonitor
from core.confidence import CONFIDENCE_MODES, ConfidenceMode, confidence, default_mode
from core.errors import CftuneError, ConfigError
from core.evaluate import Comparison, EvalResult, ScoreRange, compare, evaluate, evaluate_scorer, score_range
from core.interactions import Interactions
from core.split import (
    SPLIT_STRATEGIES,
    Segmentation,
    Split,
    SplitStrategy,
    hard_negatives,
    segment_users,
    split,
    split_from_parts,
)

ModelName = Literal["als", "bpr"]
MODELS: tuple[str, ...] = ("als", "bpr")
DEFAULT_KS: tuple[int, ...] = (10, 20)
#: ALS's pipeline parameters (the confidence of a cell, which interactions it learns from).
ALS_PIPELINE_PARAMS = ("confidence", "positives")
#: BPR's pipeline parameter: which trainer fits it (:data:`TRAINERS`).
BPR_PIPELINE_PARAMS = ("trainer",)
#: Parameters the pipeline consumes itself; everything else goes to the model's constructor.
PIPELINE_PARAMS = (*ALS_PIPELINE_PARAMS, *BPR_PIPELINE_PARAMS)
Positives = Literal["all", "liked"]
#: What ALS trains on: ``all`` interactions (a 1-star rating is still a purchase, weighted by its
#: confidence), or the ``liked`` ones only, BPR's positives (:meth:`Interactions.positive_mask`: rating >= the
#: positive threshold, 4 by default; every play of count data). Held-out truth is the liked items either way.
POSITIVES: tuple[str, ...] = ("all", "liked")
#: BPR's trainers: ``kernel`` (:class:`core.bpr.BPR`, the numba SGD kernel, the default) or ``torch``
#: (:class:`core.bpr.advanced.FlatTorchBPR`: mini-batches, adaptive optimizers, schedules, dropout, mixed
#: negative sources).
TRAINERS: tuple[str, ...] = ("kernel", "torch")
#: The allowed values of each pipeline parameter.
PIPELINE_CHOICES: dict[str, tuple[str, ...]] = {
    "confidence": CONFIDENCE_MODES,
    "positives": POSITIVES,
    "trainer": TRAINERS,
}
#: What the data-driven BPR settings (:func:`core.defaults.bpr_defaults`) pass on to the torch trainer: the
#: data's shape, the model's form and the per-triplet L2 (the same penalty in both trainers: each row read by
#: a triplet shrinks once per read). The kernel's SGD learning rate and its step decay mean nothing to an
#: adaptive optimizer.
TORCH_FROM_DEFAULTS: tuple[str, ...] = (
    "factors",
    "epochs",
    "samples_per_epoch",
    "hard_ratio",
    "item_bias",
    "regularization",
)


# ---------------------------------------------------------------------------------------------- preparing
@dataclass(frozen=True)
class Prepared:
    """Data ready for any number of fits: the split plus what every report needs to say about it."""

    data: Interactions
    segmentation: Segmentation | None
    split: Split
    positive_threshold: float
    data_version_hash: str
    #: What every fit on train derives from it alike (training matrices, hard negatives), computed once: a
    #: search fits the same train split hundreds of times.
    derived: dict[tuple[object, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def on_train(self, key: tuple[object, ...], make: Callable[[], sp.csr_matrix]) -> sp.csr_matrix:
        """``make()`` for the train split, computed once per ``key``; each caller gets its own copy."""
        if key not in self.derived:
            self.derived[key] = make()
        return self.derived[key].copy()

    @property
    def synthetic(self) -> bool:
        return bool(self.data.meta.get("synthetic"))

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"data": self.data.summary(), "split": self.split.describe()}
        if self.segmentation is not None:
            out["segmentation"] = self.segmentation.to_dict()
        out["synthetic"] = self.synthetic
        return out


def _split_hash(parts: Sequence[Interactions]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.data_version_hash().encode() if len(part) else b"-")
    return h.hexdigest()[:16]


def prepare(
    data: Interactions,
    *,
    split_strategy: SplitStrategy = "auto",
    valid_frac: float = 0.1,
    test_frac: float = 0.2,
    positive_threshold: float = 4.0,
    min_interactions: int = 2,
    min_positive: int = 1,
    seed: int = 42,
) -> Prepared:
    """Segment users and split. ``data_version_hash`` identifies the data AND the split (what a champion
    comparison must hold fixed)."""
    seg = segment_users(
        data,
        min_interactions=min_interactions,
        min_positive=min_positive,
        positive_threshold=positive_threshold,
    )
    parts = split(
        seg.trainable,
        split_strategy,
        valid_frac=valid_frac,
        test_frac=test_frac,
        positive_threshold=positive_threshold,
        seed=seed,
    )
    return Prepared(data, seg, parts, positive_threshold, _split_hash([parts.train, parts.valid, parts.test]))


def prepare_given(
    train: Interactions, valid: Interactions, test: Interactions, *, positive_threshold: float = 4.0
) -> Prepared:
    """The user's own ``--train/--valid/--test`` files: no re-splitting, no users dropped."""
    parts = split_from_parts(train, valid, test, positive_threshold=positive_threshold)
    return Prepared(
        train, None, parts, positive_threshold, _split_hash([parts.train, parts.valid, parts.test])
    )


# ---------------------------------------------------------------------------------------------- fitting
def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model constructor params, pipeline params)."""
    model = {k: v for k, v in params.items() if k not in PIPELINE_PARAMS}
    pipeline = {k: v for k, v in params.items() if k in PIPELINE_PARAMS}
    return model, pipeline


def make_model(model: str, params: dict[str, Any]) -> Any:
    """An unfitted ALS or BPR estimator from constructor params (pipeline params are read and dropped: BPR's
    ``trainer`` picks :class:`core.bpr.BPR` or :class:`core.bpr.advanced.FlatTorchBPR`)."""
    if model == "als":
        from core.als import ALS

        return ALS(**split_params(params)[0])
    if model == "bpr":
        trainer = check_bpr_params(params)
        ctor = split_params(params)[0]
        if trainer == "torch":
            return FlatTorchBPR(**ctor)
        from core.bpr import BPR

        return BPR(**ctor)
    raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")


def _ctor_names(ctor: Callable[..., None]) -> frozenset[str]:
    return frozenset(name for name in inspect.signature(ctor).parameters if name != "self")


def _trainer_ctor(trainer: str) -> Callable[..., None]:
    if trainer == "torch":
        return FlatTorchBPR.__init__
    from core.bpr import BPR

    return BPR.__init__


def trainer_params(trainer: str) -> frozenset[str]:
    """The constructor parameters of a BPR trainer: :class:`core.bpr.BPR`'s (``kernel``), whatever they are
    when this runs, or :class:`core.bpr.advanced.FlatTorchBPR`'s (``torch``)."""
    return _ctor_names(_trainer_ctor(trainer))


def trainer_defaults(trainer: str) -> dict[str, Any]:
    """What each constructor parameter of a BPR trainer (:func:`trainer_params`) is when not given."""
    return {
        name: p.default
        for name, p in inspect.signature(_trainer_ctor(trainer)).parameters.items()
        if name != "self" and p.default is not inspect.Parameter.empty
    }


def check_bpr_params(params: Mapping[str, Any]) -> str:
    """BPR's trainer (``trainer``, default ``kernel``), after checking that every parameter given is one that
    trainer takes: a parameter of the other trainer only is a one-line :class:`ConfigError` naming both."""
    trainer = params.get("trainer") or "kernel"
    if trainer not in TRAINERS:
        raise ConfigError(f"trainer must be one of {TRAINERS}, but got trainer={trainer!r}.")
    other = "torch" if trainer == "kernel" else "kernel"
    own, theirs = trainer_params(trainer), trainer_params(other)
    for name in params:
        if name in own or name not in theirs:
            continue
        why = ""
        if trainer == "kernel" and (name.endswith("_ratio") or name.startswith("curriculum")):
            why = (
                " (the kernel draws its non-uniform negatives from one hard-negative row per user at one "
                "hard_ratio: merged sources would be weighted by their row sizes, not by their own ratios, "
                "and the mix could not change over the epochs)"
            )
        raise ConfigError(f"{name} applies to trainer={other} only, but got trainer={trainer}{why}")
    return trainer


def training_matrix(
    part: Interactions,
    model: str,
    *,
    confidence_mode: ConfidenceMode | None,
    positive_threshold: float,
    positives: Positives | None = None,
) -> sp.csr_matrix:
    """What the model learns from, by ``positives`` (:data:`POSITIVES`; default: ALS all, BPR liked). ALS: the
    confidence values of those interactions; BPR: ones."""
    positives = positives or ("all" if model == "als" else "liked")
    kept = part if positives == "all" else part.subset(part.positive_mask(positive_threshold))
    if model == "als":
        return kept.to_csr(confidence(kept, confidence_mode))
    m = kept.to_csr()
    m.data[:] = 1
    return m


def fit_model(
    prepared: Prepared,
    model: str,
    params: dict[str, Any],
    *,
    part: Interactions | None = None,
    callback: Callback | list[Callback] | None = None,
    show_progress: bool = False,
    fit_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Fit ``model`` with ``params`` on ``part`` (default: train). BPR's ``trainer=torch`` gets its negative
    sources built from ``part`` (:func:`core.bpr.advanced.negative_sources`; on train, once per split)."""
    part = prepared.split.train if part is None else part
    _, pipeline_params = split_params(params)
    for name, value in pipeline_params.items():
        if model == "als" and name not in ALS_PIPELINE_PARAMS:
            raise ConfigError(f"{name} applies to BPR only, but got model=als")
        if value is not None and value not in PIPELINE_CHOICES[name]:  # None: the model's default
            raise ConfigError(f"{name} must be one of {PIPELINE_CHOICES[name]}, but got {name}={value!r}.")
    estimator = make_model(model, {**params, "show_progress": show_progress})
    mode, positives = pipeline_params.get("confidence"), pipeline_params.get("positives")

    def matrix_of() -> sp.csr_matrix:
        threshold = prepared.positive_threshold
        return training_matrix(
            part, model, confidence_mode=mode, positive_threshold=threshold, positives=positives
        )

    def hard_of() -> sp.csr_matrix:
        return hard_negatives(part, positive_threshold=prepared.positive_threshold)

    on_train = part is prepared.split.train
    matrix = prepared.on_train(("matrix", model, mode, positives), matrix_of) if on_train else matrix_of()
    kwargs = dict(fit_kwargs or {})
    if isinstance(estimator, FlatTorchBPR):
        if kwargs.get("item_factors_init") is not None:
            raise ConfigError("item factors from text (--init-items text) need trainer=kernel")
        kwargs.pop("item_factors_init", None)
        if "sources" not in kwargs:
            kwargs["sources"] = negative_sources(
                part,
                matrix,
                estimator,
                positive_threshold=prepared.positive_threshold,
                cached=(lambda key, make: prepared.on_train((*key, mode, positives), make))
                if on_train
                else None,
            )
    elif model == "bpr" and "hard_negatives" not in kwargs and getattr(estimator, "hard_ratio", 0) > 0:
        kwargs["hard_negatives"] = prepared.on_train(("hard",), hard_of) if on_train else hard_of()
    fitted = estimator.fit(matrix, callback=callback, **kwargs)
    fitted.user_factors_ = average_user_for_empty_rows(fitted.user_factors_, matrix)
    return fitted


def average_user_for_empty_rows(user_factors: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """Users with nothing to learn from (no liked item in BPR's matrix, say: only 1-3 star ratings) get the
    average user's factors, which rank by what the model learned of popularity; left alone they would keep
    BPR's random initial factors (a random ranking) or ALS's zeros (all ties)."""
    empty = np.diff(matrix.indptr) == 0
    if not empty.any() or empty.all():
        return user_factors
    out = np.array(user_factors, copy=True)
    out[empty] = user_factors[~empty].mean(axis=0)
    return out


def trained_to(fitted: Any, model: str, snapshot: Snapshot) -> Any:
    """``fitted`` as it would have ended had it been trained for ``snapshot.step`` steps only.

    Exact because training is a prefix: a fit of N steps runs the same first steps as a shorter fit of the
    same configuration and seed (ALS is deterministic; BPR's steps do not depend on the total either). The
    copy carries the snapshot's factors and the history up to that step, so its artifacts are those of a
    model trained alone. The torch trainer's learning-rate curve depends on the total (cosine, linear and
    warmup_cosine reach ``min_lr`` in the last epoch), so the copy keeps the longer run's curve length as its
    ``schedule_epochs`` (:func:`stopped_at`): exactly a fit of those settings."""
    step = snapshot.step
    out = copy.copy(fitted)
    if isinstance(fitted, FlatTorchBPR) and fitted.schedule_epochs is None:
        out.schedule_epochs = fitted.epochs  # the curve it followed (stopped_at)
    setattr(out, steps_param(model), step)
    out.user_factors_, out.item_factors_ = snapshot.user_factors, snapshot.item_factors
    out.best_epoch_ = snapshot.best_step
    history: TrainingHistory | None = getattr(fitted, "history_", None)
    if history is not None:
        kept = [i for i, s in enumerate(history.steps) if s <= step]
        val = [i for i, s in enumerate(history.val_steps) if s <= step]
        out.history_ = TrainingHistory(
            steps=[history.steps[i] for i in kept],
            losses=[history.losses[i] for i in kept],
            learning_rates=[history.learning_rates[i] for i in kept],
            durations=[history.durations[i] for i in kept],
            val_steps=[history.val_steps[i] for i in val],
            val_metrics={name: [values[i] for i in val] for name, values in history.val_metrics.items()},
        )
        if hasattr(fitted, "fit_seconds_"):
            out.fit_seconds_ = float(sum(out.history_.durations))
    if hasattr(fitted, "n_iterations_"):
        out.n_iterations_ = step
    if hasattr(fitted, "stopped_early_"):
        out.stopped_early_ = False if isinstance(fitted.stopped_early_, bool) else None
    return out


def validate(prepared: Prepared, fitted: Any, *, ks: Sequence[int] = DEFAULT_KS) -> EvalResult:
    """Validation metrics: train items excluded."""
    s = prepared.split
    return evaluate(fitted.user_factors_, fitted.item_factors_, s.valid_truth(), s.valid_exclude(), ks=ks)


def metric_k(metric: str) -> int:
    """``ndcg@10`` -> 10; a clear error for a metric the evaluator does not compute."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "recall", "hitrate") or not k.isdigit() or int(k) < 1:
        raise ConfigError(f"metric must look like ndcg@10, recall@20 or hitrate@10, but got {metric!r}")
    return int(k)


def validation_monitor(
    prepared: Prepared,
    *,
    metric: str = "ndcg@10",
    every: int = 1,
    patience: int | None = None,
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
    restore_best: bool | None = None,
    last_step: int | None = None,
    keep_at: Collection[int] = (),
) -> ValidationMonitor:
    """The per-iteration validation hook: early stopping here, pruning in ``search/``. With ``restore_best``
    (default: when ``patience`` is set) the model ends on its best step's factors, else on its last."""
    s = prepared.split
    return ValidationMonitor(
        s.valid_truth(),
        s.valid_exclude(),
        metric=metric,
        ks=(metric_k(metric),),
        every=every,
        patience=patience,
        restore_best=patience is not None if restore_best is None else restore_best,
        on_evaluate=on_evaluate,
        last_step=last_step,
        keep_at=keep_at,
    )


@dataclass
class FinalResult:
    """The refit model's test numbers against popularity, with paired bootstrap CIs."""

    model: Any
    test: EvalResult
    popularity: EvalResult
    comparison: dict[str, Comparison]
    score_range: ScoreRange
    refit_seconds: float

    def metrics_json(self, valid: EvalResult | dict[str, float] | None) -> dict[str, object]:
        return {
            "valid": valid.to_dict() if isinstance(valid, EvalResult) else dict(valid or {}),
            "test": self.test.to_dict(),
            "baseline": self.popularity.to_dict(),
            "vs_popularity": {name: c.to_dict() for name, c in self.comparison.items()},
        }


def final_test(
    prepared: Prepared,
    model: str,
    params: dict[str, Any],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    show_progress: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    fit_kwargs: dict[str, Any] | None = None,
) -> FinalResult:
    """Refit on train + validation with ``params`` and evaluate ONCE on test (train and validation items
    excluded), next to popularity counted over the same history."""
    s = prepared.split
    t0 = time.perf_counter()
    history = s.train_valid()
    fitted = fit_model(
        prepared, model, params, part=history, show_progress=show_progress, fit_kwargs=fit_kwargs
    )
    refit_seconds = time.perf_counter() - t0
    truth, exclude = s.test_truth(), s.test_exclude()
    test = evaluate(fitted.user_factors_, fitted.item_factors_, truth, exclude, ks=ks)
    popularity = evaluate_scorer(PopularityScorer.fit(exclude), truth, exclude, ks=ks, users=test.users)
    metric_names = [f"{m}@{k}" for k in sorted(ks) for m in ("ndcg", "recall", "hitrate")]
    comparison = compare(test, popularity, metric_names, n_boot=n_boot, seed=seed)
    valid_users = np.flatnonzero(np.diff(s.valid_truth().indptr) > 0)
    sr = score_range(fitted.user_factors_, fitted.item_factors_, valid_users, exclude)
    return FinalResult(fitted, test, popularity, comparison, sr, refit_seconds)


# ---------------------------------------------------------------------------------------------- saving
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_metadata(prepared: Prepared, fitted: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_version_hash": prepared.data_version_hash,
        "data_source": prepared.data.source,
        "synthetic": prepared.synthetic,
        "git_commit": git_commit(),
        "system_info": {
            "platform": platform.platform(),
            "python_version": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 2),
            "cpu_count": os.cpu_count(),
        },
        "training": {
            "fit_seconds": getattr(fitted, "fit_seconds_", None),
            "peak_rss_mb": getattr(fitted, "peak_rss_mb_", None),
            "iterations": getattr(fitted, "n_iterations_", None),
            "stopped_early": getattr(fitted, "stopped_early_", None),
        },
        **prepared.describe(),
        **(extra or {}),
    }


def save(
    out: str | Path,
    prepared: Prepared,
    model: str,
    params: dict[str, Any],
    final: FinalResult,
    valid: EvalResult | dict[str, float] | None,
    *,
    overwrite: bool = False,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    s = prepared.split
    fitted = final.model
    metadata = run_metadata(
        prepared,
        fitted,
        {
            "score_range": final.score_range.to_dict(),
            "refit": "U and V are refit on train + validation; test metrics come from them, "
            "validation metrics from the fit on train only",
            **(extra_metadata or {}),
        },
    )
    history = getattr(fitted, "history_", None)
    return save_run(
        out,
        model=model,
        user_factors=fitted.user_factors_,
        item_factors=fitted.item_factors_,
        params={**fitted.get_params(), **split_params(params)[1]},
        metrics=final.metrics_json(valid),
        metadata=metadata,
        users=s.train.users,
        items=s.train.items,
        train=split_frame(s.train),
        valid=split_frame(s.valid),
        test=split_frame(s.test),
        extra_json={"history.json": history.to_dict()} if history is not None else None,
        overwrite=overwrite,
    )


def split_frame(part: Interactions) -> pd.DataFrame:
    """A split part as stored in a run folder: original ids, rating, time (review texts stay out)."""
    return part.to_frame().drop(columns=["text"], errors="ignore")


# ---------------------------------------------------------------------------------------------- CLI
def load_data(
    data: str | None,
    *,
    fmt: str | None = None,
    seed: int = 42,
) -> Interactions:
    """``--data`` path (format detected) or, without one, the embedded SYNTHETIC dataset."""
    if data is None:
        from core.synthetic import make_synthetic

        return make_synthetic(seed=seed)
    from core.data import load

    return load(data, format=fmt)


@dataclass(frozen=True)
class DataOptions:
    """Where the data comes from and how it is split: what ``core.train`` and ``search.run`` both accept,
    checked and worded the same way."""

    data: str | None = None
    fmt: str | None = None
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    split: str = "auto"
    valid_frac: float = 0.1
    test_frac: float = 0.2
    positive_threshold: float = 4.0
    min_interactions: int = 2
    seed: int = 42

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DataOptions:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})

    def check(self) -> None:
        """Every option checked before any data is read, so a typo costs nothing and names itself."""
        checks = [
            (0 <= self.valid_frac < 1, f"--valid-frac must be in [0, 1), but got {self.valid_frac}"),
            (0 < self.test_frac < 1, f"--test-frac must be in (0, 1), but got {self.test_frac}"),
            (self.valid_frac + self.test_frac < 1, "--valid-frac + --test-frac must be below 1"),
            (self.min_interactions >= 1, f"--min-interactions must be >= 1, but got {self.min_interactions}"),
            (
                self.split in SPLIT_STRATEGIES,
                f"--split must be one of {SPLIT_STRATEGIES}, got {self.split!r}",
            ),
        ]
        given = [self.train, self.valid, self.test]
        checks.append((all(given) or not any(given), "--train, --valid and --test go together"))
        checks.append((not (self.data and all(given)), "--data and --train/--valid/--test are alternatives"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def prepare(self) -> Prepared:
        """Load (format detected, or ``--format``) and split; the user's own three files are kept as given."""
        self.check()
        if self.train and self.valid and self.test:
            from core.data import load

            return prepare_given(
                load(self.train, format=self.fmt),
                load(self.valid, format=self.fmt),
                load(self.test, format=self.fmt),
                positive_threshold=self.positive_threshold,
            )
        return self.split_data(load_data(self.data, fmt=self.fmt, seed=self.seed))

    def split_data(self, data: Interactions) -> Prepared:
        """Segment and split interactions already loaded, with these options."""
        return prepare(
            data,
            split_strategy=self.split,  # type: ignore[arg-type]
            valid_frac=self.valid_frac,
            test_frac=self.test_frac,
            positive_threshold=self.positive_threshold,
            min_interactions=self.min_interactions,
            seed=self.seed,
        )


def dataset_label(prepared: Prepared) -> str:
    """The dataset's short name (``ml-100k``, ``synthetic``, a file's stem), never a file name like ``u``."""
    if prepared.synthetic:
        return "synthetic"
    return str(prepared.data.meta.get("dataset") or "data")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data options of :class:`DataOptions` on a command line."""
    p.add_argument("--data", default=None, help="file or folder; omitted: the embedded SYNTHETIC dataset")
    p.add_argument("--format", dest="fmt", default=None, help="override format detection")
    p.add_argument("--train", default=None, help="your own train file (with --valid and --test)")
    p.add_argument("--valid", default=None)
    p.add_argument("--test", default=None)
    p.add_argument("--split", choices=SPLIT_STRATEGIES, default="auto")
    p.add_argument("--valid-frac", type=float, default=0.1)
    p.add_argument("--test-frac", type=float, default=0.2)
    p.add_argument("--positive-threshold", type=float, default=4.0)
    p.add_argument("--min-interactions", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)


def param_kinds(model: str) -> dict[str, str | None]:
    """Every parameter :func:`fit_model` takes for ``model`` -> ``"int"``, ``"float"`` or ``"bool"``, read
    from the estimator's constructor annotations (None: anything else, e.g. the pipeline's ``confidence``).
    BPR's are both trainers' (:class:`core.bpr.BPR`, :class:`core.bpr.advanced.FlatTorchBPR`) and
    ``trainer``; which of them a configuration may use is :func:`check_bpr_params`'s rule. One source for the
    ``--param`` check and the search-space loader: neither drifts from the estimators."""
    ctors: list[Callable[..., None]]
    extra: tuple[str, ...]
    if model == "als":
        from core.als import ALS

        ctors, extra = [ALS.__init__], ALS_PIPELINE_PARAMS
    elif model == "bpr":
        from core.bpr import BPR

        ctors, extra = [BPR.__init__, FlatTorchBPR.__init__], BPR_PIPELINE_PARAMS
    else:
        raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")
    kinds: dict[str, str | None] = dict.fromkeys(extra)
    for ctor in ctors:
        hints = get_type_hints(ctor)
        for name in inspect.signature(ctor).parameters:
            if name != "self" and name not in kinds:
                types = set(get_args(hints.get(name)) or [hints.get(name)]) - {type(None)}
                kinds[name] = next((k.__name__ for k in (bool, int, float) if types == {k}), None)
    return kinds


def param_choices(model: str) -> dict[str, tuple[str, ...]]:
    """The named values a parameter of ``model`` allows (the others are numbers, bools or free)."""
    if model == "als":
        return {name: PIPELINE_CHOICES[name] for name in ALS_PIPELINE_PARAMS}
    if model == "bpr":
        return {
            "trainer": TRAINERS,
            "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULERS,
            "curriculum": CURRICULA,
        }
    raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")


def kind_mismatch(kind: str | None, value: object) -> str | None:
    """What is wrong with ``value`` for a parameter of ``kind`` (None: nothing). A bool is not a number, an
    int parameter takes an int only, and a number must be finite."""
    if kind is None:
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "expects true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "expects a number"
    if not math.isfinite(value):
        return "expects a finite number"
    if kind == "int" and not isinstance(value, int):
        return "expects a whole number"
    return None


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--param expects key=value, but got {text!r}")
    key, raw = text.split("=", 1)
    value: Any = raw
    for cast in (int, float):
        try:
            value = cast(raw)
            break
        except ValueError:
            continue
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    return key.strip(), value


def parse_params(model: str, texts: Sequence[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` overrides, each checked against what ``model`` accepts: an unknown key or a value
    of the wrong kind is a one-line error naming it, before any data is read."""
    kinds, choices = param_kinds(model), param_choices(model)
    out: dict[str, Any] = {}
    for text in texts:
        key, value = _parse_param(text)
        if key not in kinds:
            raise ConfigError(f"--param {text!r}: {model} has no parameter {key!r}; known: {sorted(kinds)}")
        if kinds[key] == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)  # 1e2 -> 100
        problem = kind_mismatch(kinds[key], value)
        if key in choices and value not in choices[key]:
            problem = f"must be one of {choices[key]}"
        if problem is not None:
            raise ConfigError(f"--param {text!r}: {key} {problem}, but got {value!r}")
        out[key] = value
    if model == "bpr":  # the trainer takes each of them, and its constructor accepts their values
        make_model(model, out)
    return out


def check_preset(model: str, preset: str | None) -> None:
    """``--preset`` names one of the ALS presets (BPR has none)."""
    if preset is None:
        return
    if model != "als":
        raise ConfigError("--preset applies to ALS only")
    from core.als import PRESETS

    if preset not in PRESETS:
        raise ConfigError(f"unknown ALS preset {preset!r}; choose one of {sorted(PRESETS)}")


def format_summary(
    model: str, params: dict[str, Any], prepared: Prepared, valid: EvalResult, final: FinalResult
) -> str:
    lines = []
    src = prepared.data.source
    lines.append(f"data: {src}" + ("  [SYNTHETIC demo data]" if prepared.synthetic else ""))
    if prepared.segmentation is not None:
        seg = prepared.segmentation
        lines.append(
            f"users: {seg.n_users_total} total, {seg.n_trainable} trainable, {seg.n_cold_start} cold-start "
            f"(excluded from CF training)"
        )
    d = prepared.split.describe()
    lines.append(
        f"split: {d['strategy']}  train {d['train_interactions']}  valid {d['valid_interactions']} "
        f"({d['valid_users']} users)  test {d['test_interactions']} ({d['test_users']} users)"
    )
    lines.append(f"model: {model}  params: {params}")
    lines.append(
        f"validation ndcg@10 {valid.metrics['ndcg@10']:.4f}  recall@10 {valid.metrics['recall@10']:.4f}"
    )
    lines.append("test (refit on train+valid) vs popularity, 95% bootstrap CI over users:")
    lines.append(f"  {'metric':<12}{'model':>9}{'popular':>9}{'improvement':>26}{'difference CI':>24}")
    for name, c in final.comparison.items():
        imp = c.improvement_pct
        lines.append(
            f"  {name:<12}{c.model.value:>9.4f}{c.reference.value:>9.4f}"
            f"{f'{imp.value:+.1f}% [{imp.low:+.1f}, {imp.high:+.1f}]':>26}"
            f"{f'[{c.difference.low:+.4f}, {c.difference.high:+.4f}]':>24}"
        )
    sr = final.score_range
    lines.append(f"score_range: p01 {sr.p01:.4f}  p99 {sr.p99:.4f}  ({sr.num_samples} scores)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="als")
    p.add_argument(
        "--preset", default=None, help="ALS preset: default, normalized, high_quality, fast, sparse_data"
    )
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    add_data_arguments(p)
    p.add_argument("--confidence", choices=CONFIDENCE_MODES, default=None)
    p.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS))
    p.add_argument("--patience", type=int, default=None, help="early stopping on validation ndcg@10")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--checkpoint-dir", default=None, help="write training checkpoints here")
    p.add_argument("--checkpoint-every", type=int, default=0, help="checkpoint every N iterations / epochs")
    p.add_argument("--resume", default=None, help="continue from a checkpoint file or folder")
    p.add_argument(
        "--device",
        default=None,
        help="where the torch trainer runs (BPR with --param trainer=torch): cpu (default), cuda or cuda:N",
    )
    p.add_argument(
        "--init-items",
        choices=("random", "text"),
        default="random",
        help="text: start item factors from sentence embeddings of the item titles (needs the text extra)",
    )
    p.add_argument("--text-model", default=None, help="local sentence-transformers folder (default: MiniLM)")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="move an existing --out aside and write anew")
    p.add_argument("--no-progress", action="store_true")
    return p


def default_params(
    model: str,
    preset: str | None,
    prepared: Prepared,
    *,
    confidence_mode: ConfidenceMode | None = None,
    trainer: str | None = None,
) -> dict[str, Any]:
    """An ALS preset by name, or else settings from the shape of the training data (:mod:`core.defaults`:
    users, items, density, liked interactions, mean confidence). ``confidence_mode`` is the ALS confidence the
    fit will use (None: the data's default); alpha is set from its mean. BPR with ``trainer="torch"`` keeps
    :data:`TORCH_FROM_DEFAULTS` of them."""
    if preset is not None:
        if model != "als":
            raise ConfigError("--preset applies to ALS only")
        from core.als import preset_params

        return preset_params(preset)
    if model not in MODELS:
        raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")
    from core.defaults import als_defaults, bpr_defaults, data_stats

    stats = data_stats(
        prepared.split.train, confidence_mode=confidence_mode, positive_threshold=prepared.positive_threshold
    )
    if model == "als":
        return als_defaults(stats)
    params = bpr_defaults(stats)
    if trainer == "torch":  # the data's shape carries over; the rest is the torch trainer's own defaults
        return {name: params[name] for name in TORCH_FROM_DEFAULTS if name in params}
    return params


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (CftuneError, RunFolderExists) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was saved", file=sys.stderr)
        return 130


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every option checked before any data is read, so a typo costs nothing and names itself. Returns the
    ``--param`` overrides, parsed and checked."""
    checks = [
        (all(k >= 1 for k in args.k), f"--k values must be >= 1, but got {args.k}"),
        (args.eval_every >= 1, f"--eval-every must be >= 1, but got {args.eval_every}"),
        (args.patience is None or args.patience >= 1, f"--patience must be >= 1, but got {args.patience}"),
        (args.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, but got {args.checkpoint_every}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    DataOptions.from_args(args).check()
    check_preset(args.model, args.preset)
    overrides = parse_params(args.model, args.param)
    if args.device is not None:
        if args.model != "bpr" or overrides.get("trainer") != "torch":
            raise ConfigError(f"--device {args.device} applies to BPR with --param trainer=torch only")
        overrides = parse_params(args.model, [*args.param, f"device={args.device}"])  # checks the name
    if args.init_items == "text" and overrides.get("trainer") == "torch":
        raise ConfigError(
            "--init-items text needs trainer=kernel (the torch trainer starts from random factors)"
        )
    return overrides


def _main(args: argparse.Namespace) -> int:
    overrides = check_args(args)
    args.k = sorted(set(args.k) | {10})  # ndcg@10 drives validation and the summary
    prepared = DataOptions.from_args(args).prepare()
    if prepared.synthetic:
        print(f"using the embedded SYNTHETIC dataset: {prepared.data.source}", file=sys.stderr)
    params = default_params(
        args.model,
        args.preset,
        prepared,
        confidence_mode=args.confidence or overrides.get("confidence"),
        trainer=overrides.get("trainer"),
    )
    params["random_state"] = args.seed
    params.update(overrides)
    if args.model == "als":
        params["confidence"] = args.confidence or params.get("confidence") or default_mode(prepared.data)
    elif args.confidence is not None:
        raise ConfigError("--confidence applies to ALS only (BPR learns from positives)")
    monitor = validation_monitor(prepared, every=args.eval_every, patience=args.patience)
    init: dict[str, Any] = {}
    if args.init_items == "text":
        from core.text import item_text_embeddings

        init["item_factors_init"] = item_text_embeddings(prepared.split.train, model_dir=args.text_model)
    fit_kwargs = {
        "checkpoint_dir": args.checkpoint_dir,
        "checkpoint_every": args.checkpoint_every,
        "resume_from": args.resume,
        **init,
    }
    fitted = fit_model(
        prepared,
        args.model,
        params,
        callback=monitor,
        show_progress=not args.no_progress,
        fit_kwargs=fit_kwargs,
    )
    if args.patience is not None and monitor.best_step:
        params = stopped_at(args.model, params, monitor.best_step)  # the refit trains as long as the best did
    valid = validate(prepared, fitted, ks=args.k)
    final = final_test(
        prepared, args.model, params, ks=args.k, show_progress=not args.no_progress, fit_kwargs=init
    )
    out = args.out or f"runs/{args.model}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    extra = {"item_init": args.init_items} if args.init_items != "random" else None
    path = save(
        out, prepared, args.model, params, final, valid, overwrite=args.overwrite, extra_metadata=extra
    )
    print(format_summary(args.model, params, prepared, valid, final))
    print(f"artifacts: {path}")
    return 0


def stopped_at(model: str, params: dict[str, Any], step: int) -> dict[str, Any]:
    """``params`` for a fit that ends at ``step`` where the fit of ``params`` stood at that step: the step
    count set to ``step`` and, for the torch trainer, the learning-rate curve kept at its full length
    (``schedule_epochs``), so that a refit at a trial's best epoch follows the trial's own curve."""
    out = dict(params)
    name = steps_param(model)
    if model == "bpr" and out.get("trainer") == "torch" and out.get("schedule_epochs") is None:
        full = out.get(name, inspect.signature(FlatTorchBPR.__init__).parameters[name].default)
        out["schedule_epochs"] = int(full)
    out[name] = int(step)
    return out


def steps_param(model: str) -> str:
    """The parameter that counts training steps: ALS iterations, BPR epochs."""
    return "iterations" if model == "als" else "epochs"


if __name__ == "__main__":
    sys.exit(main())
