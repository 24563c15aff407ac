"""The one evaluator: full-ranking top-K metrics over all items, bootstrap CIs, and ``score_range``.

Ranking rule: every item is a candidate except the user's ``exclude`` row (train items for validation; train
and validation items for test). Items are ranked by score, ties broken by the lower item index, so results are
exact and reproducible. Metrics, per user with at least one relevant item:

- Recall@K   = hits in top K / number of relevant items
- NDCG@K     = DCG@K / IDCG@K, binary relevance, DCG = sum 1/log2(rank + 1), IDCG over min(K, |relevant|)
- HitRate@K  = 1 if any relevant item is in the top K
- Coverage@K = distinct items recommended in anybody's top K / number of items (a catalogue-level number)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from core.ranking import top_k

#: Memory budget of one dense score block (float32 cells).
_BLOCK_CELLS = 8_000_000


class Scorer(Protocol):
    """Anything that scores all items for a batch of user indices: factor models, popularity, EASE."""

    @property
    def n_items(self) -> int: ...

    def score(self, users: np.ndarray) -> np.ndarray:
        """Dense (len(users), n_items) float32 scores."""
        ...


@dataclass(frozen=True)
class FactorScorer:
    """Dot-product scores ``U[u] @ V.T``."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)


@dataclass
class EvalResult:
    """Headline metrics plus per-user values (aligned with ``users``) for CIs and paired tests."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    ks: tuple[int, ...]
    top_items: np.ndarray | None = field(default=None, repr=False)  # (n_users, max K), -1 where no item

    def to_dict(self) -> dict[str, float]:
        return dict(self.metrics)


def _mask_rows(scores: np.ndarray, matrix: sp.csr_matrix, users: np.ndarray) -> None:
    sub = matrix[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    scores[rows, sub.indices] = -np.inf


def evaluate_scorer(
    scorer: Scorer,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    *,
    ks: Sequence[int] = (10, 20),
    users: np.ndarray | None = None,
    keep_top_items: bool = False,
) -> EvalResult:
    """Full-ranking metrics of ``scorer`` against ``truth`` (users x items, nonzero = relevant)."""
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, but got {ks=}.")
    truth = sp.csr_matrix(truth)
    n_items = truth.shape[1]
    if scorer.n_items != n_items:
        raise ValueError(f"scorer has {scorer.n_items} items but truth has {n_items}")
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    n_rel_all = np.diff(truth.indptr)[users]
    if np.any(n_rel_all == 0):
        raise ValueError("every evaluated user needs at least one relevant item")
    kmax = ks[-1]
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    ideal = np.cumsum(discounts)
    per_user = {f"{m}@{k}": np.empty(len(users)) for k in ks for m in ("recall", "ndcg", "hitrate")}
    top_all = np.full((len(users), kmax), -1, dtype=np.int64)
    block = max(1, _BLOCK_CELLS // max(1, n_items))
    for start in range(0, len(users), block):
        batch = users[start : start + block]
        top, _ = top_k(scorer.score(batch), kmax, exclude, batch)
        valid = top >= 0
        top = np.where(valid, top, 0)
        rel = truth[batch]
        dense = np.zeros((len(batch), n_items), dtype=bool)
        dense[np.repeat(np.arange(len(batch)), np.diff(rel.indptr)), rel.indices] = True
        hits = np.take_along_axis(dense, top, axis=1) & valid
        n_rel = n_rel_all[start : start + block]
        for k in ks:
            h = hits[:, :k]
            n_hits = h.sum(axis=1)
            dcg = h @ discounts[: h.shape[1]]
            per_user[f"recall@{k}"][start : start + len(batch)] = n_hits / n_rel
            per_user[f"ndcg@{k}"][start : start + len(batch)] = dcg / ideal[np.minimum(k, n_rel) - 1]
            per_user[f"hitrate@{k}"][start : start + len(batch)] = n_hits > 0
        top_all[start : start + len(batch)] = np.where(valid, top, -1)
    metrics = {name: float(values.mean()) if len(values) else 0.0 for name, values in per_user.items()}
    for k in ks:
        recommended = np.unique(top_all[:, :k])
        metrics[f"coverage@{k}"] = float(np.count_nonzero(recommended >= 0) / n_items)
    metrics["users"] = float(len(users))
    return EvalResult(metrics, per_user, users, ks, top_all if keep_top_items else None)


def evaluate(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    *,
    ks: Sequence[int] = (10, 20),
    users: np.ndarray | None = None,
    keep_top_items: bool = False,
) -> EvalResult:
    """:func:`evaluate_scorer` for a factor model."""
    return evaluate_scorer(
        FactorScorer(user_factors, item_factors),
        truth,
        exclude,
        ks=ks,
        users=users,
        keep_top_items=keep_top_items,
    )


# ---------------------------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples over rows (users); columns are resampled together (paired)."""
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    out = np.empty((n_boot, *values.shape[1:]))
    chunk = max(1, 4_000_000 // max(1, n))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the mean over users."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), level)
    means = _bootstrap_means(values, n_boot, seed)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(values.mean()), float(lo), float(hi), level)


