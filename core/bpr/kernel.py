"""The BPR hot loop: negative sampling and the SGD step fused in one compiled, multi-threaded function.

Layout follows implicit's ``bpr_update`` (``implicit/cpu/bpr.pyx``): module-level functions over arrays and
scalars only, returning diagnostics; all validation, casting and seeding happens in :mod:`core.bpr.model`.

Sampling (shared by the kernel and by :mod:`core.bpr.sampler`, so that both draw the same triplets):

- a positive interaction is picked uniformly among all ``nnz`` (users are weighted by their activity; an
  epoch of ``samples_per_epoch * nnz`` draws visits each interaction ``samples_per_epoch`` times on average);
- with probability ``hard_ratio`` the negative is drawn from the user's hard-negative row, rejected if it is a
  positive (binary search in the user's sorted CSR row), ``HARD_TRIES`` tries; otherwise, or when the user has
  no hard negatives, or when the tries fail, uniformly over all items, rejected if positive, ``UNIFORM_TRIES``
  tries; a draw whose tries all fail is *skipped* (counted, no update).

Each thread owns a xorshift64* stream seeded by the caller and updates factors without locks (Hogwild).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Tries before a hard draw falls back to uniform, and before a uniform draw is skipped.
HARD_TRIES = 4
UNIFORM_TRIES = 16

#: Kind codes returned by the draw functions.
KIND_SKIPPED, KIND_RANDOM, KIND_HARD = -1, 0, 1

# fastmath without "nnan"/"ninf": divergence must stay visible as NaN / inf, not be optimised away.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}

_MULT = np.uint64(0x2545F4914F6CDD1D)
_FALLBACK_SEED = np.uint64(0x9E3779B97F4A7C15)
_S12, _S25, _S27, _S32 = np.uint64(12), np.uint64(25), np.uint64(27), np.uint64(32)


@intrinsic
def _prefetch(typingctx, arr, row, col):  # type: ignore[no-untyped-def]
    """``llvm.prefetch`` of ``arr[row, col]``: start pulling the next triplet's factor rows into cache."""
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:], strict=True)
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, high locality, data cache
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _prefetch_row(arr: np.ndarray, row: np.int64) -> None:
    for c in range(0, arr.shape[1], 16):  # one prefetch per 64-byte line of float32
        _prefetch(arr, row, c)  # type: ignore[call-arg]  # numba intrinsic: typing context is implicit


