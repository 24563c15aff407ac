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
- adaptive sampling (``n_candidates > 1``): each negative is the best-scored of ``n_candidates`` draws by the
  rule above (the "max of n" form of Rendle & Freudenthaler 2014's adaptive sampler, also called dynamic
  negative sampling, as in "Revisiting BPR", Milogradskii et al. 2024);
- several negatives (``n_negatives > 1``): each drawn positive gets ``n_negatives`` such negatives.

A sample's stream order is: the positive, then for each of its ``n_negatives`` negatives its
``n_candidates`` candidate draws; :func:`sample_candidates` replays it.

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

#: Loss codes of :func:`bpr_epoch`, by the names :class:`core.bpr.model.BPR` takes.
LOSS_BPR, LOSS_HARD_BPR = 0, 1
LOSSES = {"bpr": LOSS_BPR, "hard_bpr": LOSS_HARD_BPR}

# fastmath without "nnan"/"ninf": divergence must stay visible as NaN / inf, not be optimised away.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}

_MULT = np.uint64(0x2545F4914F6CDD1D)
_FALLBACK_SEED = np.uint64(0x9E3779B97F4A7C15)
_S12, _S25, _S27, _S32 = np.uint64(12), np.uint64(25), np.uint64(27), np.uint64(32)


def _emit_prefetch(context, builder, aryty, ary_value, indices, index_types):  # type: ignore[no-untyped-def]
    ary = context.make_array(aryty)(context, builder, ary_value)
    idx = [context.cast(builder, v, t, types.intp) for v, t in zip(indices, index_types, strict=True)]
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
    i32, bytes_ptr = ir.IntType(32), ir.IntType(8).as_pointer()  # one declaration for every element type
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [bytes_ptr, i32, i32, i32]), "llvm.prefetch.p0"
    )
    builder.call(fn, [builder.bitcast(ptr, bytes_ptr), i32(0), i32(3), i32(1)])  # read, keep, data cache
    return context.get_dummy_value()


@intrinsic
def _prefetch(typingctx, arr, row, col):  # type: ignore[no-untyped-def]
    """``llvm.prefetch`` of ``arr[row, col]``: start pulling the next triplet's factor rows into cache."""
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return _emit_prefetch(context, builder, signature.args[0], args[0], args[1:], signature.args[1:])

    return sig, codegen


