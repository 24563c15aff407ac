"""The seed's advanced negative sampling, as per-user candidate arrays plus one vectorised mixed sampler.

Each negative *source* is a users x items CSR (sorted int32 rows, the user's positives removed) of candidate
negatives, computed once before training:

- ``hard``: given explicitly (e.g. :func:`core.split.hard_negatives`: low ratings, unseen popular items);
- ``contextual`` (:func:`contextual_negatives`): the ``k`` items closest in embedding space to the centroid
  of the user's positives: "looks like what you bought, but you did not";
- ``sentiment`` (:func:`sentiment_negatives`): items whose reviews are predominantly negative (opposite to the
  user's liked positives), the ones closest to the user's centroid when embeddings are given;
- ``popular`` (:func:`popular_negatives`): the ``k`` most popular items the user has not interacted with.

:class:`MixedNegativeSampler` draws one negative per user from a source picked with the probabilities of a
:class:`SamplingStrategy` (the remainder uniform over the user's non-positives), scaled by the curriculum of
a :class:`DynamicSamplingConfig`. Everything is NumPy over arrays; nothing is materialised per user in Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import scipy.sparse as sp

from core.bpr.sampler import HardNegatives, hard_negatives_csr, positives_csr, user_of_interactions
from core.errors import ConfigError, DataError
from core.interactions import Interactions

#: Sources a strategy mixes, in the order the sampler rolls them; ``random`` is the remainder.
SOURCES: tuple[str, ...] = ("hard", "contextual", "sentiment", "popular")
RANDOM = "random"

Schedule = Literal["linear", "cosine", "exponential"]
SCHEDULES: tuple[str, ...] = ("linear", "cosine", "exponential")

#: Rate of the ``exponential`` schedule: difficulty gains (e^(rate*t) - 1) / (e^rate - 1) of its range.
EXPONENTIAL_RATE = 5.0

#: Cells (users x candidate items) of one dense score block: bounds the memory of every source builder.
CHUNK_CELLS = 1 << 22


def _check_unit(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number in [0, 1], but got {name}={value!r}.")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], but got {name}={value!r}.")
    return float(value)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}.")
    return int(value)


# ---------------------------------------------------------------------------------------------- curriculum
@dataclass(frozen=True)
class DynamicSamplingConfig:
    """Curriculum over sampling difficulty: easy (mostly uniform) negatives first, informative ones later.

    ``difficulty(epoch)`` (1-based, as the trainers count epochs; ``e = epoch - 1``) is the fraction of the
    strategy's non-random ratios in use::

        e < warmup_epochs:       d = s                              (s = start_difficulty)
        afterwards:              t = min(1, (e - warmup_epochs) / ramp_epochs)   (t = 1 if ramp = 0)
            linear:              d = s + (1 - s) * t
            cosine:              d = s + (1 - s) * (1 - cos(pi * t)) / 2
            exponential:         d = s + (1 - s) * (e^(r t) - 1) / (e^r - 1),   r = EXPONENTIAL_RATE

    so the ramp starts at ``s`` at ``e = warmup_epochs``; ``d = 1`` from ``e = warmup_epochs + ramp_epochs``
    on (at once if ``ramp_epochs = 0``). ``enabled=False`` means ``d = 1`` throughout (the ratios as given).
    """

    enabled: bool = True
    schedule: Schedule = "linear"
    warmup_epochs: int = 5
    ramp_epochs: int = 10
    start_difficulty: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"enabled must be True or False, but got enabled={self.enabled!r}.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, but got schedule={self.schedule!r}.")
        _check_count("warmup_epochs", self.warmup_epochs, 0)
        _check_count("ramp_epochs", self.ramp_epochs, 0)
        _check_unit("start_difficulty", self.start_difficulty)

    def difficulty(self, epoch: int) -> float:
        """Fraction in [start_difficulty, 1] of the non-random ratios used at ``epoch`` (formulas above)."""
        _check_count("epoch", epoch, 1)
        if not self.enabled:
            return 1.0
        s = float(self.start_difficulty)
        e = epoch - 1
        if e < self.warmup_epochs:
            return s
        t = 1.0 if self.ramp_epochs == 0 else min(1.0, (e - self.warmup_epochs) / self.ramp_epochs)
        if self.schedule == "linear":
            shape = t
        elif self.schedule == "cosine":
            shape = (1.0 - math.cos(math.pi * t)) / 2.0
        else:
            shape = math.expm1(EXPONENTIAL_RATE * t) / math.expm1(EXPONENTIAL_RATE)
        return s + (1.0 - s) * shape


@dataclass(frozen=True)
class SamplingStrategy:
    """Share of negatives drawn from each source; the remainder (``random_ratio``) is uniform over the user's
    non-positives. Defaults are the seed's (0.25 / 0.20 / 0.15 / 0.10, random 0.30)."""

    hard_ratio: float = 0.25
    contextual_ratio: float = 0.20
    sentiment_ratio: float = 0.15
    popular_ratio: float = 0.10

    def __post_init__(self) -> None:
        values = {f.name: _check_unit(f.name, getattr(self, f.name)) for f in fields(self)}
        total = sum(values.values())
        if total > 1.0 + 1e-9:
            given = ", ".join(f"{k}={v:g}" for k, v in values.items())
            raise ConfigError(
                f"sampling ratios must sum to <= 1 (the rest is random), but got {given} = {total:g}."
            )

    @property
    def random_ratio(self) -> float:
        return max(
            0.0, 1.0 - self.hard_ratio - self.contextual_ratio - self.sentiment_ratio - self.popular_ratio
        )

    def ratios_at(self, epoch: int, dynamic: DynamicSamplingConfig | None = None) -> dict[str, float]:
        """Effective ratios per source at ``epoch``: each source ratio times the curriculum's difficulty,
        ``random`` the rest (keys :data:`SOURCES` + ``"random"``, summing to 1)."""
        d = 1.0 if dynamic is None else dynamic.difficulty(epoch)
        out = {
            "hard": self.hard_ratio * d,
            "contextual": self.contextual_ratio * d,
            "sentiment": self.sentiment_ratio * d,
            "popular": self.popular_ratio * d,
        }
        out[RANDOM] = max(0.0, 1.0 - sum(out.values()))
        return out


