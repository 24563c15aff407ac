"""The one evaluator: full-ranking top-K metrics over all items, bootstrap CIs, and ``score_range``.

Ranking rule: every item is a candidate except the user's ``exclude`` row (train items for validation; train
and validation items for test). Items are ranked by score, ties broken by the lower item index, so results are
exact and reproducible. Metrics, per user with at least one relevant item:

- Recall@K   = hits in top K / number of relevant items
- NDCG@K     = DCG@K / IDCG@K, binary relevance, DCG = sum 1/log2(rank + 1), IDCG over min(K, |relevant|)
- HitRate@K  = 1 if any relevant item is in the top K
- Coverage@K = distinct items recommended in anybody's top K / number of items (a catalogue-level number)

Memory: users are scored in batches whose dense block is bounded (:func:`core.ranking.batch_rows`), hits are
looked up per batch from the sparse truth, and only (users x max K) top items are kept, so evaluation never
allocates users x items; many users (> :data:`PROGRESS_MIN_USERS`) get a progress bar on stderr where it is a
terminal, and none inside a phase that reports its own progress (:func:`core.progress.no_inner_bars`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from core.progress import default_bar
from core.ranking import BLOCK_CELLS, batch_rows, top_k

#: Memory budget of one dense score block (kept under this name for ``bench/evaluate_speed.py``).
_BLOCK_CELLS = BLOCK_CELLS
#: Above this many users the evaluation shows a progress bar (stderr, a terminal) unless told not to.
PROGRESS_MIN_USERS = 20_000


def _progress(total: int, show: bool | None, desc: str) -> tqdm:
    """A stderr bar over ``total`` users: shown when ``show``, or (``None``) when there are many users, stderr
    is a terminal and no enclosing phase reports its own progress (:func:`core.progress.default_bar`).

    A shown bar leaves ``disable`` to tqdm's own default, so ``TQDM_DISABLE=1`` silences it too."""
    if show is None:
        show = default_bar(total, PROGRESS_MIN_USERS)
    kwargs = {} if show else {"disable": True}
    return tqdm(total=total, desc=desc, unit="user", leave=False, dynamic_ncols=True, **kwargs)


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
    batch_size: int | None = None,
    show_progress: bool | None = None,
) -> EvalResult:
    """Full-ranking metrics of ``scorer`` against ``truth`` (users x items, nonzero = relevant).

    Users are scored ``batch_size`` at a time (default :func:`batch_rows`: a bounded dense block), so memory
    is O(batch x items + users x max K), never users x items; the batch size does not change the result.
    ``show_progress``: a bar on stderr; ``None`` shows one above :data:`PROGRESS_MIN_USERS` users on a
    terminal, outside a phase that reports its own progress.
    """
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, but got {ks=}.")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, but got {batch_size=}.")
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
    if exclude is not None and not exclude.has_sorted_indices:
        exclude = exclude.sorted_indices()  # once, not once per batch inside top_k
    kmax = ks[-1]
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    ideal = np.cumsum(discounts)
    per_user = {f"{m}@{k}": np.empty(len(users)) for k in ks for m in ("recall", "ndcg", "hitrate")}
    top_all = np.full((len(users), kmax), -1, dtype=np.int64)
    block = batch_size or batch_rows(n_items)
    with _progress(len(users), show_progress, "evaluate") as bar:
        for start in range(0, len(users), block):
            batch = users[start : start + block]
            stop = start + len(batch)
            top, _ = top_k(scorer.score(batch), kmax, exclude, batch)
            valid = top >= 0
            top = np.where(valid, top, 0)
            hits = _hits(truth[batch], top, n_items) & valid
            n_rel = n_rel_all[start:stop]
            for k in ks:
                h = hits[:, :k]
                n_hits = h.sum(axis=1)
                dcg = h @ discounts[: h.shape[1]]
                per_user[f"recall@{k}"][start:stop] = n_hits / n_rel
                per_user[f"ndcg@{k}"][start:stop] = dcg / ideal[np.minimum(k, n_rel) - 1]
                per_user[f"hitrate@{k}"][start:stop] = n_hits > 0
            top_all[start:stop] = np.where(valid, top, -1)
            bar.update(len(batch))
    metrics = {name: float(values.mean()) if len(values) else 0.0 for name, values in per_user.items()}
    for k in ks:
        recommended = np.zeros(n_items, dtype=bool)
        chosen = top_all[:, :k]
        recommended[chosen[chosen >= 0]] = True
        metrics[f"coverage@{k}"] = float(np.count_nonzero(recommended) / n_items)
    metrics["users"] = float(len(users))
    return EvalResult(metrics, per_user, users, ks, top_all if keep_top_items else None)


def _hits(relevant: sp.csr_matrix, top: np.ndarray, n_items: int) -> np.ndarray:
    """``hits[r, j]``: is item ``top[r, j]`` among row ``r``'s relevant items? A batch x K lookup in sorted
    keys, no dense batch x items mask."""
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    keys = np.sort(rows * n_items + relevant.indices)
    wanted = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.minimum(np.searchsorted(keys, wanted), max(0, keys.size - 1))
    return keys[pos] == wanted if keys.size else np.zeros(top.shape, dtype=bool)


def evaluate(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    *,
    ks: Sequence[int] = (10, 20),
    users: np.ndarray | None = None,
    keep_top_items: bool = False,
    batch_size: int | None = None,
    show_progress: bool | None = None,
) -> EvalResult:
    """:func:`evaluate_scorer` for a factor model."""
    return evaluate_scorer(
        FactorScorer(user_factors, item_factors),
        truth,
        exclude,
        ks=ks,
        users=users,
        keep_top_items=keep_top_items,
        batch_size=batch_size,
        show_progress=show_progress,
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
    # one buffer filled batch by batch (pages past the last unseen score are never touched): no list of chunks
    # and no concatenated copy beside it
    values = np.empty(len(users) * scorer.n_items, dtype=np.float32)
    filled = 0
    block = batch_rows(scorer.n_items)
    for start in range(0, len(users), block):
        batch = users[start : start + block]
        scores = scorer.score(batch)
        if exclude is not None:
            _mask_rows(scores, exclude, batch)
        unseen = scores[np.isfinite(scores)]
        values[filled : filled + unseen.size] = unseen
        filled += unseen.size
    values = values[:filled]
    if values.size == 0:
        nan = float("nan")
        return ScoreRange(method, nan, nan, nan, nan, nan, nan, 0)
    # mean and std in float64 a block at a time: no float64 copy of every score
    step = _BLOCK_CELLS
    mean = sum(float(values[i : i + step].sum(dtype=np.float64)) for i in range(0, values.size, step))
    mean /= values.size
    sq = sum(
        float(np.square(values[i : i + step].astype(np.float64) - mean).sum())
        for i in range(0, values.size, step)
    )
    low, high = float(values.min()), float(values.max())
    p01, p99 = np.percentile(values, [1, 99], overwrite_input=True)  # partitions in place, no copy
    return ScoreRange(
        method=method,
        min=low,
        max=high,
        mean=mean,
        std=float(np.sqrt(sq / values.size)),
        p01=float(p01),
        p99=float(p99),
        num_samples=int(values.size),
    )