@dataclass(frozen=True)
class Comparison:
    """Model vs reference on the same users: both means, the difference and the relative improvement."""

    metric: str
    model: Interval
    reference: Interval
    difference: Interval
    improvement_pct: Interval

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compare(
    model: EvalResult,
    reference: EvalResult,
    metrics: Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Paired bootstrap over users of the difference and the relative improvement of ``model``."""
    if not np.array_equal(model.users, reference.users):
        raise ValueError("compare needs both results on the same users in the same order")
    names = list(metrics) if metrics is not None else list(model.per_user)
    out: dict[str, Comparison] = {}
    for offset, name in enumerate(names):
        a, b = model.per_user[name], reference.per_user[name]
        means = _bootstrap_means(np.column_stack([a, b]), n_boot, seed + offset)
        q = [(1 - level) / 2, (1 + level) / 2]
        diff = means[:, 0] - means[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = 100.0 * (means[:, 0] / means[:, 1] - 1.0)
            rel_point = 100.0 * (a.mean() / b.mean() - 1.0) if b.mean() > 0 else float("inf")
        rel_lo, rel_hi = np.quantile(rel, q) if np.all(np.isfinite(rel)) else (float("nan"), float("nan"))
        d_lo, d_hi = np.quantile(diff, q)
        out[name] = Comparison(
            metric=name,
            model=bootstrap_ci(a, n_boot=n_boot, level=level, seed=seed + offset),
            reference=bootstrap_ci(b, n_boot=n_boot, level=level, seed=seed + offset),
            difference=Interval(float(a.mean() - b.mean()), float(d_lo), float(d_hi), level),
            improvement_pct=Interval(float(rel_point), float(rel_lo), float(rel_hi), level),
        )
    return out


# ---------------------------------------------------------------------------------------------- score range
@dataclass(frozen=True)
class ScoreRange:
    """Distribution of a model's scores on validation users' unseen items, for score normalisation
    downstream (blending CF with content scores needs to know what a "high" CF score is)."""

    method: str
    min: float
    max: float
    mean: float
    std: float
    p01: float
    p99: float
    num_samples: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def metrics(self, prefix: str = "score_range_") -> dict[str, float]:
        """The numeric fields, named for a metrics store (``score_range_p01``...)."""
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items() if k != "method"}


def score_range(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    users: np.ndarray,
    exclude: sp.csr_matrix | None,
    *,
    max_users: int = 2000,
    seed: int = 0,
) -> ScoreRange:
    """Statistics of all unseen-item scores of ``users`` (a seeded sample of ``max_users`` of them)."""
    users = np.asarray(users, dtype=np.int64)
    method = "validation_set"
    if len(users) == 0:
        users = np.arange(user_factors.shape[0])
        method = "all_users"
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
        method += f"_sample{max_users}"
    scorer = FactorScorer(user_factors, item_factors)
    chunks = []
    block = max(1, _BLOCK_CELLS // max(1, scorer.n_items))
    for start in range(0, len(users), block):
        batch = users[start : start + block]
        scores = scorer.score(batch)
        if exclude is not None:
            _mask_rows(scores, exclude, batch)
        chunks.append(scores[np.isfinite(scores)])
    values = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float32)
    if values.size == 0:
        nan = float("nan")
        return ScoreRange(method, nan, nan, nan, nan, nan, nan, 0)
    p01, p99 = np.percentile(values, [1, 99])
    return ScoreRange(
        method=method,
        min=float(values.min()),
        max=float(values.max()),
        mean=float(values.mean(dtype=np.float64)),
        std=float(values.std(dtype=np.float64)),
        p01=float(p01),
        p99=float(p99),
        num_samples=int(values.size),
    )