@intrinsic
def _prefetch_at(typingctx, arr, i):  # type: ignore[no-untyped-def]
    """``llvm.prefetch`` of ``arr[i]`` (1-D): a CSR slot a later draw will read. Never faults."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return _emit_prefetch(context, builder, signature.args[0], args[0], args[1:], signature.args[1:])

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


@njit(cache=True, nogil=True, inline="always")
def draw_positive(
    state: np.uint64, indices: np.ndarray, user_of: np.ndarray
) -> tuple[np.uint64, np.int64, np.int64]:
    """(new state, u, i): a positive interaction picked uniformly among all ``nnz``."""
    state, r = _next(state)
    k = _below(r, np.uint64(indices.shape[0]))
    return state, np.int64(user_of[k]), np.int64(indices[k])


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
    state, u, i = draw_positive(state, indices, user_of)
    state, j, kind = draw_negative(
        state, u, indptr, indices, hard_indptr, hard_indices, n_items, hard_threshold
    )
    return state, u, i, j, kind


@njit(cache=True, nogil=True, inline="always")
def _prefetch_ahead(
    state: np.uint64,
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    hard_threshold: np.uint64,
    draws: int,
) -> None:
    """Prefetch what the next three samples' draws will read, peeking at the stream (``state`` stays put).

    A sample is one positive and ``draws`` negative draws. The draws form a chain of dependent cache misses
    (the positive's slot, then its user's CSR pointers, then a hard-negative slot, then the factor rows), so
    each link is fetched one sample earlier than the one it depends on: sample +3's positive slot, sample
    +2's CSR pointers, sample +1's hard-negative slots and factor rows (it reads its own slot and pointers,
    fetched by the two calls before). The peek assumes no rejection (a hard row holds no positive, uniform
    collisions are rare); a wrong guess only costs a useless prefetch, never a different draw.
    """
    nnz = np.uint64(indices.shape[0])
    n_items = np.uint64(item_factors.shape[0])
    hard_on = hard_threshold > 0
    # sample +1: its positive slot and CSR pointers were prefetched by the two previous calls
    s, r = _next(state)
    k = _below(r, nnz)
    u = np.int64(user_of[k])
    _prefetch_row(user_factors, u)
    _prefetch_row(item_factors, np.int64(indices[k]))
    hs = np.int64(0)
    span = np.int64(0)
    if hard_on:
        hs = np.int64(hard_indptr[u])
        span = np.int64(hard_indptr[u + 1]) - hs
    for _ in range(draws):
        hard = False
        if hard_on:
            s, r = _next(s)
            hard = bool((r >> _S32) < hard_threshold and span > 0)
        s, r = _next(s)
        if hard:
            _prefetch_at(hard_indices, hs + _below(r, np.uint64(span)))  # type: ignore[call-arg]
        else:
            _prefetch_row(item_factors, _below(r, n_items))
    # sample +2: its user's CSR pointers
    s, r = _next(s)
    u = np.int64(user_of[_below(r, nnz)])
    _prefetch_at(indptr, u)  # type: ignore[call-arg]
    if hard_on:
        _prefetch_at(hard_indptr, u)  # type: ignore[call-arg]
    for _ in range(draws * (2 if hard_on else 1)):
        s, r = _next(s)
    # sample +3: its positive slot
    s, r = _next(s)
    k = _below(r, nnz)
    _prefetch_at(user_of, k)  # type: ignore[call-arg]
    _prefetch_at(indices, k)  # type: ignore[call-arg]


def hard_threshold_of(hard_ratio: float) -> np.uint64:
    """The integer threshold the draw functions compare 32 random bits against."""
    return np.uint64(min(round(hard_ratio * 2**32), 2**32))


def fix_seeds(seeds: np.ndarray) -> np.ndarray:
    """xorshift needs a non-zero state."""
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64).copy()
    seeds[seeds == 0] = _FALLBACK_SEED
    return seeds


# Why _chunk_plain and _chunk_general are both kept (issue 19): the default case (one candidate, one negative,
# BPR) run by either loop on bench/bpr_throughput.py's data (50k x 20k, 1M nnz, 64 factors, hard_ratio 0.3,
# 1 thread, 2M samples a round, rounds interleaved) on a shared 2-core machine: plain 2.24M / general 1.94M
# samples/s (median of 5 rounds), then 2.18M / 2.31M (9 rounds); paired general/plain ratios 0.75 .. 1.15.
# No measurement showed the merged (general) loop free of cost, and the plain one is what the pinned
# checksums of tests/test_bpr.py hold, so the specialised loop stays.
@njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _chunk_plain(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    lr: np.float32,
    reg: np.float32,
    reg_i: np.float32,
    reg_j: np.float32,
    learned: int,
    fixed_norm: np.float32,
    hard_threshold: np.uint64,
    state: np.uint64,
    n: int,
) -> tuple[float, int, int, int, int]:
    """One thread's ``n`` samples with one negative each and the BPR loss: the default, specialised path.

    Returns ``(loss, correct, skipped, hard, random)``.
    """
    n_items = np.int64(item_factors.shape[0])
    k = user_factors.shape[1]
    one = np.float32(1.0)
    loss = 0.0
    correct = 0
    skipped = 0
    hard = 0
    rand = 0
    # software pipeline: draw triplet n + 1 and prefetch its rows while updating triplet n
    state, nu, ni, nj, nkind = draw_triplet(
        state, indptr, indices, user_of, hard_indptr, hard_indices, n_items, hard_threshold
    )
    for _ in range(n):
        u, i, j, kind = nu, ni, nj, nkind
        state, nu, ni, nj, nkind = draw_triplet(
            state, indptr, indices, user_of, hard_indptr, hard_indices, n_items, hard_threshold
        )
        if nkind >= 0:
            _prefetch_row(item_factors, nj)
        _prefetch_ahead(
            state, indptr, indices, user_of, hard_indptr, hard_indices, user_factors, item_factors,
            hard_threshold, 1,
        )  # fmt: skip
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
    return loss, correct, skipped, hard, rand


@njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _sgd_step(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    u: np.int64,
    i: np.int64,
    j: np.int64,
    lr: np.float32,
    reg: np.float32,
    reg_i: np.float32,
    reg_j: np.float32,
    learned: int,
    fixed_norm: np.float32,
    loss_kind: int,
    a: np.float32,
    b: np.float32,
    c: np.float32,
) -> tuple[float, int]:
    """One triplet's step (see :func:`bpr_epoch`) under either loss: ``(loss, x >= 0)``."""
    k = user_factors.shape[1]
    one = np.float32(1.0)
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
    if loss_kind == LOSS_BPR:
        e = np.exp(-abs(x))
        if x >= 0:
            z = e / (one + e)
            value = np.log1p(e) + penalty
        else:
            z = one / (one + e)
            value = np.log1p(e) - x + penalty
    else:
        # s = sigmoid(t), 1 - s from one exp of -|t|; loss -log((s + a) / (1 + a)), weight c s (1-s) / (s+a)
        t = c * x + b
        e = np.exp(-abs(t))
        if t >= 0:
            s = one / (one + e)
            s_bar = e / (one + e)
        else:
            s = e / (one + e)
            s_bar = one / (one + e)
        if a > 0:
            z = c * s_bar * (s / (s + a))
            value = np.log1p(a) - np.log(s + a) + penalty
        else:  # plain logistic in t: s / (s + 0) is 1, and -log(s) is softplus(-t) (s may underflow)
            z = c * s_bar
            value = np.log1p(e) + max(-t, np.float32(0.0)) + penalty
    for f in range(learned):
        uf = user_factors[u, f]
        vi = item_factors[i, f]
        vj = item_factors[j, f]
        user_factors[u, f] = uf + lr * (z * (vi - vj) - reg * uf)
        item_factors[i, f] = vi + lr * (z * uf - reg_i * vi)
        item_factors[j, f] = vj + lr * (-z * uf - reg_j * vj)
    for f in range(learned, k):
        uf = user_factors[u, f]
        item_factors[i, f] = item_factors[i, f] + lr * (z * uf - reg_i * item_factors[i, f])
        item_factors[j, f] = item_factors[j, f] + lr * (-z * uf - reg_j * item_factors[j, f])
    return np.float64(value), 1 if x >= 0 else 0


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _chunk_general(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    lr: np.float32,
    reg: np.float32,
    reg_i: np.float32,
    reg_j: np.float32,
    learned: int,
    fixed_norm: np.float32,
    hard_threshold: np.uint64,
    state: np.uint64,
    n: int,
    n_candidates: int,
    n_negatives: int,
    loss_kind: int,
    a: np.float32,
    b: np.float32,
    c: np.float32,
) -> tuple[float, int, int, int, int, int]:
    """One thread's ``n`` samples with candidates, several negatives or the Hard-BPR loss.

    Same pipeline as :func:`_chunk_plain`: sample ``n + 1`` (its positive and all its candidate draws) is
    drawn into the other half of a double buffer, and its rows prefetched, while sample ``n`` is applied.
    Returns ``(loss, correct, skipped, hard, random, scored)``.
    """
    n_items = np.int64(item_factors.shape[0])
    k = user_factors.shape[1]
    width = n_candidates * n_negatives
    cand = np.empty((2, width), dtype=np.int64)
    kinds = np.empty((2, width), dtype=np.int64)
    chosen = np.empty(n_negatives, dtype=np.int64)
    chosen_kind = np.empty(n_negatives, dtype=np.int64)
    loss = 0.0
    correct = 0
    skipped = 0
    hard = 0
    rand = 0
    scored = 0
    state, nu, ni = draw_positive(state, indices, user_of)
    for q in range(width):
        state, cand[0, q], kinds[0, q] = draw_negative(
            state, nu, indptr, indices, hard_indptr, hard_indices, n_items, hard_threshold
        )
    slot = 0
    for _ in range(n):
        u, i = nu, ni
        nxt = 1 - slot
        state, nu, ni = draw_positive(state, indices, user_of)
        for q in range(width):
            state, j, kind = draw_negative(
                state, nu, indptr, indices, hard_indptr, hard_indices, n_items, hard_threshold
            )
            cand[nxt, q] = j
            kinds[nxt, q] = kind
            if j >= 0:
                _prefetch_row(item_factors, j)
        _prefetch_ahead(
            state, indptr, indices, user_of, hard_indptr, hard_indices, user_factors, item_factors,
            hard_threshold, width,
        )  # fmt: skip
        # every negative of the sample is picked at the factors as they are before its first update
        for m in range(n_negatives):
            best = np.int64(-1)
            best_kind = np.int64(KIND_SKIPPED)
            best_score = np.float32(0.0)
            for q in range(m * n_candidates, (m + 1) * n_candidates):
                j = cand[slot, q]
                if j < 0:
                    continue
                if n_candidates > 1:
                    score = np.float32(0.0)
                    for f in range(k):
                        score += user_factors[u, f] * item_factors[j, f]
                    scored += 1
                    if best >= 0 and not score > best_score:  # the first of equal scores wins
                        continue
                    best_score = score
                best = j
                best_kind = kinds[slot, q]
            chosen[m] = best
            chosen_kind[m] = best_kind
        for m in range(n_negatives):
            j = chosen[m]
            if j < 0:
                skipped += 1
                continue
            if chosen_kind[m] == KIND_HARD:
                hard += 1
            else:
                rand += 1
            value, ok = _sgd_step(
                user_factors, item_factors, u, i, j, lr, reg, reg_i, reg_j, learned, fixed_norm,
                loss_kind, a, b, c,
            )  # fmt: skip
            loss += value
            correct += ok
        slot = nxt
    return loss, correct, skipped, hard, rand, scored


