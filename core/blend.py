"""A popularity blend chosen on validation: ``score = U.V / sd + w * log(1 + count) / sd_p``.

Why: where a log has little taste to learn beyond popularity (few items, short histories, strong popularity),
both models' regularization shrinks the popularity they learned along with everything else, and they rank
below a plain popularity count. No statistic of the log says in advance how much taste there is (an
unregularized item bias, tried, helps the weak logs and ruins the strong ones), but the validation split
does: the weight ``w`` is chosen there, from a fixed grid, and ``w = 0`` (the model alone) wins wherever taste
dominates. Both terms are divided by their spread (``sd``: of the model's scores over a fixed sample of users
and all items; ``sd_p``: of the log counts over items) so that one grid serves every model and log.

The blend is one more factor column, ``U' = [U / sd, w]`` and ``V' = [V, log(1 + count) / sd_p]``, so every
scorer, run folder and served model keeps ranking by ``U' @ V'.T``. A refit keeps the chosen ``w`` and
measures ``sd`` and the counts anew on its own history. The largest weight, :data:`POPULARITY_ONLY`
(``inf``), is popularity itself, ``U' = [0, 1]``: where validation cannot tell the model from popularity,
the served ranking is popularity's, item for item, never a near-copy that loses its head's order (a finite
weight of 1000 still reordered the most popular items, whose log counts differ by little, and tested 0.3%
below popularity on such a log).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.evaluate import evaluate

#: The weight that serves popularity alone (the model's factors kept, multiplied by 0).
POPULARITY_ONLY = math.inf
#: The weights tried on validation: 0 is the model alone, :data:`POPULARITY_ONLY` popularity alone.
BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 16.0, POPULARITY_ONLY)
#: At most this many validation users choose the weight (a fixed, seeded sample): the choice is among a few
#: coarse weights, so a few thousand users separate them, and it costs a few evaluations at any size.
CHOOSE_MAX_USERS = 2000
#: Users whose scores measure the model's spread ``sd``.
SPREAD_USERS = 500


def describe(weight: float) -> str:
    """How a summary names a weight: ``popularity alone`` for :data:`POPULARITY_ONLY`, else ``weight w``."""
    return "popularity alone" if weight == POPULARITY_ONLY else f"weight {weight:g}"


@dataclass(frozen=True)
class PopularityBlend:
    """The blend applied to one model: its weight and the two spreads it was scaled by."""

    weight: float
    score_sd: float
    popularity_sd: float

    def to_dict(self) -> dict[str, float]:
        return {"weight": self.weight, "score_sd": self.score_sd, "popularity_sd": self.popularity_sd}


def log_counts(history: sp.csr_matrix) -> np.ndarray:
    """``log(1 + count)`` per item: how many users have the item in ``history`` (the popularity baseline's
    count)."""
    counts = np.diff(sp.csc_matrix(history).indptr).astype(np.float64)
    return np.log1p(counts)


def score_spread(user_factors: np.ndarray, item_factors: np.ndarray, *, seed: int = 0) -> float:
    """The standard deviation of ``U.V`` over a fixed sample of users and every item (1 where it is 0)."""
    n = user_factors.shape[0]
    rng = np.random.default_rng(seed)
    users = rng.choice(n, size=min(n, SPREAD_USERS), replace=False) if n else np.arange(0)
    scores = np.asarray(user_factors[np.sort(users)] @ item_factors.T, dtype=np.float64)
    sd = float(scores.std()) if scores.size else 0.0
    return sd if np.isfinite(sd) and sd > 0 else 1.0


def blend(
    user_factors: np.ndarray, item_factors: np.ndarray, history: sp.csr_matrix, weight: float
) -> tuple[np.ndarray, np.ndarray, PopularityBlend]:
    """The blended factors ``(U', V')`` with popularity counted over ``history`` (users x items), and the
    :class:`PopularityBlend` that made them. ``weight = 0`` returns the factors as they are;
    :data:`POPULARITY_ONLY` scores by popularity alone."""
    if not weight >= 0:
        raise ValueError(f"the popularity weight must be a number >= 0 or inf, but got {weight!r}")
    pop = log_counts(history)
    pop_sd = float(pop.std()) or 1.0
    sd = score_spread(user_factors, item_factors)
    if weight == 0:
        return user_factors, item_factors, PopularityBlend(0.0, sd, pop_sd)
    dtype = np.result_type(user_factors.dtype, np.float32)
    users = np.empty((user_factors.shape[0], user_factors.shape[1] + 1), dtype=dtype)
    only = weight == POPULARITY_ONLY
    users[:, :-1] = 0.0 if only else user_factors / sd
    users[:, -1] = 1.0 if only else weight
    items = np.empty((item_factors.shape[0], item_factors.shape[1] + 1), dtype=dtype)
    items[:, :-1] = item_factors
    items[:, -1] = pop / pop_sd
    return users, items, PopularityBlend(float(weight), sd, pop_sd)


@dataclass(frozen=True)
class BlendChoice:
    """The weight validation chose, and the validation metric of every weight tried (on ``users``)."""

    weight: float
    metric: str
    values: dict[float, float]
    users: int

    def to_dict(self) -> dict[str, object]:
        return {
            "chosen": self.weight,
            "metric": self.metric,
            "users": self.users,
            "values": {f"{w:g}": round(v, 6) for w, v in self.values.items()},
        }

    def gain(self) -> float:
        """The chosen weight's metric less the model alone's."""
        return self.values[self.weight] - self.values[0.0]


def choose_weight(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    truth: sp.csr_matrix,
    history: sp.csr_matrix,
    *,
    metric: str = "ndcg@10",
    users: np.ndarray | None = None,
    weights: Sequence[float] = BLEND_WEIGHTS,
    seed: int = 0,
) -> BlendChoice:
    """The weight of :data:`BLEND_WEIGHTS` whose blend validation prefers (``truth``, the items of ``history``
    excluded and counted for popularity): the largest weight within one paired standard error of the best
    (:func:`_within_noise_of_best`). ``users``: those that may choose (default: every user with a validation
    item); at most :data:`CHOOSE_MAX_USERS` of them do, a seeded sample."""
    if 0.0 not in weights:
        raise ValueError(f"the weights must include 0 (the model alone), but got {tuple(weights)}")
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    if len(users) > CHOOSE_MAX_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, size=CHOOSE_MAX_USERS, replace=False))
    k = int(metric.split("@")[1])
    per_user: dict[float, np.ndarray] = {}
    for w in sorted(weights):
        u, v, _ = blend(user_factors, item_factors, history, w)
        result = evaluate(u, v, truth, history, ks=(k,), users=users, show_progress=False)
        per_user[float(w)] = result.per_user[metric]
    values = {w: float(x.mean()) for w, x in per_user.items()}
    return BlendChoice(_within_noise_of_best(per_user, values), metric, values, len(users))


def _within_noise_of_best(per_user: dict[float, np.ndarray], values: dict[float, float]) -> float:
    """The largest weight whose validation value is within one paired standard error of the best: popularity
    is kept unless the model is better by more than validation's noise (a small log's few validation users
    cannot tell the two apart, and popularity is the floor every model must hold)."""
    best = max(values, key=lambda w: (values[w], -w))
    n = len(per_user[best])
    within = [best]
    for w, x in per_user.items():
        diff = per_user[best] - x
        se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        if w > best and values[best] - values[w] <= se:
            within.append(w)
    return max(within)
