"""The integrity checks a BPR fit runs on its data first (both trainers): what training cannot run on is a
:class:`core.errors.DataError`, what it can but deserves a look is a warning."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from core.bpr.sampler import HardNegatives, hard_negatives_csr, positives_csr
from core.errors import DataError


def validate_interactions(
    user_items: sp.spmatrix | sp.sparray, hard_negatives: HardNegatives | None = None
) -> list[str]:
    """Integrity report. Raises :class:`DataError` for what training cannot run on; returns warnings
    (empty users, hard negatives that are positives, ...) for what it can, but which deserve a look."""
    if not sp.issparse(user_items):
        raise DataError(
            f"user_items must be a scipy sparse users x items matrix, got {type(user_items).__name__}"
        )
    if user_items.ndim != 2 or min(user_items.shape) < 1:
        raise DataError(f"user_items must be a non-empty 2-D matrix, got shape {user_items.shape}")
    n_users, n_items = user_items.shape
    if n_items >= 2**31 or n_users >= 2**31:
        raise DataError(f"user_items shape {user_items.shape} exceeds int32 indices")
    if sp.isspmatrix_csr(user_items):
        _check_csr_structure(user_items, "user_items")
        values = user_items.data
    else:
        values = sp.coo_matrix(user_items).data
    if not np.isfinite(values).all():
        raise DataError("user_items contains NaN or inf values")
    pos = positives_csr(user_items)
    if pos.nnz == 0:
        raise DataError("user_items has no positive (nonzero) interactions")
    messages: list[str] = []
    empty = int(np.count_nonzero(np.diff(pos.indptr) == 0))
    if empty:
        messages.append(
            f"{empty} of {n_users} users have no positives: they get no updates (factors stay at init)"
        )
    full = int(np.count_nonzero(np.diff(pos.indptr) >= n_items))
    if full:
        messages.append(f"{full} users liked every item: no negative exists, their draws are skipped")
    unseen = int(np.count_nonzero(np.bincount(pos.indices, minlength=n_items) == 0))
    if unseen:
        messages.append(f"{unseen} of {n_items} items have no positives: they are only ever pushed down")
    if hard_negatives is not None:
        if not isinstance(hard_negatives, Mapping):
            if hard_negatives.shape != user_items.shape:
                shapes = f"{hard_negatives.shape} vs user_items {user_items.shape}"
                raise DataError(f"hard_negatives shape differs: {shapes}")
            if sp.isspmatrix_csr(hard_negatives):
                _check_csr_structure(hard_negatives, "hard_negatives")
        raw = hard_negatives_csr(hard_negatives, sp.csr_matrix(pos.shape, dtype=np.float32))
        clash = int(raw.multiply(pos).nnz)
        if clash:
            messages.append(
                f"{clash} hard negatives are also positives of their user: dropped before sampling"
            )
        if raw.nnz == clash:
            messages.append("no usable hard negatives: every negative will be drawn uniformly")
    return messages


def _check_csr_structure(m: sp.csr_matrix, name: str) -> None:
    """Out-of-range or malformed CSR arrays would make the kernel read outside its arrays."""
    n_rows, n_cols = m.shape
    if m.indptr.shape[0] != n_rows + 1 or m.indptr[0] != 0 or np.any(np.diff(m.indptr) < 0):
        raise DataError(f"{name} has a malformed indptr")
    if m.indptr[-1] != m.indices.shape[0]:
        raise DataError(f"{name}: indptr ends at {m.indptr[-1]} but there are {m.indices.shape[0]} indices")
    if m.indices.size and (m.indices.min() < 0 or m.indices.max() >= n_cols):
        bad = int(np.flatnonzero((m.indices < 0) | (m.indices >= n_cols))[0])
        raise DataError(f"{name} has item index {m.indices[bad]} outside [0, {n_cols}) at stored entry {bad}")
