"""The negatives :class:`core.bpr.torch_trainer.TorchBPR` draws: the sampler protocol, its default
(:class:`UniformNegativeSampler`), and the checks on what a sampler returns. numpy only."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from core.bpr.sampler import positives_csr, user_of_interactions
from core.errors import ConfigError

MAX_REJECTION_ROUNDS = 64


class NegativeSampler(Protocol):
    """Draws one negative item per user (never a train positive of that user; -1 skips the draw). For a
    resumed run to equal an uninterrupted one, draw only from ``rng`` (its state is checkpointed). With
    ``n_candidates > 1`` it is called that many times per epoch, with the same users and ``epoch``."""

    def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray: ...


def positive_keys(positives: sp.csr_matrix) -> np.ndarray:
    """Sorted ``user * n_items + item`` of every positive: membership of many pairs by one searchsorted."""
    rows = user_of_interactions(positives).astype(np.int64)
    return rows * positives.shape[1] + positives.indices  # CSR rows ascending, indices sorted: already sorted


def is_positive(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    wanted = users.astype(np.int64) * n_items + items
    if keys.size == 0:
        return np.zeros(wanted.shape, dtype=bool)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return keys[at] == wanted


class UniformNegativeSampler:
    """Uniform over the user's non-positive items, by rejection: draw for all, redraw the clashes
    (vectorised). Users with no negative at all get -1; after ``MAX_REJECTION_ROUNDS`` rounds the few
    draws left (users who liked almost every item) are made exactly among their negatives."""

    def __init__(self, user_items: sp.spmatrix | sp.sparray) -> None:
        self.positives = positives_csr(user_items)
        self.n_items = int(self.positives.shape[1])
        self._keys = positive_keys(self.positives)
        self._degree = np.diff(self.positives.indptr)

    def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out = rng.integers(0, self.n_items, size=users.size, dtype=np.int64)
        todo = np.flatnonzero(self._degree[users] < self.n_items)
        out[self._degree[users] >= self.n_items] = -1
        for _ in range(MAX_REJECTION_ROUNDS):
            todo = todo[is_positive(self._keys, users[todo], out[todo], self.n_items)]
            if todo.size == 0:
                return out
            out[todo] = rng.integers(0, self.n_items, size=todo.size, dtype=np.int64)
        todo = todo[is_positive(self._keys, users[todo], out[todo], self.n_items)]
        indptr, indices = self.positives.indptr, self.positives.indices
        for k in todo:
            row = indices[indptr[users[k]] : indptr[users[k] + 1]]
            out[k] = rng.choice(np.setdiff1d(np.arange(self.n_items), row))
        return out


def draw_negatives(
    sampler: NegativeSampler, users: np.ndarray, epoch: int, rng: np.random.Generator, n_items: int
) -> np.ndarray:
    """One negative per user from ``sampler``, checked: integers in [-1, n_items) (a sampler is user code)."""
    negs = np.asarray(sampler.sample(users, epoch, rng))
    if negs.shape != users.shape or not np.issubdtype(negs.dtype, np.integer):
        raise ConfigError(
            f"negative_sampler.sample must return one integer item per user: got {negs.dtype} array of "
            f"shape {negs.shape} for {users.size} users"
        )
    negs = negs.astype(np.int64, copy=False)
    if negs.size and (negs.min() < -1 or negs.max() >= n_items):
        raise ConfigError(f"negative_sampler.sample returned items outside [-1, {n_items})")
    return negs
