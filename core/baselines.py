"""Reference recommenders scored by the same evaluator: popularity (the floor) and EASE (the strong linear
reference of Steck 2019, closed form).

EASE's weights are ``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1``, scores ``X[u] @ B``. Two exact
ways to get them, picked by which Gram matrix is smaller (flops and memory both scale with its side, cubed and
squared):

- items side (items <= users with history): ``P`` by inverting the items x items Gram, ``B`` stored, scores
  ``X_b @ B`` (the former computation, bit for bit);
- users side (users < items, Woodbury / push-through): with ``M = (X X^T + lambda I)^-1`` (users x users),
  ``X_b P = M_b X`` and ``diag(P) = (1 - diag(X^T M X)) / lambda``, so no items x items matrix is ever formed.

The Gram matrix is built once per history (:class:`EASEGram`) and reused for every lambda; each lambda costs
one dense inverse of it (Cholesky) plus scoring by compiled kernels. The gain is the side: 3k users x 10k
items inverts 2.8k x 2.8k instead of 10k x 10k (bench/ease_speed.py). An eigendecomposition once per history
does not pay: ``eigh`` measured ~5-7x an inverse, and every lambda still needs a side^3 product to score all
items.

Item limit: no dense matrix wider than :data:`EASE_MAX_ITEMS` is formed. When both the users with history and
the items are above it, EASE is fit on the :data:`EASE_MAX_ITEMS` most popular items of the history it is
given (ties to the lower item index); every other item scores ``-inf``, i.e. ranks below every kept item (a
full-ranking evaluation still counts it, as a miss, when it is relevant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from core.errors import ConfigError
from core.evaluate import EvalResult, evaluate_scorer
from core.names import DEFAULT_METRIC, metric_k

#: Widest dense matrix EASE forms (float64, side x side: 0.8 GB at 10,000; inverting holds four of them).
#: Above it on both sides (users with history and items), EASE keeps this many most popular items and scores
#: the rest ``-inf``.
EASE_MAX_ITEMS = 10_000
#: The lambdas :func:`tune_ease` tries on validation.
EASE_L2_GRID: tuple[float, ...] = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
#: Column block of the sparse Gram product (bounds its temporaries).
_BLOCK = 1024


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


# ---------------------------------------------------------------------------------------------- kernels
def _gram(a: sp.csr_matrix) -> np.ndarray:
    """Dense float64 ``a^T a``, a column block at a time so the sparse product never holds more than one."""
    n = a.shape[1]
    at, ac = a.T.tocsr(), a.tocsc()
    out = np.empty((n, n))
    for start in range(0, n, _BLOCK):
        out[:, start : start + _BLOCK] = (at @ ac[:, start : start + _BLOCK]).toarray()
    return out


def _inverse_plus(gram: np.ndarray, l2: float) -> np.ndarray:
    """``(gram + l2 I)^-1``, float64, by a Cholesky factorisation and its inverse (LAPACK ``potrf`` +
    ``potri``): a third of the flops of an LU ``inv``, and the shifted Gram is positive definite for any
    ``l2 > 0``. At side 10,000 on this machine's 2 quiet cores, 20.9 s against NumPy ``inv``'s 40.7 s, equal
    to 3e-15 relative (the ML-20M shape's EASE fits five of them). ``potri`` fills one triangle; the other
    is copied over a column block at a time (no second full copy). The diagonal is shifted in place and
    restored exactly, so no second copy of ``gram`` is held; a factorisation LAPACK refuses (not positive
    definite in floating point) falls back to ``inv``."""
    diagonal = gram.diagonal().copy()
    gram[np.diag_indices_from(gram)] += l2
    try:
        chol, info = lapack.dpotrf(gram, lower=False, clean=False)
        if info == 0:
            inverse, info = lapack.dpotri(chol, lower=False, overwrite_c=True)
        if info != 0:
            return np.linalg.inv(gram)
    finally:
        gram[np.diag_indices_from(gram)] = diagonal
    n = inverse.shape[0]
    for start in range(0, n, _BLOCK):  # the lower triangle from the upper, block by block
        stop = min(n, start + _BLOCK)
        inverse[start:stop, :start] = inverse[:start, start:stop].T
        block = inverse[start:stop, start:stop]
        block[:] = np.triu(block) + np.triu(block, 1).T
    return inverse


@numba.njit(parallel=True, nogil=True, cache=True)
def _rows_times(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, b: np.ndarray, out: np.ndarray
) -> None:
    """``out[r] = X[rows[r]] @ b`` for a binary CSR ``X``: the rows of ``b`` at the user's items, summed in
    index order (as SciPy's single-threaded product does), one user per thread."""
    for r in numba.prange(rows.shape[0]):  # pragma: no cover - compiled
        acc = out[r]
        for a in range(indptr[rows[r]], indptr[rows[r] + 1]):
            acc += b[indices[a]]


@dataclass(frozen=True)
class _ItemSide:
    """``B`` stored (kept x kept, float32); scores ``X_b @ B`` as before."""

    indptr: np.ndarray  # binary history, users x kept items (CSR, int64)
    indices: np.ndarray
    b: np.ndarray

    @classmethod
    def fit(cls, x: sp.csr_matrix, gram: np.ndarray, l2: float) -> _ItemSide:
        p = _inverse_plus(gram, l2)
        p /= -np.diag(p)[None, :]
        p[np.diag_indices_from(p)] = 0.0
        b = np.ascontiguousarray(p, dtype=np.float32)
        return cls(x.indptr.astype(np.int64), x.indices.astype(np.int64), b)

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.b.shape[0]), dtype=np.float32)
        _rows_times(self.indptr, self.indices, np.asarray(users, dtype=np.int64), self.b, out)
        return out

    def weights(self) -> np.ndarray:
        return self.b


