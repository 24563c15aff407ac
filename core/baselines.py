"""Reference recommenders scored by the same evaluator: popularity (the floor) and EASE (the strong linear
reference of Steck 2019, closed form)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.errors import ConfigError

#: Above this many items the dense item x item Gram matrix of EASE is too large to be worth it.
EASE_MAX_ITEMS = 20_000


@dataclass(frozen=True)
class PopularityScorer:
    """Scores every item by its interaction count in the history it is given (same for every user)."""

    counts: np.ndarray

    @classmethod
    def fit(cls, user_items: sp.csr_matrix) -> PopularityScorer:
        binary = sp.csr_matrix(user_items, copy=True)
        binary.data[:] = 1
        return cls(np.asarray(binary.sum(axis=0)).ravel().astype(np.float32))

    @property
    def n_items(self) -> int:
        return int(self.counts.shape[0])

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()


@dataclass(frozen=True)
class EASEScorer:
    """Embarrassingly Shallow Autoencoder: ``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1``,
    scores ``X[u] @ B``. ``history`` is the binary user x item matrix the scores are computed from."""

    weights: np.ndarray
    history: sp.csr_matrix
    l2: float

    @classmethod
    def fit(cls, user_items: sp.csr_matrix, l2: float = 500.0) -> EASEScorer:
        n_items = user_items.shape[1]
        if n_items > EASE_MAX_ITEMS:
            raise ConfigError(
                f"EASE needs a dense {n_items} x {n_items} matrix; skipped above {EASE_MAX_ITEMS}"
            )
        if l2 <= 0:
            raise ConfigError(f"l2 must be > 0, but got {l2=}.")
        x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
        x.data[:] = 1
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n_items)] += l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices(n_items)] = 0.0
        return cls(b.astype(np.float32), sp.csr_matrix(x, dtype=np.float32), float(l2))

    @property
    def n_items(self) -> int:
        return int(self.weights.shape[0])

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.history[users] @ self.weights, dtype=np.float32)


def tune_ease(
    train: sp.csr_matrix,
    valid_truth: sp.csr_matrix,
    *,
    l2_grid: Sequence[float] = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0),
    metric: str = "ndcg@10",
) -> tuple[float, dict[float, float]]:
    """Pick EASE's lambda on validation (train items excluded). Returns the best lambda and every score."""
    from core.evaluate import evaluate_scorer

    scores: dict[float, float] = {}
    for l2 in l2_grid:
        result = evaluate_scorer(EASEScorer.fit(train, l2), valid_truth, train, ks=(10,))
        scores[float(l2)] = result.metrics[metric]
    best = max(scores, key=lambda k: scores[k])
    return best, scores