def bpr_epoch(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    reg_user: float,
    hard_threshold: np.uint64,
    seeds: np.ndarray,
    n_samples: int,
    *,
    user_cols: int,
    reg_pos: float,
    reg_neg: float,
    n_candidates: int = 1,
    n_negatives: int = 1,
    loss: int = LOSS_BPR,
    loss_a: float = 0.0,
    loss_b: float = 0.0,
    loss_c: float = 1.0,
) -> tuple[float, int, int, int, int, int]:
    """Draw ``n_samples`` positives, pair each with ``n_negatives`` negatives and apply an SGD step to each
    triplet, split over ``len(seeds)`` threads.

    Per triplet, with ``x = U[u]·(V[i] - V[j])`` and ``z`` the loss's weight (below), the seed's rules applied
    simultaneously (all three gradients taken at the pre-update factors, as implicit does)::

        U[u] += lr * ( z * (V[i] - V[j]) - reg   * U[u])
        V[i] += lr * ( z * U[u]          - reg_i * V[i])
        V[j] += lr * (-z * U[u]          - reg_j * V[j])

    plus the loss ``ell(x) + reg * |U[u]|² + reg_i * |V[i]|² + reg_j * |V[j]|²`` at the pre-update factors,
    where ``z = -ell'(x)``:

    - ``loss=LOSS_BPR``: ``ell(x) = softplus(-x) = -log sigmoid(x)``, ``z = 1 - sigmoid(x)``;
    - ``loss=LOSS_HARD_BPR`` (Hard-BPR, Shi et al. 2024, arXiv:2403.19276, in the form its public
      reimplementations use), with ``a = loss_a >= 0``, ``b = loss_b``, ``c = loss_c > 0``, ``t = c * x + b``
      and ``s = sigmoid(t)``::

          ell(x) = -log((s + a) / (1 + a)),      z = c * s * (1 - s) / (s + a)

      (why: :func:`hard_bpr_loss`). With ``a = 0, b = 0, c = 1`` it is BPR.

    ``reg``, ``reg_i``, ``reg_j`` are ``reg_user``, ``reg_pos``, ``reg_neg``, already resolved by the caller
    (:func:`core.bpr.settings.per_row_regularization`). Only the first ``user_cols`` user columns are learned;
    the rest stay as given: implicit's item bias is a last user column held at 1, whose item column is the
    item's bias (``z - reg_i * b`` for the positive, ``-z - reg_j * b`` for the negative); its 1 is no cost.

    Negatives: each is the candidate with the highest score ``U[u]·V[j]`` (all columns, so the bias counts)
    among ``n_candidates`` draws (skipped draws are no candidates; the first of equal scores wins); with
    ``n_negatives = m > 1`` the positive's ``m`` negatives are all picked first, at the factors as they stand
    when the sample comes up, then applied as ``m`` triplet steps in turn (``U[u]`` and ``V[i]`` move after
    each, as ``m`` separate samples would; the learning rate keeps its per-triplet meaning).

    The loop is chosen once per call: with one candidate, one negative and BPR the specialised
    :func:`_epoch_plain` (bit for bit the steps of before these options), else :func:`_epoch_general`.

    Chunk ``t`` of the samples uses ``seeds[t]`` (one seed: exactly reproducible). Returns ``(loss_sum,
    correct, skipped, hard_count, random_count, scored)`` over triplets (up to ``n_samples * n_negatives``):
    ``correct`` counts ``x >= 0``, ``skipped`` negatives with no usable draw, ``scored`` candidate scores.
    """
    if n_candidates < 1 or n_negatives < 1:
        raise ValueError(
            f"n_candidates and n_negatives must be >= 1, but got {n_candidates=}, {n_negatives=}."
        )
    if loss not in LOSSES.values():
        raise ValueError(f"loss must be one of the codes {LOSSES}, but got {loss=}.")
    # one scalar type per argument: one compiled specialisation per array layout, whatever the caller passed
    args = (
        indptr, indices, user_of, hard_indptr, hard_indices, user_factors, item_factors,
        float(learning_rate), float(reg_user), np.uint64(hard_threshold), seeds, int(n_samples),
        int(user_cols), float(reg_pos), float(reg_neg),
    )  # fmt: skip
    if n_candidates == 1 and n_negatives == 1 and loss == LOSS_BPR:
        return (*_epoch_plain(*args), 0)
    options = (int(n_candidates), int(n_negatives), int(loss), float(loss_a), float(loss_b), float(loss_c))
    return _epoch_general(*args, *options)  # type: ignore[no-any-return]


