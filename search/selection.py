"""Which finished trial a study hands on to the refit, the test and the registry.

The trial with the highest validation value is partly the luckiest one: where validation holds about one item
per user (short logs, small catalogues), trials a standard error apart are indistinguishable, and the top one
tested below EASE on Amazon Beauty while trials a little lower on validation tested above it. The
one-standard-error rule (Breiman et al. 1984; Hastie, Tibshirani & Friedman, *The Elements of Statistical
Learning*, section 7.10) guards against that: among the trials whose value is within one standard error of
the best's, take the simplest, here the most regularized: the largest L2 weight, and for BPR, whose positive
and negative items may have their own (``reg_pos``, ``reg_neg``; unset: ``regularization``), the largest of
the weakest of its three. For ALS it reads ``regularization`` as it stands, although how strongly it shrinks
also depends on ``alpha`` and the confidence, searched alongside: a heuristic, measured by
``bench/quality.py`` (README, "Quality on data the project has not seen").

The standard error is that of the difference between the best trial and the other, user by user (paired):
two trials of one study rank the same users, whose per-user values move together, so the paired error is far
smaller than either trial's own, and a trial clearly worse than the best is not taken for its equal (the
unpaired error handed on a worse-testing trial in 5 of 10 TPE studies of ``bench/shapes.py``). The objective
records each trial's per-user values on a fixed, seeded sample of at most :data:`PAIRED_USERS` validation
users (``valid_per_user``, float16 in base64); the sample's spread of differences is scaled to all validation
users (``sd / sqrt(users)``). Trials without them (recorded before) use the best trial's own standard error,
``valid_se``.

Rules (``--select``): ``one-se`` (the default) and ``best`` (Optuna's ``study.best_trial``: the highest value,
the earliest on ties). ``one-se`` falls back to ``best`` for trials without a recorded standard error, without
a numeric ``regularization``, or all of one strength (a space that does not search it).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SELECTION_RULES: tuple[str, ...] = ("one-se", "best")
#: The trial user attribute holding the standard error of its validation value over users.
SE_ATTR = "valid_se"
#: The trial attribute holding its per-user validation values on the paired sample (:func:`encode_values`).
PAIRED_ATTR = "valid_per_user"
#: At most this many validation users (a seeded sample, the same for every trial) are kept for pairing.
PAIRED_USERS = 5000
#: The trial attribute holding the popularity weight its refit is served with (:mod:`core.blend`).
BLEND_ATTR = "popularity_weight"
#: The L2 weights whose larger values make a simpler model; ``reg_pos`` / ``reg_neg`` unset fall back to the
#: first (:class:`core.bpr.BPR`'s rule).
SIMPLER_BY = ("regularization", "reg_pos", "reg_neg")


@dataclass(frozen=True)
class Selection:
    """The chosen trial, the best one by value, and why they differ (when they do)."""

    trial: Any  # optuna.trial.FrozenTrial
    best: Any
    rule: str
    standard_error: float | None = None  # of the chosen trial's difference from the best (paired if recorded)
    within: int = 1  # trials within one standard error of the best (the best included)

    @property
    def changed(self) -> bool:
        return self.trial.number != self.best.number

    def to_dict(self, metric: str = "value") -> dict[str, Any]:
        """What the study record keeps; ``note`` says in a line why another trial than the best was chosen."""
        return {
            "rule": self.rule,
            "selected_trial": self.trial.number,
            "best_trial": self.best.number,
            "best_value": float(self.best.value),
            "standard_error": self.standard_error,
            "within_one_se": self.within,
            "note": self.message(metric) if self.changed else None,
        }

    def message(self, metric: str) -> str:
        """One line for the summary when the rule chose another trial than the best."""
        return (
            f"one-standard-error rule: trial {self.best.number} has the best validation {metric} "
            f"{self.best.value:.5f}; of the {self.within} trials within one standard error of it (paired, "
            f"user by user), trial {self.trial.number} is the most regularized "
            f"({_strength_text(self.trial)}; {self.trial.value:.5f}, standard error of the difference "
            f"{self.standard_error:.5f})"
        )


def standard_error(values: Sequence[float] | np.ndarray) -> float | None:
    """Standard error of the mean of per-user values; None for fewer than two users."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    return float(x.std(ddof=1) / math.sqrt(x.size))


