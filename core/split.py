"""User segmentation, leakage-free train / validation / test splits, and hard negatives.

Segmentation: collaborative filtering can only learn users with some history, so *trainable* users have at
least ``min_interactions`` interactions and ``min_positive`` positives; the rest are *cold-start* users, left
out of CF training and counted in every report.

Splits are per user and hold out POSITIVES only (valid and test are the ground truth, nothing else):

- ``temporal`` (default when timestamps exist): each user's last ``test_frac`` of positives go to test, the
  ``valid_frac`` before them to validation. A non-positive interaction later than the user's first held-out
  positive is dropped rather than trained on (it is the future).
- ``leave_last``: the last positive to test, the one before to validation (the seed's protocol).
- ``random`` (default without timestamps): the same fractions drawn per user with a seeded RNG.

Every held-out part gets ``max(1, round(frac * positives))`` items, and at least one interaction of every user
always stays in train (validation gives way first, then test; also when dropping the future would empty it).
Tuning reads validation only; test is touched once, for the final numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import scipy.sparse as sp

from core.errors import DataError
from core.interactions import POSITIVE_THRESHOLD, Interactions

SplitStrategy = Literal["auto", "temporal", "leave_last", "random"]
SPLIT_STRATEGIES: tuple[str, ...] = ("auto", "temporal", "leave_last", "random")


# ---------------------------------------------------------------------------------------------- segmentation
@dataclass(frozen=True)
class Segmentation:
    """Trainable users (re-indexed contiguously) and what was left out."""

    trainable: Interactions
    n_users_total: int
    n_trainable: int
    n_cold_start: int
    n_items_total: int
    n_items_dropped: int
    n_interactions_dropped: int
    min_interactions: int
    min_positive: int
    positive_threshold: float

    def to_dict(self) -> dict[str, object]:
        return {
            "users_total": self.n_users_total,
            "users_trainable": self.n_trainable,
            "users_cold_start": self.n_cold_start,
            "items_total": self.n_items_total,
            "items_without_trainable_users": self.n_items_dropped,
            "interactions_cold_start": self.n_interactions_dropped,
            "rule": (
                f">= {self.min_interactions} interactions and >= {self.min_positive} positive "
                f"(rating >= {self.positive_threshold:g})"
            ),
        }


def segment_users(
    interactions: Interactions,
    *,
    min_interactions: int = 2,
    min_positive: int = 1,
    positive_threshold: float = POSITIVE_THRESHOLD,
) -> Segmentation:
    """Split users into trainable and cold-start; items seen only by cold-start users leave too."""
    if min_interactions < 1:
        raise ValueError(f"min_interactions must be >= 1, but got {min_interactions=}.")
    if min_positive < 0:
        raise ValueError(f"min_positive must be >= 0, but got {min_positive=}.")
    counts = np.bincount(interactions.user_idx, minlength=interactions.n_users)
    positives = np.bincount(
        interactions.user_idx,
        weights=interactions.positive_mask(positive_threshold).astype(np.float64),
        minlength=interactions.n_users,
    )
    keep = np.flatnonzero((counts >= min_interactions) & (positives >= min_positive))
    if keep.size == 0:
        raise DataError(
            f"no trainable users: none has >= {min_interactions} interactions and >= {min_positive} "
            f"positive (rating >= {positive_threshold:g}) among {interactions.n_users} users",
            source=interactions.source,
        )
    kept_user = np.zeros(interactions.n_users, dtype=bool)
    kept_user[keep] = True
    kept_rows = kept_user[interactions.user_idx]  # a lookup per row, not a search
    items = np.unique(interactions.item_idx[kept_rows])
    trainable = interactions.reindex(keep, items)
    return Segmentation(
        trainable=trainable,
        n_users_total=interactions.n_users,
        n_trainable=int(keep.size),
        n_cold_start=int(interactions.n_users - keep.size),
        n_items_total=interactions.n_items,
        n_items_dropped=int(interactions.n_items - items.size),
        n_interactions_dropped=int(len(interactions) - len(trainable)),
        min_interactions=min_interactions,
        min_positive=min_positive,
        positive_threshold=positive_threshold,
    )


# ---------------------------------------------------------------------------------------------- split
@dataclass(frozen=True)
class Split:
    """Three parts in ONE index space, so factors fit on train score validation and test directly."""

    train: Interactions
    valid: Interactions
    test: Interactions
    strategy: str
    seed: int | None = None

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def valid_truth(self) -> sp.csr_matrix:
        return self.valid.to_csr()

    def test_truth(self) -> sp.csr_matrix:
        return self.test.to_csr()

    def valid_exclude(self) -> sp.csr_matrix:
        """What validation ranking leaves out: the user's train items."""
        return self.train.to_csr()

    def test_exclude(self) -> sp.csr_matrix:
        """What test ranking leaves out: train AND validation items."""
        return self.train.concat(self.valid).to_csr()

    def train_valid(self) -> Interactions:
        """Train + validation, for the final refit whose test numbers are reported."""
        return self.train.concat(self.valid)

    def describe(self) -> dict[str, object]:
        def users_with(part: Interactions) -> int:
            return int(np.unique(part.user_idx).size)

        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "train_interactions": len(self.train),
            "valid_interactions": len(self.valid),
            "test_interactions": len(self.test),
            "valid_users": users_with(self.valid),
            "test_users": users_with(self.test),
        }