@njit(cache=True, nogil=True, inline="always")
def _next(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """xorshift64*: new state and a 64-bit output whose high 32 bits are the good ones."""
    state ^= state >> _S12
    state ^= state << _S25
    state ^= state >> _S27
    return state, state * _MULT


@njit(cache=True, nogil=True, inline="always")
def _below(r: np.uint64, n: np.uint64) -> np.int64:
    """Map the high 32 bits of ``r`` to ``[0, n)`` by multiply-shift (no division; n < 2**32)."""
    return np.int64(((r >> _S32) * n) >> _S32)


@njit(cache=True, nogil=True, inline="always")
def _contains(indices: np.ndarray, lo: np.int64, hi: np.int64, x: np.int64) -> bool:
    """Binary search for ``x`` in the sorted slice ``indices[lo:hi]``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < x:
            lo = mid + 1
        elif v > x:
            hi = mid
        else:
            return True
    return False


@njit(cache=True, nogil=True)
def draw_negative(
    state: np.uint64,
    u: np.int64,
    indptr: np.ndarray,
    indices: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    n_items: np.int64,
    hard_threshold: np.uint64,
) -> tuple[np.uint64, np.int64, np.int64]:
    """One negative for user ``u``: (new state, item or -1, kind). ``hard_threshold = hard_ratio * 2**32``."""
    lo = np.int64(indptr[u])
    hi = np.int64(indptr[u + 1])
    if hard_threshold > 0:
        state, r = _next(state)
        hs = np.int64(hard_indptr[u])
        he = np.int64(hard_indptr[u + 1])
        if (r >> _S32) < hard_threshold and he > hs:
            span = np.uint64(he - hs)
            for _ in range(HARD_TRIES):
                state, r = _next(state)
                j = np.int64(hard_indices[hs + _below(r, span)])
                if not _contains(indices, lo, hi, j):
                    return state, j, np.int64(KIND_HARD)
    n = np.uint64(n_items)
    for _ in range(UNIFORM_TRIES):
        state, r = _next(state)
        j = _below(r, n)
        if not _contains(indices, lo, hi, j):
            return state, j, np.int64(KIND_RANDOM)
    return state, np.int64(-1), np.int64(KIND_SKIPPED)


@njit(cache=True, nogil=True)
def draw_triplet(
    state: np.uint64,
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    n_items: np.int64,
    hard_threshold: np.uint64,
) -> tuple[np.uint64, np.int64, np.int64, np.int64, np.int64]:
    """(new state, u, i, j, kind): a uniformly chosen positive interaction and one negative for its user."""
    state, r = _next(state)
    k = _below(r, np.uint64(indices.shape[0]))
    u = np.int64(user_of[k])
    i = np.int64(indices[k])
    state, j, kind = draw_negative(
        state, u, indptr, indices, hard_indptr, hard_indices, n_items, hard_threshold
    )
    return state, u, i, j, kind


def hard_threshold_of(hard_ratio: float) -> np.uint64:
    """The integer threshold the draw functions compare 32 random bits against."""
    return np.uint64(min(round(hard_ratio * 2**32), 2**32))


def fix_seeds(seeds: np.ndarray) -> np.ndarray:
    """xorshift needs a non-zero state."""
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64).copy()
    seeds[seeds == 0] = _FALLBACK_SEED
    return seeds


@njit(parallel=True, fastmath=_FASTMATH, nogil=True, cache=True)
def bpr_epoch(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    regularization: float,
    hard_threshold: np.uint64,
    seeds: np.ndarray,
    n_samples: int,
    user_cols: int = -1,
    reg_pos: float = -1.0,
    reg_neg: float = -1.0,
) -> tuple[float, int, int, int, int]:
    """Draw ``n_samples`` triplets and apply the BPR SGD step to each, split over ``len(seeds)`` threads.

    Per triplet, with ``x = U[u]·(V[i] - V[j])`` and ``z = 1 - sigmoid(x)``, the seed's rules applied
    simultaneously (all three gradients taken at the pre-update factors, as implicit does)::

        U[u] += lr * ( z * (V[i] - V[j]) - reg   * U[u])
        V[i] += lr * ( z * U[u]          - reg_i * V[i])
        V[j] += lr * (-z * U[u]          - reg_j * V[j])

    and the loss ``softplus(-x) + reg * |U[u]|² + reg_i * |V[i]|² + reg_j * |V[j]|²`` at the pre-update
    factors. ``reg`` is ``regularization``; ``reg_i`` is ``reg_pos`` and ``reg_j`` is ``reg_neg`` when given
    (>= 0), else ``regularization`` too ("Revisiting BPR": users, positives and negatives want their own).
    Only the first ``user_cols`` user columns are learned (-1: all). The rest stay as given: implicit's item
    bias is a last user column held at 1, whose item column is then the item's bias, learned with the rest
    (``z - reg * b`` for the positive, ``-z - reg * b`` for the negative); its constant 1 is not in the loss.
    Chunk ``t`` of the samples uses ``seeds[t]``; with one seed the run is exactly reproducible.
    Returns ``(loss_sum, correct, skipped, hard_count, random_count)`` where ``correct`` counts ``x > 0``.
    """
    n_threads = seeds.shape[0]
    n_items = np.int64(item_factors.shape[0])
    k = user_factors.shape[1]
    learned = k if user_cols < 0 else user_cols
    fixed_norm = np.float32(k - learned)  # the held user columns are 1: their squares are not a cost
    lr = np.float32(learning_rate)
    reg = np.float32(regularization)
    reg_i = np.float32(reg_pos if reg_pos >= 0 else regularization)
    reg_j = np.float32(reg_neg if reg_neg >= 0 else regularization)
    one = np.float32(1.0)
    loss_out = np.zeros(n_threads, dtype=np.float64)
    counts = np.zeros((n_threads, 4), dtype=np.int64)
    for t in prange(n_threads):
        start = (n_samples * t) // n_threads
        end = (n_samples * (t + 1)) // n_threads
        state = seeds[t]
        loss = 0.0
        correct = 0
        skipped = 0
        hard = 0
        rand = 0
        # software pipeline: draw triplet n + 1 and prefetch its rows while updating triplet n
        state, nu, ni, nj, nkind = draw_triplet(
            state, indptr, indices, user_of, hard_indptr, hard_indices, n_items, hard_threshold
        )
        for _ in range(start, end):
            u, i, j, kind = nu, ni, nj, nkind
            state, nu, ni, nj, nkind = draw_triplet(
                state, indptr, indices, user_of, hard_indptr, hard_indices, n_items, hard_threshold
            )
            if nkind >= 0:
                _prefetch_row(user_factors, nu)
                _prefetch_row(item_factors, ni)
                _prefetch_row(item_factors, nj)
            if kind < 0:
                skipped += 1
                continue
            if kind == KIND_HARD:
                hard += 1
            else:
                rand += 1
            x = np.float32(0.0)
            norm_u = np.float32(0.0)
            norm_i = np.float32(0.0)
            norm_j = np.float32(0.0)
            for f in range(k):
                uf = user_factors[u, f]
                vi = item_factors[i, f]
                vj = item_factors[j, f]
                x += uf * (vi - vj)
                norm_u += uf * uf
                norm_i += vi * vi
                norm_j += vj * vj
            penalty = reg * (norm_u - fixed_norm) + reg_i * norm_i + reg_j * norm_j
            # z = 1 - sigmoid(x) and softplus(-x), both from one exp of -|x| (no overflow)
            e = np.exp(-abs(x))
            if x >= 0:
                z = e / (one + e)
                loss += np.float64(np.log1p(e) + penalty)
                correct += 1
            else:
                z = one / (one + e)
                loss += np.float64(np.log1p(e) - x + penalty)
            for f in range(learned):  # two loops, no branch: the first one vectorises as before
                uf = user_factors[u, f]
                vi = item_factors[i, f]
                vj = item_factors[j, f]
                user_factors[u, f] = uf + lr * (z * (vi - vj) - reg * uf)
                item_factors[i, f] = vi + lr * (z * uf - reg_i * vi)
                item_factors[j, f] = vj + lr * (-z * uf - reg_j * vj)
            for f in range(learned, k):  # held user columns (the bias's ones): items only
                uf = user_factors[u, f]
                item_factors[i, f] = item_factors[i, f] + lr * (z * uf - reg_i * item_factors[i, f])
                item_factors[j, f] = item_factors[j, f] + lr * (-z * uf - reg_j * item_factors[j, f])
        loss_out[t] = loss
        counts[t, 0] = correct
        counts[t, 1] = skipped
        counts[t, 2] = hard
        counts[t, 3] = rand
    c = counts.sum(axis=0)
    return loss_out.sum(), c[0], c[1], c[2], c[3]


@njit(cache=True, nogil=True)
def sample_triplets(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    n_items: int,
    hard_threshold: np.uint64,
    n_samples: int,
    state: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's draws from one stream, materialised: ((n, 3) int64 [u, i, j], kinds); advances ``state``.

    With the same seed this yields exactly the triplets ``bpr_epoch`` trains on with one thread.
    """
    out = np.empty((n_samples, 3), dtype=np.int64)
    kinds = np.empty(n_samples, dtype=np.int64)
    s = state[0]
    for n in range(n_samples):
        s, u, i, j, kind = draw_triplet(
            s, indptr, indices, user_of, hard_indptr, hard_indices, np.int64(n_items), hard_threshold
        )
        out[n, 0] = u
        out[n, 1] = i
        out[n, 2] = j
        kinds[n] = kind
    state[0] = s
    return out, kinds


@njit(cache=True, nogil=True)
def sample_negatives(
    users: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    n_items: int,
    hard_threshold: np.uint64,
    state: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One negative per entry of ``users`` (-1 when skipped) and its kind. Advances ``state[0]``."""
    out = np.empty(users.shape[0], dtype=np.int64)
    kinds = np.empty(users.shape[0], dtype=np.int64)
    s = state[0]
    for n in range(users.shape[0]):
        s, j, kind = draw_negative(
            s,
            np.int64(users[n]),
            indptr,
            indices,
            hard_indptr,
            hard_indices,
            np.int64(n_items),
            hard_threshold,
        )
        out[n] = j
        kinds[n] = kind
    state[0] = s
    return out, kinds


def bpr_step_reference(
    triplets: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    regularization: float,
    user_cols: int = -1,
    reg_pos: float = -1.0,
    reg_neg: float = -1.0,
) -> tuple[float, int]:
    """Slow NumPy reference of the kernel's update on given triplets (rows with ``j < 0`` are skipped); only
    the first ``user_cols`` user columns are learned (-1: all), and ``reg_pos`` / ``reg_neg`` (when >= 0)
    regularize the positive and the negative item, as in :func:`bpr_epoch`.

    Updates the factors in place, returns ``(loss_sum, correct)``; tests compare it with :func:`bpr_epoch`.
    """
    lr = np.float32(learning_rate)
    reg = np.float32(regularization)
    reg_i = np.float32(reg_pos if reg_pos >= 0 else regularization)
    reg_j = np.float32(reg_neg if reg_neg >= 0 else regularization)
    learned = user_factors.shape[1] if user_cols < 0 else user_cols
    loss = 0.0
    correct = 0
    for u, i, j in np.asarray(triplets, dtype=np.int64):
        if j < 0:
            continue
        pu = user_factors[u].copy()
        qi = item_factors[i].copy()
        qj = item_factors[j].copy()
        x = float(pu @ (qi - qj))
        z = np.float32(1.0 / (1.0 + np.exp(x)))
        penalty = float(reg) * float(pu[:learned] @ pu[:learned])
        penalty += float(reg_i) * float(qi @ qi) + float(reg_j) * float(qj @ qj)
        loss += float(np.logaddexp(0.0, -x)) + penalty
        correct += int(x > 0)
        user_factors[u, :learned] = (pu + lr * (z * (qi - qj) - reg * pu))[:learned]
        item_factors[i] = qi + lr * (z * pu - reg_i * qi)
        item_factors[j] = qj + lr * (-z * pu - reg_j * qj)
    return loss, correct