@njit(parallel=True, fastmath=_FASTMATH, nogil=True, cache=True)
def _epoch_plain(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    reg_user: float,
    hard_threshold: np.uint64,
    seeds: np.ndarray,
    n_samples: int,
    user_cols: int,
    reg_pos: float,
    reg_neg: float,
) -> tuple[float, int, int, int, int]:
    """:func:`bpr_epoch` with one candidate, one negative and BPR: ``(loss_sum, correct, skipped, hard,
    random)``."""
    n_threads = seeds.shape[0]
    k = user_factors.shape[1]
    learned = user_cols
    fixed_norm = np.float32(k - learned)  # the held user columns are 1: their squares are not a cost
    lr = np.float32(learning_rate)
    reg = np.float32(reg_user)
    reg_i = np.float32(reg_pos)
    reg_j = np.float32(reg_neg)
    loss_out = np.zeros(n_threads, dtype=np.float64)
    counts = np.zeros((n_threads, 4), dtype=np.int64)
    for t in prange(n_threads):
        start = (n_samples * t) // n_threads
        end = (n_samples * (t + 1)) // n_threads
        out = _chunk_plain(
            indptr, indices, user_of, hard_indptr, hard_indices, user_factors, item_factors,
            lr, reg, reg_i, reg_j, learned, fixed_norm, hard_threshold, seeds[t], end - start,
        )  # fmt: skip
        loss_out[t] = out[0]
        counts[t, 0] = out[1]
        counts[t, 1] = out[2]
        counts[t, 2] = out[3]
        counts[t, 3] = out[4]
    s = counts.sum(axis=0)
    return loss_out.sum(), s[0], s[1], s[2], s[3]