# ---------------------------------------------------------------------------------------------- sources
def _unit_rows(embeddings: np.ndarray, n_items: int) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float32)
    if e.ndim != 2 or e.shape[0] != n_items:
        raise DataError(f"item_embeddings must have shape (n_items={n_items}, d), but got {e.shape}")
    if not np.isfinite(e).all():
        raise DataError("item_embeddings contain NaN or inf")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    return np.divide(e, norms, out=np.zeros_like(e), where=norms > 0)  # a zero vector stays similar to none


def _to_source(rows: list[np.ndarray], cols: list[np.ndarray], pos: sp.csr_matrix) -> sp.csr_matrix:
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, np.int64)
    matrix = sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=pos.shape)
    return hard_negatives_csr(matrix, pos)  # sorted int32 rows, positives removed (again, to be sure)


def _per_user_top_k(
    pos: sp.csr_matrix, unit: np.ndarray, k: int, eligible: np.ndarray | None, chunk_cells: int
) -> sp.csr_matrix:
    """Per user, the ``k`` eligible non-positive items of highest cosine to the centroid of the positives."""
    n_users, n_items = pos.shape
    blocked = np.zeros(n_items, dtype=bool) if eligible is None else ~eligible
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    kk = min(k, n_items)
    step = max(1, chunk_cells // max(1, n_items))
    for start in range(0, n_users, step):
        block = pos[start : start + step]
        profile = np.asarray(
            block @ unit, dtype=np.float32
        )  # sum of unit vectors: same direction as the mean
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        scores = profile @ unit.T
        scores[:, blocked] = -np.inf
        r, c = block.nonzero()
        scores[r, c] = -np.inf
        scores[norms[:, 0] == 0] = -np.inf  # no positives (or only zero vectors): no context to be close to
        top = (
            np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n_items else np.argsort(-scores, axis=1)
        )
        keep = np.isfinite(np.take_along_axis(scores, top, axis=1))
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(top[keep])
    return _to_source(rows, cols, pos)


def _shared_top_k(pos: sp.csr_matrix, order: np.ndarray, k: int, chunk_cells: int) -> sp.csr_matrix:
    """Per user, the first ``k`` items of one shared ranking ``order`` that are not among their positives."""
    n_users = pos.shape[0]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    if order.size == 0:
        return _to_source(rows, cols, pos)
    per_user = np.diff(pos.indptr)
    width = int(min(order.size, k + (per_user.max() if n_users else 0)))  # k unseen lie within k + |pos|
    candidates = pos[:, order[:width]].tocsr()
    step = max(1, chunk_cells // width)
    for start in range(0, n_users, step):
        seen = candidates[start : start + step].toarray() != 0
        unseen = ~seen
        keep = unseen & (np.cumsum(unseen, axis=1) <= k)
        r, c = np.nonzero(keep)
        rows.append(r + start)
        cols.append(order[c])
    return _to_source(rows, cols, pos)


def contextual_negatives(
    user_items: sp.spmatrix | sp.sparray,
    item_embeddings: np.ndarray,
    k: int = 50,
    *,
    chunk_cells: int = CHUNK_CELLS,
) -> sp.csr_matrix:
    """Per user, the ``k`` non-positive items most cosine-similar to the centroid of their positives.

    The centroid (mean of the positives' unit embeddings) stands for the user's context; its nearest unseen
    items are plausible but not chosen, the seed's "BERT similar but not bought". One centroid rather than the
    union of each positive's neighbours: one matrix product per block of users, and a row of at most ``k``.
    Users without positives get an empty row. Scores are computed in blocks of ``chunk_cells`` cells
    (users x items), never an items x items matrix.
    """
    k = _check_count("k", k, 1)
    pos = positives_csr(user_items)
    unit = _unit_rows(item_embeddings, pos.shape[1])
    return _per_user_top_k(pos, unit, k, None, chunk_cells)


def review_sentiment(interactions: Interactions) -> np.ndarray:
    """Sentiment of each review in [-1, 1] from its rating: the scale's midpoint is neutral, its ends are
    -1 and +1 (1..5 stars: 1 -> -1, 3 -> 0, 5 -> +1). Play counts carry no sentiment: a :class:`DataError`."""
    if interactions.kind != "rating":
        raise DataError(
            "play counts carry no sentiment: pass per-review scores instead", source=interactions.source
        )
    r = interactions.rating.astype(np.float64)
    lo, hi = interactions.rating_scale or (float(r.min()), float(r.max()))
    if hi <= lo:
        return np.zeros(r.size, dtype=np.float32)
    return np.clip((2.0 * r - (lo + hi)) / (hi - lo), -1.0, 1.0).astype(np.float32)


def item_sentiment(
    interactions: Interactions, *, scores: np.ndarray | None = None, prior_count: float = 2.0
) -> np.ndarray:
    """Per item, the mean sentiment of its reviews shrunk to neutral: ``sum(scores) / (n + prior_count)``.

    ``scores`` are per-review sentiments in [-1, 1] (default :func:`review_sentiment`, from ratings; a text
    classifier's scores fit too). The prior acts as ``prior_count`` extra neutral reviews, so one bad review
    does not make an item "negative"; items without reviews are neutral (0). Pass the training part only.
    """
    if not (math.isfinite(prior_count) and prior_count >= 0):
        raise ConfigError(f"prior_count must be a finite number >= 0, but got {prior_count=}.")
    s = review_sentiment(interactions) if scores is None else np.asarray(scores, dtype=np.float64)
    if s.shape != (len(interactions),):
        raise DataError(f"scores must have one value per interaction ({len(interactions)}), got {s.shape}")
    total = np.bincount(interactions.item_idx, weights=s, minlength=interactions.n_items)
    count = np.bincount(interactions.item_idx, minlength=interactions.n_items)
    denom = count + prior_count
    out = np.divide(total, denom, out=np.zeros_like(total), where=denom > 0)
    return out.astype(np.float32)


def sentiment_negatives(
    user_items: sp.spmatrix | sp.sparray,
    item_sentiment: np.ndarray,
    k: int = 50,
    *,
    threshold: float = 0.0,
    item_embeddings: np.ndarray | None = None,
    chunk_cells: int = CHUNK_CELLS,
) -> sp.csr_matrix:
    """The seed's "sentiment contrast": items reviewed with the opposite sentiment to the user's positives.

    A user's positives are items they liked; the contrast is items whose reviews are predominantly negative,
    ``item_sentiment < threshold`` (see :func:`item_sentiment`). Per user, the ``k`` of them that are not the
    user's positives: without embeddings the most negative first (one ranking for all users, ties by item
    index); with ``item_embeddings`` the ones closest to the user's centroid, i.e. "like what you liked, but
    badly reviewed" (users without positives then get none). Items the user rated low are not positives, so
    they may appear here: the user agreed they are bad.
    """
    k = _check_count("k", k, 1)
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be finite, but got {threshold=}.")
    pos = positives_csr(user_items)
    s = np.asarray(item_sentiment, dtype=np.float64)
    if s.shape != (pos.shape[1],):
        raise DataError(f"item_sentiment must have one value per item ({pos.shape[1]}), got {s.shape}")
    eligible = np.isfinite(s) & (s < threshold)
    if item_embeddings is not None:
        unit = _unit_rows(item_embeddings, pos.shape[1])
        return _per_user_top_k(pos, unit, k, eligible, chunk_cells)
    candidates = np.flatnonzero(eligible)
    order = candidates[np.argsort(s[candidates], kind="stable")]
    return _shared_top_k(pos, order, k, chunk_cells)


def popular_negatives(
    user_items: sp.spmatrix | sp.sparray,
    k: int = 50,
    *,
    popularity: np.ndarray | None = None,
    chunk_cells: int = CHUNK_CELLS,
) -> sp.csr_matrix:
    """Per user, the ``k`` most popular items they have not interacted with (ties by item index).

    ``popularity`` defaults to each item's number of users in ``user_items``; items at 0 are never chosen.
    """
    k = _check_count("k", k, 1)
    pos = positives_csr(user_items)
    pop = (
        np.diff(pos.tocsc().indptr).astype(np.float64)
        if popularity is None
        else np.asarray(popularity, float)
    )
    if pop.shape != (pos.shape[1],):
        raise DataError(f"popularity must have one value per item ({pos.shape[1]}), got {pop.shape}")
    candidates = np.flatnonzero(np.isfinite(pop) & (pop > 0))
    order = candidates[np.argsort(-pop[candidates], kind="stable")]
    return _shared_top_k(pos, order, k, chunk_cells)


def merge_sources(
    sources: Mapping[str, HardNegatives | None], user_items: sp.spmatrix | sp.sparray
) -> sp.csr_matrix:
    """Union of the sources as one hard-negative CSR: what the numba kernel (one ``hard_ratio``) consumes."""
    pos = positives_csr(user_items)
    merged = sp.csr_matrix(pos.shape, dtype=np.float32)
    for source in sources.values():
        if source is not None:
            merged = merged + hard_negatives_csr(source, pos)
    return hard_negatives_csr(merged, pos)


# ---------------------------------------------------------------------------------------------- sampler
class MixedNegativeSampler:
    """One negative per user: a source rolled with the strategy's ratios at the epoch, else uniform.

    A source draw picks uniformly from the user's row of that source (positives were removed when the
    source was bound). A source that is missing, or whose row is empty for the user, falls back to a uniform
    draw (counted as ``fallback``). Uniform draws are exact, not rejection: the ``r``-th of the user's
    non-positives is found by one binary search. A user whose every item is a positive gets ``-1``
    (``skipped``), as in the numba kernel. This is the ``negative_sampler`` a trainer calls per batch.
    """

    def __init__(
        self,
        user_items: sp.spmatrix | sp.sparray,
        sources: Mapping[str, HardNegatives | None],
        strategy: SamplingStrategy = SamplingStrategy(),
        dynamic: DynamicSamplingConfig | None = None,
    ) -> None:
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise ConfigError(f"unknown negative sources {unknown}; the known ones are {SOURCES}.")
        self.strategy = strategy
        self.dynamic = dynamic
        self.positives = positives_csr(user_items)
        self.n_users, self.n_items = self.positives.shape
        self.sources: dict[str, sp.csr_matrix] = {
            name: hard_negatives_csr(src, self.positives) for name, src in sources.items() if src is not None
        }
        pos = self.positives
        user_of = user_of_interactions(pos).astype(np.int64)
        rank = np.arange(pos.nnz, dtype=np.int64) - pos.indptr[user_of]
        # p_k - k per row is non-decreasing, so row-offset keys are globally sorted: one searchsorted for all
        self._gap_keys = user_of * self.n_items + (pos.indices.astype(np.int64) - rank)
        self._indptr = pos.indptr.astype(np.int64)
        self._n_unseen = self.n_items - np.diff(self._indptr)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys((*SOURCES, RANDOM, "fallback", "skipped"), 0)
        self.last_counts: dict[str, int] = dict(self.counts)

    def _uniform(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform over a user's non-positives: the ``r``-th of them is item ``r + #{k : p_k - k <= r}``."""
        unseen = self._n_unseen[users]
        r = np.minimum((rng.random(users.size) * unseen).astype(np.int64), np.maximum(unseen - 1, 0))
        below = np.searchsorted(self._gap_keys, users * self.n_items + r, side="right") - self._indptr[users]
        return np.where(unseen > 0, r + below, -1)

    def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        """One negative (int64) per entry of ``users``, never a positive of that user; -1 only for users
        with no non-positive item. Counts of the call are in ``last_counts``, running totals in ``counts``."""
        u = np.asarray(users, dtype=np.int64).ravel()
        if u.size and (u.min() < 0 or u.max() >= self.n_users):
            bad = int(u[(u < 0) | (u >= self.n_users)][0])
            raise DataError(f"user index {bad} is outside [0, {self.n_users})")
        ratios = self.strategy.ratios_at(epoch, self.dynamic)
        names = (*SOURCES, RANDOM)
        edges = np.cumsum([ratios[n] for n in names])
        kind = np.minimum(np.searchsorted(edges, rng.random(u.size), side="right"), len(names) - 1)
        out = np.full(u.size, -1, dtype=np.int64)
        uniform = kind == len(names) - 1
        last = dict.fromkeys(self.counts, 0)
        for code, name in enumerate(SOURCES):
            chosen = np.flatnonzero(kind == code)
            if chosen.size == 0:
                continue
            src = self.sources.get(name)
            if src is None:
                uniform[chosen] = True
                last["fallback"] += int(chosen.size)
                continue
            start = src.indptr[u[chosen]].astype(np.int64)
            length = src.indptr[u[chosen] + 1].astype(np.int64) - start
            has = length > 0
            pick = start[has] + np.minimum(
                (rng.random(int(has.sum())) * length[has]).astype(np.int64), length[has] - 1
            )
            out[chosen[has]] = src.indices[pick]
            uniform[chosen[~has]] = True
            last[name] = int(has.sum())
            last["fallback"] += int((~has).sum())
        idx = np.flatnonzero(uniform)
        out[idx] = self._uniform(u[idx], rng)
        last["skipped"] = int(np.count_nonzero(out[idx] < 0))
        last[RANDOM] = int(np.count_nonzero(kind == len(names) - 1))
        self.last_counts = last
        for key, value in last.items():
            self.counts[key] += value
        return out

    def get_stats(self) -> dict[str, float]:
        """Running counts and each kind's share of all draws: a source (drawn from it), ``random`` (rolled
        uniform) and ``fallback`` (a source rolled, drawn uniform because the user's row was empty)."""
        total = sum(self.counts[n] for n in (*SOURCES, RANDOM, "fallback"))
        stats: dict[str, float] = {f"{k}_count": v for k, v in self.counts.items()}
        for name in (*SOURCES, RANDOM, "fallback"):
            stats[f"{name}_share"] = self.counts[name] / total if total else 0.0
        return stats


def build_sources(
    user_items: sp.spmatrix | sp.sparray,
    *,
    hard: HardNegatives | None = None,
    item_embeddings: np.ndarray | None = None,
    item_sentiment: np.ndarray | None = None,
    k: int = 50,
) -> dict[str, sp.csr_matrix]:
    """The sources that the given inputs allow (popular always; contextual with embeddings; sentiment with
    item sentiments, closest-first when embeddings are given too), in the sampler's layout."""
    pos = positives_csr(user_items)
    out = {"popular": popular_negatives(pos, k)}
    if hard is not None:
        out["hard"] = hard_negatives_csr(hard, pos)
    if item_embeddings is not None:
        out["contextual"] = contextual_negatives(pos, item_embeddings, k)
    if item_sentiment is not None:
        out["sentiment"] = sentiment_negatives(pos, item_sentiment, k, item_embeddings=item_embeddings)
    return out