def _holdout_counts(
    n_pos: np.ndarray, n_total: np.ndarray, valid_frac: float, test_frac: float, fixed: bool
) -> tuple[np.ndarray, np.ndarray]:
    if fixed:
        n_test = np.minimum(1, n_pos)
        n_valid = np.minimum(1, n_pos - n_test)
    else:
        n_test = np.where(n_pos > 0, np.maximum(1, np.floor(test_frac * n_pos + 0.5)), 0).astype(np.int64)
        n_valid = np.where(n_pos > 0, np.maximum(1, np.floor(valid_frac * n_pos + 0.5)), 0).astype(np.int64)
        n_valid = np.minimum(n_valid, n_pos - np.minimum(n_test, n_pos))
        n_test = np.minimum(n_test, n_pos)
        if valid_frac == 0:
            n_valid[:] = 0
    # at least one interaction stays in train: validation gives way first, then test
    over = np.maximum(0, n_test + n_valid - (n_total - 1))
    cut_valid = np.minimum(over, n_valid)
    n_valid = n_valid - cut_valid
    n_test = np.maximum(0, n_test - (over - cut_valid))
    return n_test, n_valid


def split(
    interactions: Interactions,
    strategy: SplitStrategy = "auto",
    *,
    valid_frac: float = 0.1,
    test_frac: float = 0.2,
    positive_threshold: float = POSITIVE_THRESHOLD,
    seed: int = 42,
) -> Split:
    """Per-user holdout of positives; see the module docstring for the rules."""
    if strategy not in SPLIT_STRATEGIES:
        raise ValueError(f"strategy must be one of {SPLIT_STRATEGIES}, but got {strategy=}.")
    for name, frac in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{name} must be in [0, 1), but got {name}={frac}.")
    if test_frac == 0.0 or valid_frac + test_frac >= 1.0:
        raise ValueError(
            f"need 0 < test_frac and valid_frac + test_frac < 1, but got {valid_frac=}, {test_frac=}."
        )
    has_time = interactions.timestamp is not None
    if strategy == "auto":
        strategy = "temporal" if has_time else "random"
    if strategy == "temporal" and not has_time:
        raise DataError("--split temporal needs timestamps; this data has none", source=interactions.source)

    n = len(interactions)
    user = interactions.user_idx.astype(np.int64)
    rows = np.arange(n)
    positive = interactions.positive_mask(positive_threshold)
    if strategy == "random":
        key = np.random.default_rng(seed).random(n)
    elif has_time:
        key = interactions.timestamp.astype(np.float64)  # type: ignore[union-attr]
    else:
        key = rows.astype(np.float64)  # leave_last without timestamps: file order

    # rank positives from the end within each user (rank 0 = last), ties by row order
    pos_rows = rows[positive]
    order = np.lexsort((pos_rows, key[pos_rows], user[pos_rows]))
    sorted_rows = pos_rows[order]
    sorted_users = user[sorted_rows]
    n_pos = np.bincount(sorted_users, minlength=interactions.n_users)
    n_total = np.bincount(user, minlength=interactions.n_users)
    ends = np.cumsum(n_pos)
    rank_from_end = ends[sorted_users] - 1 - np.arange(sorted_rows.size)
    n_test, n_valid = _holdout_counts(n_pos, n_total, valid_frac, test_frac, fixed=strategy == "leave_last")
    drop_future = strategy != "random" and has_time

    def assign(n_test: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
        to_test = rank_from_end < n_test[sorted_users]
        to_valid = ~to_test & (rank_from_end < (n_test + n_valid)[sorted_users])
        part = np.zeros(n, dtype=np.int8)  # 0 train, 1 valid, 2 test, -1 dropped
        part[sorted_rows[to_valid]] = 1
        part[sorted_rows[to_test]] = 2
        if drop_future:
            held = part > 0
            cutoff = np.full(interactions.n_users, np.inf)
            np.minimum.at(cutoff, user[held], key[held])
            part[(part == 0) & ~positive & (key >= cutoff[user])] = -1
        return part

    part = assign(n_test, n_valid)
    # Dropping the future can empty a user's train part: hand positives back (validation first) until not.
    while True:
        in_train = np.bincount(user[part == 0], minlength=interactions.n_users)
        empty = (in_train == 0) & (n_test + n_valid > 0)
        if not empty.any():
            break
        from_valid = empty & (n_valid > 0)
        n_valid = n_valid - from_valid
        n_test = n_test - (empty & ~from_valid)
        part = assign(n_test, n_valid)

    return Split(
        train=interactions.subset(part == 0),
        valid=interactions.subset(part == 1),
        test=interactions.subset(part == 2),
        strategy=strategy,
        seed=seed if strategy == "random" else None,
    )


def split_from_parts(
    train: Interactions,
    valid: Interactions,
    test: Interactions,
    *,
    positive_threshold: float = POSITIVE_THRESHOLD,
) -> Split:
    """A split given by the user's own files, mapped into train's index space.

    Validation and test keep their positives only (they are ground truth); a user or item that does not occur
    in train cannot be scored by CF and is an error naming the file.
    """

    def into_train_space(part: Interactions) -> Interactions:
        frame = part.to_frame()
        mapped = Interactions.from_frame(
            frame,
            kind=part.kind,
            source=part.source,
            users=train.users,
            items=train.items,
            line=part.line,
            line_unit=part.line_unit,
        )
        mapped = replace(mapped, item_titles=train.item_titles)
        return mapped.subset(mapped.positive_mask(positive_threshold))

    return Split(train=train, valid=into_train_space(valid), test=into_train_space(test), strategy="given")


# ---------------------------------------------------------------------------------------------- negatives
def hard_negatives(
    train: Interactions,
    *,
    explicit_max_rating: float = 3.0,
    top_popular: int = 50,
    positive_threshold: float = POSITIVE_THRESHOLD,
) -> sp.csr_matrix:
    """Per-user hard negatives for BPR: explicit (rated <= ``explicit_max_rating``) and implicit (among the
    ``top_popular`` most popular train items, those the user never interacted with). Users x items, binary."""
    if top_popular < 0:
        raise ValueError(f"top_popular must be >= 0, but got {top_popular=}.")
    n_users, n_items = train.shape
    seen = train.to_csr()
    parts = []
    if train.kind == "rating":
        low = train.subset((train.rating <= explicit_max_rating) & ~train.positive_mask(positive_threshold))
        parts.append(low.to_csr())
    if top_popular:
        popularity = np.bincount(train.item_idx, minlength=n_items)
        top = np.argsort(-popularity, kind="stable")[: min(top_popular, n_items)]
        top = np.sort(top)
        rows = np.repeat(np.arange(n_users), top.size)
        cols = np.tile(top, n_users)
        popular = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
        )
        seen_bin = seen.copy()
        seen_bin.data[:] = 1
        parts.append(popular - popular.multiply(seen_bin))
    if not parts:
        return sp.csr_matrix((n_users, n_items), dtype=np.float32)
    merged = parts[0]
    for extra in parts[1:]:
        merged = merged + extra
    merged = sp.csr_matrix(merged)
    merged.eliminate_zeros()
    merged.data[:] = 1
    # never a positive as a negative
    positives = train.subset(train.positive_mask(positive_threshold)).to_csr()
    positives.data[:] = 1
    merged = sp.csr_matrix(merged - merged.multiply(positives))
    merged.eliminate_zeros()
    merged.sort_indices()
    return merged.astype(np.float32)
