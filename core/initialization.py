"""Starting item factors projected from a given matrix (text embeddings), shared by ALS and BPR.

Text-embedding initialisation anchors sparse items in a semantic space: a 384- or 768-dim embedding is
projected to ``factors`` dims (SVD or PCA) and rescaled to the magnitude of random initialisation, so that the
optimiser sees the same scale either way.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Projection = Literal["svd", "pca"]


def project_item_factors(
    matrix: np.ndarray,
    factors: int,
    *,
    method: Projection = "svd",
    std: float = 0.01,
) -> tuple[np.ndarray, float]:
    """Project ``matrix`` (n_items x d) to ``factors`` dims; returns the factors and the explained variance.

    ``pca`` centres the columns first; ``svd`` keeps the raw geometry (dot products of the embeddings).
    When ``d < factors`` the remaining columns are zero. The result is rescaled to standard deviation ``std``.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"item factor matrix must be 2-D, but got shape {m.shape}.")
    if not np.all(np.isfinite(m)):
        raise ValueError("item factor matrix contains NaN or inf")
    if method not in ("svd", "pca"):
        raise ValueError(f"method must be 'svd' or 'pca', but got {method=}.")
    if method == "pca":
        m = m - m.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    k = min(factors, s.size)
    projected = np.zeros((m.shape[0], factors))
    projected[:, :k] = u[:, :k] * s[:k]
    total = float(np.sum(s**2))
    explained = float(np.sum(s[:k] ** 2) / total) if total > 0 else 0.0
    scale = projected.std()
    if scale > 0:
        projected *= std / scale
    return projected.astype(np.float32), explained