@numba.njit(parallel=True, nogil=True, cache=True)
def _pair_sums(indptr: np.ndarray, indices: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = x_i^T M x_i``: the sum of ``m[u, v]`` over the users ``u, v`` of item ``i`` (CSC of X_a).
    Costs sum_i count_i^2: at most nnz x users (what forming ``M X_a`` costs), far less on power-law data."""
    for i in numba.prange(out.shape[0]):  # pragma: no cover - compiled
        start, stop = indptr[i], indptr[i + 1]
        total = 0.0
        for a in range(start, stop):
            row = m[indices[a]]
            for b in range(start, stop):
                total += row[indices[b]]
        out[i] = total


@numba.njit(parallel=True, nogil=True, cache=True)
def _push_through(
    m: np.ndarray,
    rows: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    p_diag: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[r, i] = -(M X_a)[rows[r], i] / p_diag[i]``, one user per thread, reading one row of ``M``."""
    for r in numba.prange(rows.shape[0]):  # pragma: no cover - compiled
        row = m[rows[r]]
        for i in range(p_diag.shape[0]):
            total = 0.0
            for a in range(indptr[i], indptr[i + 1]):
                total += row[indices[a]]
            out[r, i] = -total / p_diag[i]


@dataclass(frozen=True)
class _UserSide:
    """``M = (X_a X_a^T + l2 I)^-1`` over the users ``a`` with history: ``X_b B = X_b - M_b X_a / diag(P)``
    (push-through), never an items x items matrix."""

    history: sp.csr_matrix  # binary float64, users x kept items
    indptr: np.ndarray  # X_a by column (CSC, int64): the active users (rows of M) of each kept item
    indices: np.ndarray
    position: np.ndarray  # row of M per user, -1 for a user without history
    m: np.ndarray
    p_diag: np.ndarray
    l2: float

    @classmethod
    def fit(cls, x: sp.csr_matrix, active: np.ndarray, gram: np.ndarray, l2: float) -> _UserSide:
        m = _inverse_plus(gram, l2)
        xc = sp.csc_matrix(x[active])
        xc.sort_indices()
        indptr, indices = xc.indptr.astype(np.int64), xc.indices.astype(np.int64)
        quad = np.empty(x.shape[1])
        _pair_sums(indptr, indices, m, quad)  # diag(X_a^T M X_a)
        position = np.full(x.shape[0], -1, dtype=np.int64)
        position[active] = np.arange(len(active))
        return cls(x, indptr, indices, position, m, (1.0 - quad) / l2, float(l2))

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        pos = self.position[users]
        out = np.empty((len(users), self.history.shape[1]), dtype=np.float32)
        _push_through(self.m, np.maximum(pos, 0), self.indptr, self.indices, self.p_diag, out)
        out[pos < 0] = 0.0  # no history: every score 0, as X_b B gives
        sub = self.history[users]
        out[np.repeat(np.arange(len(users)), np.diff(sub.indptr)), sub.indices] += 1.0  # B's zero diagonal
        return out

    def weights(self) -> np.ndarray:
        """Materialised ``B`` (kept x kept): for inspection and tests on small catalogues."""
        n = self.history.shape[1]
        xt = sp.csr_matrix((np.ones(len(self.indices)), self.indices, self.indptr), shape=(n, len(self.m)))
        xtmx = (xt @ (xt @ self.m).T).T  # X_a^T M X_a
        p = (np.eye(n) - xtmx) / self.l2
        b = -p / self.p_diag[None, :]
        b[np.diag_indices(n)] = 0.0
        return b.astype(np.float32)


# ---------------------------------------------------------------------------------------------- EASE
@dataclass(frozen=True)
class EASEScorer:
    """Embarrassingly Shallow Autoencoder for one lambda (``l2``): scores all items for a batch of users
    from the history it was fit on. Items outside ``kept`` (above the item limit) score ``-inf``."""

    side: _ItemSide | _UserSide
    kept: np.ndarray | None  # kept item indices; None = every item
    n_total: int
    l2: float

    @classmethod
    def fit(
        cls, user_items: sp.csr_matrix, l2: float = 500.0, *, max_items: int = EASE_MAX_ITEMS
    ) -> EASEScorer:
        """Fit on the binarised ``user_items`` (users x items)."""
        if not l2 > 0:
            raise ConfigError(f"l2 must be > 0, but got {l2=}.")
        return EASEGram.of(user_items, max_items=max_items).scorer(l2)

    @property
    def n_items(self) -> int:
        return self.n_total

    @property
    def kind(self) -> Literal["items", "users"]:
        return "items" if isinstance(self.side, _ItemSide) else "users"

    @property
    def weights(self) -> np.ndarray:
        """``B`` over the kept items (float32, zero diagonal); materialised on demand on the users side."""
        return self.side.weights()

    def score(self, users: np.ndarray) -> np.ndarray:
        kept_scores = self.side.score(users)
        if self.kept is None:
            return kept_scores
        out = np.full((len(users), self.n_total), -np.inf, dtype=np.float32)
        out[:, self.kept] = kept_scores
        return out


@dataclass(frozen=True)
class EASEGram:
    """The binarised history and its smaller Gram matrix, built once and reused by every lambda."""

    x: sp.csr_matrix  # binary float64, users x kept items
    kept: np.ndarray | None
    n_total: int
    active: np.ndarray  # users with at least one kept item
    kind: Literal["items", "users"]
    gram: np.ndarray  # X^T X (items side) or X_a X_a^T (users side), float64

    @classmethod
    def of(cls, user_items: sp.csr_matrix, *, max_items: int = EASE_MAX_ITEMS) -> EASEGram:
        if max_items < 1:
            raise ConfigError(f"max_items must be >= 1, but got {max_items=}.")
        x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
        x.sum_duplicates()
        x.eliminate_zeros()
        x.data[:] = 1.0
        n_total = x.shape[1]
        kept: np.ndarray | None = None
        active = np.flatnonzero(np.diff(x.indptr) > 0)
        if min(len(active), n_total) > max_items:
            counts = np.diff(x.tocsc().indptr)
            kept = np.sort(np.argsort(-counts, kind="stable")[:max_items])
            x = sp.csr_matrix(x[:, kept])
            active = np.flatnonzero(np.diff(x.indptr) > 0)
        x.sort_indices()
        if len(active) < x.shape[1]:
            return cls(x, kept, n_total, active, "users", _gram(sp.csr_matrix(x[active].T)))
        return cls(x, kept, n_total, active, "items", _gram(x))

    @property
    def n_kept(self) -> int:
        return int(self.x.shape[1])

    def scorer(self, l2: float) -> EASEScorer:
        """The EASE scorer for ``l2`` (one inverse of the Gram matrix)."""
        if not l2 > 0:
            raise ConfigError(f"l2 must be > 0, but got {l2=}.")
        side: _ItemSide | _UserSide = (
            _ItemSide.fit(self.x, self.gram, l2)
            if self.kind == "items"
            else _UserSide.fit(self.x, self.active, self.gram, l2)
        )
        return EASEScorer(side, self.kept, self.n_total, float(l2))


@dataclass(frozen=True)
class EASETuning:
    """What :func:`tune_ease` found: the chosen ``l2``, the validation score of every lambda it tried, the
    scorer fit at ``l2`` on the training history, and its full result on ALL validation users."""

    l2: float
    scores: dict[float, float]
    scorer: EASEScorer
    valid: EvalResult


def climb(n: int, value: Callable[[int], float]) -> int:
    """The index of a local maximum of ``value`` over ``0..n-1``, found by hill-climbing from the middle:
    step left while the left neighbour is at least as good, right while the right one is strictly better.
    On a sequence that rises strictly to its maximum and falls after it (a flat top allowed) that is the first
    index of the maximum (what ``max`` over every index with the first on a tie gives), after 3 to n/2 + 2
    evaluations; ``value`` is called at least once (also for ``n == 1``) and, by a caller that caches it, at
    most once per index."""
    i = (n - 1) // 2
    value(i)
    while True:
        if i > 0 and value(i - 1) >= value(i):
            i -= 1
        elif i < n - 1 and value(i + 1) > value(i):
            i += 1
        else:
            return i


def tune_ease(
    train: sp.csr_matrix,
    valid_truth: sp.csr_matrix,
    *,
    l2_grid: Sequence[float] = EASE_L2_GRID,
    metric: str = DEFAULT_METRIC,
    ks: Sequence[int] = (),
    max_items: int = EASE_MAX_ITEMS,
    search: Literal["bracket", "grid"] = "bracket",
    users: np.ndarray | None = None,
    on_result: Callable[[float, EvalResult], None] | None = None,
) -> EASETuning:
    """Pick EASE's lambda on validation (train items excluded).

    ``search="grid"`` fits every lambda of ``l2_grid`` and keeps the best (the smallest lambda on a tie);
    ``"bracket"`` (the default) climbs the sorted grid on log-lambda from its middle (:func:`climb`): the
    same pick wherever validation NDCG rises to its peak and falls after it (every shape of
    bench/ease_speed.py), from 3 to 6 fits of the 8-point grid instead of 8. The best scorer so far stays in
    memory while the next lambda is fit (two inverses at most), so the winner is never fit twice.

    ``users``: the validation users lambda is chosen on (a study's sample; None: all); the returned ``valid``
    is the chosen lambda's result on all validation users either way, from the scorer the search already fit.
    ``on_result(l2, result)`` sees each tried lambda's result on ``users`` (at ``ks`` and
    the metric's k)."""
    k = metric_k(metric)
    if not l2_grid:
        raise ConfigError(f"l2_grid must not be empty, but got {l2_grid=}.")
    for l2 in l2_grid:
        if not l2 > 0:
            raise ConfigError(f"l2 must be > 0, but got {l2=}.")
    if search not in ("bracket", "grid"):
        raise ConfigError(f"search must be 'bracket' or 'grid', but got {search=}.")
    grid = sorted({float(x) for x in l2_grid})
    gram = EASEGram.of(train, max_items=max_items)
    eval_ks = (*ks, k)
    scores: dict[float, float] = {}
    best: list[tuple[EASEScorer, EvalResult]] = []  # the best so far, so the winner is never fit twice

    def value(i: int) -> float:
        l2 = grid[i]
        if l2 not in scores:
            scorer = gram.scorer(l2)
            result = evaluate_scorer(scorer, valid_truth, train, ks=eval_ks, users=users)
            scores[l2] = result.metrics[metric]
            top = best[0][0].l2 if best else None
            if top is None or (scores[l2], -l2) > (scores[top], -top):  # the lower lambda on a tie
                best[:] = [(scorer, result)]
            del scorer  # a loser's inverse goes before the next one is made
            if on_result is not None:
                on_result(l2, result)
        return scores[l2]

    if search == "grid":
        for i in range(len(grid)):
            value(i)
    else:
        climb(len(grid), value)  # ends on the best lambda it tried (see climb)
    chosen, result = best[0]
    valid = result if users is None else evaluate_scorer(chosen, valid_truth, train, ks=eval_ks)
    return EASETuning(chosen.l2, scores, chosen, valid)
