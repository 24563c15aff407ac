"""Triplet sampling with hard-negative mixing, as inspectable Python objects over the kernel's own draw code.

The trainer never materialises triplets (the kernel draws them inline); these classes exist so that the
sampling rule can be looked at, tested and reported (``get_stats``) with exactly the code that trains.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeAlias

import numpy as np
import scipy.sparse as sp

from core.bpr import kernel
from core.errors import DataError

HardNegatives: TypeAlias = sp.spmatrix | sp.sparray | Mapping[int, Collection[int]]


def positives_csr(user_items: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Binary users x items CSR with sorted int32 rows: the layout the binary search needs."""
    if not sp.issparse(user_items):
        raise DataError(f"user_items must be a scipy sparse matrix, got {type(user_items).__name__}")
    m = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.data[:] = 1.0
    m.sort_indices()
    m.indices = m.indices.astype(np.int32, copy=False)
    return m


def hard_negatives_csr(hard: HardNegatives | None, positives: sp.csr_matrix) -> sp.csr_matrix:
    """Hard negatives as a CSR of the positives' shape, with positives removed (sampled rows stay clean)."""
    shape = positives.shape
    if hard is None:
        return sp.csr_matrix(shape, dtype=np.float32)
    if isinstance(hard, Mapping):
        rows = [np.full(len(items), int(u), dtype=np.int64) for u, items in hard.items()]
        cols = [np.fromiter(items, dtype=np.int64, count=len(items)) for items in hard.values()]
        r = np.concatenate(rows) if rows else np.empty(0, np.int64)
        c = np.concatenate(cols) if cols else np.empty(0, np.int64)
        bad = (r < 0) | (r >= shape[0]) | (c < 0) | (c >= shape[1])
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"hard negative (user {r[k]}, item {c[k]}) is outside the {shape} matrix")
        matrix = sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=shape)
    else:
        matrix = hard
    if matrix.shape != shape:
        raise DataError(f"hard_negatives has shape {matrix.shape} but user_items has shape {shape}")
    h = positives_csr(matrix)
    h = (h - h.multiply(positives)).tocsr()
    h.eliminate_zeros()
    h.sort_indices()
    h.indices = h.indices.astype(np.int32, copy=False)
    return h


def user_of_interactions(positives: sp.csr_matrix) -> np.ndarray:
    """Row index of every stored interaction: how the kernel maps a sampled interaction to its user."""
    return np.repeat(np.arange(positives.shape[0], dtype=np.int32), np.diff(positives.indptr))


def _stream(seed: int) -> np.ndarray:
    return kernel.fix_seeds(np.random.SeedSequence(seed).generate_state(1, np.uint64))


class HardNegativeMixer:
    """Each negative is hard with probability ``hard_ratio`` (from the user's hard set minus positives),
    otherwise uniform over the user's unseen items; users without hard negatives always get uniform ones."""

    def __init__(self, hard_neg_sets: HardNegatives | None, hard_ratio: float = 0.3, seed: int = 42) -> None:
        if not 0.0 <= hard_ratio <= 1.0:
            raise ValueError(f"hard_ratio must be in [0, 1], but got {hard_ratio=}.")
        self.hard_neg_sets = hard_neg_sets
        self.hard_ratio = hard_ratio
        self.seed = seed
        self._state = _stream(seed)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.hard_count = 0
        self.random_count = 0
        self.skipped_count = 0

    def record(self, kinds: np.ndarray) -> None:
        """Add the kinds of a batch of draws to the running counts."""
        self.hard_count += int(np.count_nonzero(kinds == kernel.KIND_HARD))
        self.random_count += int(np.count_nonzero(kinds == kernel.KIND_RANDOM))
        self.skipped_count += int(np.count_nonzero(kinds == kernel.KIND_SKIPPED))

    def bind(self, user_items: sp.spmatrix | sp.sparray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(positives, hard negatives) in kernel layout for ``user_items``; cached for the last matrix."""
        cached = getattr(self, "_bound", None)
        if cached is not None and cached[0] is user_items:
            return cached[1], cached[2]
        pos = positives_csr(user_items)
        hard = hard_negatives_csr(self.hard_neg_sets, pos)
        self._bound = (user_items, pos, hard)
        return pos, hard

    def sample_negatives(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        """One negative per entry of ``users`` (-1 where every try hit a positive)."""
        pos, hard = self.bind(user_items)
        out, kinds = kernel.sample_negatives(
            np.ascontiguousarray(users, dtype=np.int64),
            pos.indptr.astype(np.int64),
            pos.indices,
            hard.indptr.astype(np.int64),
            hard.indices,
            pos.shape[1],
            kernel.hard_threshold_of(self.hard_ratio),
            self._state,
        )
        self.record(kinds)
        return out

    def get_stats(self) -> dict[str, float]:
        """Counts and shares of hard and random negatives drawn so far (skipped draws not in the shares)."""
        total = self.hard_count + self.random_count
        return {
            "hard_count": self.hard_count,
            "random_count": self.random_count,
            "skipped_count": self.skipped_count,
            "hard_ratio": self.hard_count / total if total else 0.0,
            "random_ratio": self.random_count / total if total else 0.0,
        }


class TripletSampler:
    """(user, positive, negative) triplets; an epoch is ``samples_per_epoch * nnz`` draws.

    Positives are drawn uniformly over interactions (not over users), negatives through ``mixer``. Draws
    whose tries all hit positives are dropped, so an epoch has fewer rows only for users who liked almost
    every item (``mixer.get_stats()["skipped_count"]`` says how many).
    """

    def __init__(
        self,
        user_items: sp.spmatrix | sp.sparray,
        mixer: HardNegativeMixer,
        samples_per_epoch: int = 5,
        seed: int = 42,
    ) -> None:
        if samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, but got {samples_per_epoch=}.")
        self.positives, self._hard = mixer.bind(user_items)
        if self.positives.nnz == 0:
            raise DataError("user_items has no positive interactions to sample from")
        self.mixer = mixer
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self._state = _stream(seed)
        self._user_of = user_of_interactions(self.positives)

    @property
    def n_samples(self) -> int:
        return self.samples_per_epoch * self.positives.nnz

    def sample_epoch(self) -> np.ndarray:
        """(N, 3) int64 rows ``[u, i, j]``; N = ``samples_per_epoch * nnz`` minus skipped draws."""
        triplets, kinds = kernel.sample_triplets(
            self.positives.indptr.astype(np.int64),
            self.positives.indices,
            self._user_of,
            self._hard.indptr.astype(np.int64),
            self._hard.indices,
            self.positives.shape[1],
            kernel.hard_threshold_of(self.mixer.hard_ratio),
            self.n_samples,
            self._state,
        )
        self.mixer.record(kinds)
        return triplets[kinds != kernel.KIND_SKIPPED]
