"""Planted low-rank logs of any shape, to measure a search on data nobody tuned it on.

:func:`make_planted` serves benchmarks and tests (``bench/quality.py``): a rank-r structure plus Zipf
popularity with the shape (users, items, density, skew, noise, activity tail) as arguments. The demo dataset
of one fixed shape is :func:`core.synthetic.make_synthetic`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from core.errors import ConfigError
from core.interactions import Interactions

_START = 1_672_531_200  # 2023-01-01 00:00 UTC
_SPAN = 365 * 24 * 3600
#: Planted ratings are ``round(_RATING_CENTER + z + noise)``, ``z`` the standardised affinity of the chosen
#: rows: at 3.6 about half the rows are 4-5 stars (positives at the default threshold), as on MovieLens.
_RATING_CENTER = 3.6
_DAY = 24 * 3600


def make_planted(
    n_users: int = 3000,
    n_items: int = 1500,
    rank: int = 16,
    density: float = 0.015,
    popularity_skew: float = 1.0,
    rating_noise: float = 0.5,
    seed: int = 0,
    *,
    activity_sigma: float = 1.0,
    signal: float = 2.0,
    positive_share: float | None = None,
) -> Interactions:
    """A log with a planted rank-``rank`` structure and Zipf popularity, of a shape chosen by the caller.

    Unlike :func:`core.synthetic.make_synthetic` (one fixed shape mimicking the product's data), this
    generator exists to test whether a search finds good models on data nobody tuned it on, so every shape
    parameter is an argument.

    Users and items get standard normal factors; the affinity ``a = U V^T / sqrt(rank)`` has std ~1. Item
    ``i`` also has a popularity term ``-popularity_skew * log(r_i)`` (``r_i`` its random popularity rank: Zipf
    with that exponent). Each user picks ``n_u`` distinct items, each next one with probability ∝
    ``exp(signal * a + popularity term)`` among those left (Gumbel top-k), so a model that learns the factors
    beats popularity and popularity still beats random. ``n_u`` is log-normal (shape ``activity_sigma``, heavy
    right tail), at least 1 and at most half the items, scaled so the mean is ``density * n_items``: a small
    density with ``activity_sigma >= 1`` gives "most users have fewer than 5 interactions".

    Ratings 1-5 grow with the user's affinity to the item (standardised over the chosen rows) plus
    ``rating_noise`` times a standard normal; about half are 4 or 5, or ``positive_share`` of them when given
    (the centre of the ratings moved to where that share of the rows rounds to 4 or more).
    Timestamps increase per user (random order of the picks, gaps of about a day) so a temporal split works.
    Ids are strings (``u00001``, ``i00001``); items nobody picked are left out of the index, as a loader
    would. Deterministic for a given ``seed``.
    """
    _check_planted(
        n_users, n_items, rank, density, popularity_skew, rating_noise, activity_sigma, signal, positive_share
    )
    rng = np.random.default_rng(seed)
    user_f = rng.standard_normal((n_users, rank))
    item_f = rng.standard_normal((n_items, rank)) / np.sqrt(rank)
    log_pop = -popularity_skew * np.log(rng.permutation(n_items) + 1.0)
    counts = _planted_counts(rng, n_users, density * n_items, activity_sigma, max(1, n_items // 2))
    u, i, a = _planted_picks(rng, user_f, item_f, signal, log_pop, counts)
    z = (a - a.mean()) / (a.std() + 1e-12)
    rating = _ratings(z, rating_noise * rng.standard_normal(u.size), positive_share)
    order = np.lexsort((rng.random(u.size), u))  # grouped by user, picks in random order
    u, i, rating = u[order], i[order], rating[order]
    timestamp = _planted_times(rng, u, n_users)
    user_ids = pd.Index([f"u{k:05d}" for k in range(n_users)], name="user_id")
    item_ids = pd.Index([f"i{k:05d}" for k in range(n_items)], name="item_id")
    used = np.bincount(i, minlength=n_items) > 0
    frame = pd.DataFrame(
        {
            "user_id": user_ids[u],
            "item_id": item_ids[i],
            "rating": rating.astype(np.float32),
            "timestamp": timestamp,
        }
    )
    params: dict[str, object] = {
        "n_users": n_users,
        "n_items": n_items,
        "rank": rank,
        "density": density,
        "popularity_skew": popularity_skew,
        "rating_noise": rating_noise,
        "activity_sigma": activity_sigma,
        "signal": signal,
        **({} if positive_share is None else {"positive_share": positive_share}),
    }
    data = Interactions.from_frame(
        frame,
        kind="rating",
        source=f"planted low-rank (rank={rank}, seed={seed})",
        rating_scale=(1.0, 5.0),
        users=user_ids,
        items=item_ids[used],
    )
    meta = {"synthetic": True, "seed": seed, "generator": "core.planted.make_planted", "params": params}
    return replace(data, meta=meta)


def _ratings(z: np.ndarray, noise: np.ndarray, positive_share: float | None) -> np.ndarray:
    """Ratings 1-5 around :data:`_RATING_CENTER`, or around the centre where ``positive_share`` of the rows
    round to 4 or more (the affinities of chosen rows are skewed, so the centre is their quantile)."""
    if positive_share is None:
        return np.clip(np.rint(_RATING_CENTER + z + noise), 1, 5)
    center = 3.5 - float(np.quantile(z + noise, 1.0 - positive_share))
    return np.clip(np.rint(center + z + noise), 1, 5)


def _planted_picks(
    rng: np.random.Generator,
    user_f: np.ndarray,
    item_f: np.ndarray,
    signal: float,
    log_pop: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's ``counts[u]`` picks by Gumbel top-k, in blocks of ~16 MB: (user, item, affinity)."""
    n_users, n_items = user_f.shape[0], item_f.shape[0]
    users_parts, items_parts, aff_parts = [], [], []
    chunk = max(1, 2_000_000 // n_items)  # rows of a dense users x items block: ~16 MB each
    for lo in range(0, n_users, chunk):
        hi = min(n_users, lo + chunk)
        aff = user_f[lo:hi] @ item_f.T
        keys = signal * aff + log_pop + rng.gumbel(size=aff.shape)
        k = int(counts[lo:hi].max())
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        rows, pos = np.nonzero(np.arange(k)[None, :] < counts[lo:hi, None])
        users_parts.append(rows + lo)
        items_parts.append(top[rows, pos])
        aff_parts.append(aff[rows, top[rows, pos]])
    return np.concatenate(users_parts), np.concatenate(items_parts), np.concatenate(aff_parts)


def _planted_counts(
    rng: np.random.Generator, n_users: int, mean: float, sigma: float, cap: int
) -> np.ndarray:
    """Log-normal interactions per user in ``[1, cap]`` with mean ``mean``: the scale the clipping needs is
    found by bisection, then each count is rounded up or down at random so fractions keep their mean."""
    base = np.exp(sigma * rng.standard_normal(n_users) - sigma**2 / 2)
    lo, hi = 0.0, float(cap) / max(float(base.min()), 1e-12)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(mid * base, 1, cap).mean() < mean else (lo, mid)
    x = np.clip(lo * base, 1, cap)
    return np.minimum(cap, np.floor(x) + (rng.random(n_users) < x - np.floor(x))).astype(np.int64)


def _planted_times(rng: np.random.Generator, u: np.ndarray, n_users: int) -> np.ndarray:
    """Per user: a start in the first half of the year, then gaps of 1 s plus about a day (exponential)."""
    gaps = 1 + np.floor(rng.exponential(_DAY, size=u.size)).astype(np.int64)
    cum = np.cumsum(gaps)
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]
    before = np.repeat(cum[starts] - gaps[starts], np.diff(np.r_[starts, u.size]))
    first = _START + rng.integers(0, _SPAN // 2, size=n_users)
    return (first[u] + cum - before).astype(np.int64)


def _check_planted(
    n_users: int,
    n_items: int,
    rank: int,
    density: float,
    popularity_skew: float,
    rating_noise: float,
    activity_sigma: float,
    signal: float,
    positive_share: float | None = None,
) -> None:
    """Each argument on its own, the message naming the value."""
    if n_users < 1:
        raise ConfigError(f"n_users must be >= 1, but got {n_users=}.")
    if n_items < 2:
        raise ConfigError(f"n_items must be >= 2, but got {n_items=}.")
    if rank < 1:
        raise ConfigError(f"rank must be >= 1, but got {rank=}.")
    if not 1.0 <= density * n_items <= n_items // 2:
        raise ConfigError(
            f"density must give 1 to n_items/2 interactions per user on average, but got {density=} "
            f"({density * n_items:g} per user of {n_items} items)."
        )
    if popularity_skew < 0:
        raise ConfigError(f"popularity_skew must be >= 0, but got {popularity_skew=}.")
    if rating_noise < 0:
        raise ConfigError(f"rating_noise must be >= 0, but got {rating_noise=}.")
    if activity_sigma < 0:
        raise ConfigError(f"activity_sigma must be >= 0, but got {activity_sigma=}.")
    if signal < 0:
        raise ConfigError(f"signal must be >= 0, but got {signal=}.")
    if positive_share is not None and not 0.0 < positive_share < 1.0:
        raise ConfigError(f"positive_share must be in (0, 1), but got {positive_share=}.")