def paired_sample(n_users: int, seed: int = 0) -> np.ndarray:
    """Positions of the paired sample among ``n_users`` validation users (sorted; all of them if few)."""
    if n_users <= PAIRED_USERS:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).choice(n_users, size=PAIRED_USERS, replace=False))


def encode_values(values: np.ndarray, users: int) -> dict[str, Any]:
    """Per-user values on the paired sample for a trial attribute: float16 bytes in base64, and ``users``,
    how many validation users the sample stands for."""
    data = np.asarray(values, dtype=np.float16).tobytes()
    return {"float16": base64.b64encode(data).decode("ascii"), "users": int(users)}


def decode_values(attr: Any) -> np.ndarray | None:
    """:func:`encode_values` read back (None for anything else)."""
    if not isinstance(attr, dict) or not isinstance(attr.get("float16"), str):
        return None
    return np.frombuffer(base64.b64decode(attr["float16"]), dtype=np.float16).astype(np.float64)


def paired_error(best: Any, other: Any) -> float | None:
    """The standard error of ``best``'s value less ``other``'s, user by user on the paired sample and scaled
    to every validation user; None when either lacks its values or they are not of one sample."""
    mine, theirs = best.user_attrs.get(PAIRED_ATTR), other.user_attrs.get(PAIRED_ATTR)
    a, b = decode_values(mine), decode_values(theirs)
    if a is None or b is None or a.shape != b.shape or a.size < 2:
        return None
    users = mine.get("users")
    if not _number(users) or users != theirs.get("users"):
        return None
    return float((a - b).std(ddof=1) / math.sqrt(float(users)))


def _param(trial: Any, name: str) -> Any:
    return trial.user_attrs.get("params_full", trial.params).get(name, trial.params.get(name))


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def strength(trial: Any) -> float | None:
    """A trial's L2 strength: the weakest of its L2 weights (:data:`SIMPLER_BY`); None without a numeric
    ``regularization``."""
    base = _param(trial, SIMPLER_BY[0])
    if not _number(base):
        return None
    values = [float(base)]
    for name in SIMPLER_BY[1:]:
        value = _param(trial, name)
        values.append(float(value) if _number(value) else float(base))
    return min(values)


def _strength_text(trial: Any) -> str:
    shown = [f"{name}={_param(trial, name):.4g}" for name in SIMPLER_BY if _number(_param(trial, name))]
    return ", ".join(shown)


def select_trial(complete: Sequence[Any], rule: str = "one-se") -> Selection | None:
    """The trial ``rule`` picks among ``complete`` trials (maximized values); None when there are none."""
    if rule not in SELECTION_RULES:
        raise ValueError(f"rule must be one of {SELECTION_RULES}, but got {rule=}.")
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))
    se = best.user_attrs.get(SE_ATTR)
    if rule == "best" or not _number(se):
        return Selection(best, best, "best" if rule == "best" else "best (no standard error recorded)")
    within = [t for t in complete if t is best or best.value - t.value <= _error(best, t, float(se))]
    strengths = [strength(t) for t in within]
    if any(s is None for s in strengths) or len(set(strengths)) == 1:
        return Selection(best, best, "best (no regularization searched)", float(se), len(within))
    chosen = max(within, key=lambda t: (strength(t), t.value, -t.number))
    return Selection(chosen, best, rule, _error(best, chosen, float(se)), len(within))


def _error(best: Any, other: Any, unpaired: float) -> float:
    """The paired error, never above the best's own: the rule never takes for the best's equal a trial the
    unpaired rule would not (so :mod:`search.keep`, bounding the unpaired error, keeps every candidate)."""
    paired = paired_error(best, other)
    return unpaired if paired is None else min(paired, unpaired)