@njit(parallel=True, fastmath=_FASTMATH, nogil=True, cache=True)
def _epoch_general(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    reg_user: float,
    hard_threshold: np.uint64,
    seeds: np.ndarray,
    n_samples: int,
    user_cols: int,
    reg_pos: float,
    reg_neg: float,
    n_candidates: int,
    n_negatives: int,
    loss: int,
    loss_a: float,
    loss_b: float,
    loss_c: float,
) -> tuple[float, int, int, int, int, int]:
    """:func:`bpr_epoch` with candidates, several negatives or Hard-BPR: ``(loss_sum, correct, skipped,
    hard, random, scored)``."""
    n_threads = seeds.shape[0]
    k = user_factors.shape[1]
    learned = user_cols
    fixed_norm = np.float32(k - learned)
    lr = np.float32(learning_rate)
    reg = np.float32(reg_user)
    reg_i = np.float32(reg_pos)
    reg_j = np.float32(reg_neg)
    a, b, c = np.float32(loss_a), np.float32(loss_b), np.float32(loss_c)
    loss_out = np.zeros(n_threads, dtype=np.float64)
    counts = np.zeros((n_threads, 5), dtype=np.int64)
    for t in prange(n_threads):
        start = (n_samples * t) // n_threads
        end = (n_samples * (t + 1)) // n_threads
        out = _chunk_general(
            indptr, indices, user_of, hard_indptr, hard_indices, user_factors, item_factors,
            lr, reg, reg_i, reg_j, learned, fixed_norm, hard_threshold, seeds[t], end - start,
            n_candidates, n_negatives, loss, a, b, c,
        )  # fmt: skip
        loss_out[t] = out[0]
        counts[t, 0] = out[1]
        counts[t, 1] = out[2]
        counts[t, 2] = out[3]
        counts[t, 3] = out[4]
        counts[t, 4] = out[5]
    s = counts.sum(axis=0)
    return loss_out.sum(), s[0], s[1], s[2], s[3], s[4]


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
def sample_candidates(
    indptr: np.ndarray,
    indices: np.ndarray,
    user_of: np.ndarray,
    hard_indptr: np.ndarray,
    hard_indices: np.ndarray,
    n_items: int,
    hard_threshold: np.uint64,
    n_samples: int,
    n_candidates: int,
    n_negatives: int,
    state: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's draws with candidates from one stream: ``(users, positives, candidates, kinds)``, the
    last two ``(n_samples, n_negatives, n_candidates)`` (-1 / ``KIND_SKIPPED`` where a draw was skipped);
    advances ``state``. With the same seed these are exactly what ``bpr_epoch`` picks from with one thread.
    """
    users = np.empty(n_samples, dtype=np.int64)
    positives = np.empty(n_samples, dtype=np.int64)
    candidates = np.empty((n_samples, n_negatives, n_candidates), dtype=np.int64)
    kinds = np.empty((n_samples, n_negatives, n_candidates), dtype=np.int64)
    s = state[0]
    for n in range(n_samples):
        s, u, i = draw_positive(s, indices, user_of)
        users[n] = u
        positives[n] = i
        for m in range(n_negatives):
            for q in range(n_candidates):
                s, candidates[n, m, q], kinds[n, m, q] = draw_negative(
                    s, u, indptr, indices, hard_indptr, hard_indices, np.int64(n_items), hard_threshold
                )
    state[0] = s
    return users, positives, candidates, kinds


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


def hard_bpr_loss(x: np.ndarray | float, a: float, b: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Hard-BPR's ranking term and its weight, float64: ``(ell(x), z = -ell'(x))``; see :func:`bpr_epoch`.

    ``(s + a) / (1 + a)`` is a probability that ``i`` beats ``j`` that never falls below ``a / (1 + a)``, so
    a negative scored far above the positive (``x -> -inf``, likely an unlabelled positive) gets a weight
    ``z ~ c * s / a -> 0`` instead of BPR's ``z -> 1``. For ``a > 0`` the weight is a bump with its top where
    ``s = sqrt(a² + a) - a`` (``x ~ 0.8`` for ``a, b, c = 1, -1, 0.8``).
    """
    t = c * np.asarray(x, dtype=np.float64) + b
    log_s = -np.logaddexp(0.0, -t)  # log sigmoid(t)
    s = np.exp(log_s)
    s_bar = np.exp(-np.logaddexp(0.0, t))  # 1 - sigmoid(t)
    if a > 0:
        return np.log1p(a) - np.log(s + a), c * s * s_bar / (s + a)
    return -log_s, c * s_bar


def bpr_step_reference(
    triplets: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    regularization: float,
    user_cols: int | None = None,
    reg_pos: float | None = None,
    reg_neg: float | None = None,
    loss: str = "bpr",
    loss_a: float = 0.0,
    loss_b: float = 0.0,
    loss_c: float = 1.0,
) -> tuple[float, int]:
    """Slow NumPy reference of the kernel's update on given triplets (rows with ``j < 0`` are skipped); only
    the first ``user_cols`` user columns are learned (None: all), ``reg_pos`` / ``reg_neg`` (None:
    ``regularization``) regularize the positive and the negative item, and ``loss`` ("bpr" or "hard_bpr",
    with ``loss_a``, ``loss_b``, ``loss_c``) picks the ranking term, as in :func:`bpr_epoch`.

    Updates the factors in place, returns ``(loss_sum, correct)``; tests compare it with :func:`bpr_epoch`.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, but got {loss=}.")
    lr = np.float32(learning_rate)
    reg = np.float32(regularization)
    reg_i = np.float32(regularization if reg_pos is None else reg_pos)
    reg_j = np.float32(regularization if reg_neg is None else reg_neg)
    learned = user_factors.shape[1] if user_cols is None else user_cols
    loss_sum = 0.0
    correct = 0
    for u, i, j in np.asarray(triplets, dtype=np.int64):
        if j < 0:
            continue
        pu = user_factors[u].copy()
        qi = item_factors[i].copy()
        qj = item_factors[j].copy()
        x = float(pu @ (qi - qj))
        if loss == "bpr":
            value, z = float(np.logaddexp(0.0, -x)), np.float32(1.0 / (1.0 + np.exp(x)))
        else:
            term, weight = hard_bpr_loss(x, loss_a, loss_b, loss_c)
            value, z = float(term), np.float32(weight)
        penalty = float(reg) * float(pu[:learned] @ pu[:learned])
        penalty += float(reg_i) * float(qi @ qi) + float(reg_j) * float(qj @ qj)
        loss_sum += value + penalty
        correct += int(x > 0)
        user_factors[u, :learned] = (pu + lr * (z * (qi - qj) - reg * pu))[:learned]
        item_factors[i] = qi + lr * (z * pu - reg_i * qi)
        item_factors[j] = qj + lr * (-z * pu - reg_j * qj)
    return loss_sum, correct


def bpr_candidates_reference(
    users: np.ndarray,
    positives: np.ndarray,
    candidates: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    learning_rate: float,
    regularization: float,
    **step_options: object,
) -> tuple[float, int, int, np.ndarray]:
    """Slow NumPy reference of the kernel with candidates (as :func:`sample_candidates` returns them): per
    sample, each of its negatives is the best-scored valid candidate (first of equal scores; scores only
    when there are several candidates) at the factors before the sample, then one
    :func:`bpr_step_reference` step per negative in order. ``step_options`` go to that step.

    Updates the factors in place; returns ``(loss_sum, correct, scored, chosen)`` with ``chosen`` the
    ``(n_samples, n_negatives)`` negatives (-1: skipped).
    """
    n_samples, n_negatives, n_candidates = candidates.shape
    chosen = np.full((n_samples, n_negatives), -1, dtype=np.int64)
    loss_sum, correct, scored = 0.0, 0, 0
    for n in range(n_samples):
        u, i = int(users[n]), int(positives[n])
        for m in range(n_negatives):
            valid = candidates[n, m][candidates[n, m] >= 0]
            if valid.size == 0:
                continue
            if n_candidates == 1:
                chosen[n, m] = valid[0]
            else:
                scores = item_factors[valid].astype(np.float64) @ user_factors[u].astype(np.float64)
                scored += valid.size
                chosen[n, m] = valid[int(np.argmax(scores))]
        triplets = np.array([[u, i, j] for j in chosen[n]], dtype=np.int64)
        value, ok = bpr_step_reference(
            triplets,
            user_factors,
            item_factors,
            learning_rate,
            regularization,
            **step_options,  # type: ignore[arg-type]
        )
        loss_sum += value
        correct += ok
    return loss_sum, correct, scored, chosen
