"""Data with a known answer, shared by the BPR tests: users who like only the items of their own cluster."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def clustered(
    n_users: int = 240, n_items: int = 96, n_clusters: int = 4, per_user: int = 12, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Users like items of their own cluster only: (train, valid) with 2 held-out cluster items per user."""
    rng = np.random.default_rng(seed)
    size = n_items // n_clusters
    rows: list[int] = []
    cols: list[int] = []
    vrows: list[int] = []
    vcols: list[int] = []
    for u in range(n_users):
        c = u % n_clusters
        items = rng.choice(np.arange(c * size, (c + 1) * size), per_user + 2, replace=False)
        rows += [u] * per_user
        cols += list(items[:per_user])
        vrows += [u, u]
        vcols += list(items[per_user:])
    shape = (n_users, n_items)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    valid = sp.csr_matrix((np.ones(len(vrows), np.float32), (vrows, vcols)), shape=shape)
    return train, valid
