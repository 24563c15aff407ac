"""Claim (issue 11): the EASE reference costs a small fraction of a study. On ~10k items the new path
(one Gram matrix per history, one inverse of the smaller of users x users and items x items per lambda, see
core.baselines) picks the same lambda as the former one (a dense ``inv`` of items x items per lambda, float64)
from the same 8-point grid, with the same validation scores and test NDCG@10 (within 0.5 %, rankings compared
user by user).

Both paths do what ``search.references.compute_references`` does for EASE: tune lambda on validation (train
items excluded), then refit on train + validation and test once. The former path also refit on train at the
chosen lambda to evaluate it on validation again; the new one keeps the tuning result. Shapes (split by
:func:`core.prepare.prepare` with the defaults of :class:`core.prepare.DataOptions`, as a study does):

- ``synthetic-3k-10k``: :func:`core.synthetic.make_synthetic`, 3,000 users x ~10,300 items, ~110k
  interactions;
- ``ml-latest-small-like``: the same generator at 610 users x 9,742 items, ~100k interactions;
- ``items-side``: 8,000 users x ~2,500 items (more users than items: the items x items path);
- ``ml-100k``: the real MovieLens-100K (``$CFTUNE_DATA_DIR``, default ``../shared/data``).

``--shapes 10m`` (run it on its own: it measures the peak RSS of its process) checks the memory bound on a
power-law matrix of the MovieLens-20M shape (138,493 x 26,744, 10M interactions): users and items are both
above ``EASE_MAX_ITEMS``, so EASE keeps that many most popular items; one lambda is fit and evaluated on a
sample of validation users, and the phase times are recorded for extrapolation.

Each path runs three times and the fastest run is kept (the machine is shared); the old path runs once above
5,000 items (minutes a run). Writes bench/results/ease_speed.json; shapes are merged, so a run of some shapes
keeps the others.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
from scipy.linalg import lapack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, best_of, write_result
from core.baselines import (
    EASE_L2_GRID,
    EASE_MAX_ITEMS,
    EASEGram,
    EASEScorer,
    _inverse_plus,
    _UserSide,
    tune_ease,
)
from core.evaluate import EvalResult, evaluate_scorer
from core.names import DEFAULT_KS
from core.prepare import Prepared, prepare

KS = DEFAULT_KS
SYNTHETIC: dict[str, dict[str, Any]] = {
    "synthetic-3k-10k": {"n_users": 3000, "n_items": 13000, "activity_exponent": 0.5, "max_per_user": 100},
    "ml-latest-small-like": {"n_users": 610, "n_items": 9742, "activity_exponent": 1.2, "max_per_user": 2700},
    "items-side": {"n_users": 8000, "n_items": 2500, "activity_exponent": 0.5, "max_per_user": 60},
}
SHAPES = (*SYNTHETIC, "ml-100k")
#: Runs of a path, the fastest kept (the old path runs once above 5,000 items: minutes per run).
REPEAT = 3


# ---------------------------------------------------------------------------------------------- former path
@dataclass(frozen=True)
class OldEASE:
    """core.baselines.EASEScorer as it was: a dense float64 ``inv`` of items x items, float32 weights."""

    weights: np.ndarray
    history: sp.csr_matrix

    @classmethod
    def fit(cls, user_items: sp.csr_matrix, l2: float) -> OldEASE:
        n_items = user_items.shape[1]
        x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
        x.data[:] = 1
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n_items)] += l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices(n_items)] = 0.0
        return cls(b.astype(np.float32), sp.csr_matrix(x, dtype=np.float32))

    @property
    def n_items(self) -> int:
        return int(self.weights.shape[0])

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.history[users] @ self.weights, dtype=np.float32)


def old_path(prepared: Prepared) -> dict[str, Any]:
    s = prepared.split
    train, valid_truth = s.valid_exclude(), s.valid_truth()
    history, test_truth = s.test_exclude(), s.test_truth()
    t0 = time.perf_counter()
    scores, seconds = {}, {}
    for l2 in EASE_L2_GRID:
        t = time.perf_counter()
        result = evaluate_scorer(OldEASE.fit(train, l2), valid_truth, train, ks=(10,))
        scores[l2], seconds[l2] = result.metrics["ndcg@10"], time.perf_counter() - t
    best = max(scores, key=lambda k: scores[k])
    t_tune = time.perf_counter() - t0
    valid = evaluate_scorer(OldEASE.fit(train, best), valid_truth, train, ks=KS)
    t_valid = time.perf_counter() - t0 - t_tune
    test = evaluate_scorer(OldEASE.fit(history, best), test_truth, history, ks=KS, keep_top_items=True)
    total = time.perf_counter() - t0
    return _summary(best, scores, seconds, valid, test, total, {"tune": t_tune, "valid_refit": t_valid})


# ---------------------------------------------------------------------------------------------- the new path
def new_path(prepared: Prepared, search: str = "bracket") -> dict[str, Any]:
    s = prepared.split
    train, valid_truth = s.valid_exclude(), s.valid_truth()
    history, test_truth = s.test_exclude(), s.test_truth()
    results: dict[float, EvalResult] = {}
    seconds: dict[float, float] = {}
    t0 = time.perf_counter()
    last = [t0]

    def keep(l2: float, result: EvalResult) -> None:
        now = time.perf_counter()
        results[l2], seconds[l2], last[0] = result, now - last[0], now

    tuning = tune_ease(train, valid_truth, ks=KS, on_result=keep, search=search)  # type: ignore[arg-type]
    best, scores = tuning.l2, tuning.scores
    del tuning
    t_tune = time.perf_counter() - t0
    refit = EASEScorer.fit(history, best)
    test = evaluate_scorer(refit, test_truth, history, ks=KS, keep_top_items=True)
    total = time.perf_counter() - t0
    out = _summary(best, scores, seconds, results[best], test, total, {"tune": t_tune})
    side = refit.side.m if isinstance(refit.side, _UserSide) else refit.side.b
    out["factorised_side"] = f"{refit.kind} x {refit.kind}, {side.shape[0]} on the test refit"
    return out


def _summary(
    best: float,
    scores: dict[float, float],
    seconds: dict[float, float],
    valid: EvalResult,
    test: EvalResult,
    total: float,
    phases: dict[str, float],
) -> dict[str, Any]:
    return {
        "seconds": round(total, 2),
        "phases_seconds": {k: round(v, 2) for k, v in phases.items()},
        "seconds_per_lambda": {str(k): round(v, 2) for k, v in seconds.items()},
        "l2": best,
        "valid_ndcg@10_per_lambda": {str(k): v for k, v in scores.items()},
        "valid_ndcg@10": valid.metrics["ndcg@10"],
        "test_ndcg@10": test.metrics["ndcg@10"],
        "test_recall@20": test.metrics["recall@20"],
        "_test": test,
    }


def peak_memory_mib(fn: Callable[[], object]) -> float:
    """Peak of NumPy/SciPy allocations (tracemalloc) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    finally:
        tracemalloc.stop()


def kernels(prepared: Prepared) -> dict[str, object]:
    """One lambda's dense step on the factorised Gram matrix, several ways, every run's seconds (why a
    Cholesky inverse, ``_inverse_plus``, and no eigendecomposition)."""
    gram = EASEGram.of(prepared.split.valid_exclude()).gram
    n = gram.shape[0]
    shifted = gram + 500.0 * np.eye(n)

    def cholesky() -> None:
        chol, _ = lapack.dpotrf(shifted, lower=1)
        lapack.dpotri(chol, lower=1, overwrite_c=1)

    def runs(fn: Callable[[], object], repeat: int = 5) -> list[float]:
        return [round(best_of(fn, 1), 2) for _ in range(repeat)]

    return {
        "side": n,
        "numpy_lu_inv_seconds": runs(lambda: np.linalg.inv(shifted)),
        "scipy_cholesky_potrf_potri_seconds": runs(cholesky),
        "inverse_plus_seconds": runs(lambda: _inverse_plus(gram, 500.0)),
        "eigh_seconds": runs(lambda: sl.eigh(shifted, driver="evd"), 2),
        "gemm_seconds": runs(lambda: shifted @ shifted),
    }


# ---------------------------------------------------------------------------------------------- shapes
def load_shape(name: str) -> Prepared:
    if name == "ml-100k":
        from core.data import load
        from search.settings import data_dir

        return prepare(load(data_dir() / "ml-100k"))
    from core.synthetic import make_synthetic

    return prepare(make_synthetic(seed=42, **SYNTHETIC[name]))


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The least disturbed of identical runs (the machine is shared), with every run's seconds."""
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "seconds_every_run": [r["seconds"] for r in runs]}


def run_shape(name: str, *, old: bool, kernel: bool) -> dict[str, Any]:
    prepared = load_shape(name)
    s = prepared.split
    out: dict[str, Any] = {
        "users": s.n_users,
        "items": s.n_items,
        "train_interactions": int(s.valid_exclude().nnz),
        "valid_users": int(np.count_nonzero(np.diff(s.valid_truth().indptr))),
        "test_users": int(np.count_nonzero(np.diff(s.test_truth().indptr))),
    }
    print(f"{name}: {out}", flush=True)
    new = fastest([new_path(prepared) for _ in range(REPEAT)])
    print(f"{name} new: {new['seconds']} s, lambda {new['l2']}", flush=True)
    out["new_peak_alloc_mib"] = peak_memory_mib(lambda: new_path(prepared))
    grid = new_path(prepared, search="grid")  # every lambda of the grid: the pick before the climb (issue 24)
    grid.pop("_test")
    out["grid"] = grid
    out["climb_same_lambda_as_grid"] = grid["l2"] == new["l2"]
    out["climb_same_test_ndcg@10_as_grid"] = grid["test_ndcg@10"] == new["test_ndcg@10"]
    out["climb_fits"] = len(new["valid_ndcg@10_per_lambda"])
    out["grid_fits"] = len(grid["valid_ndcg@10_per_lambda"])
    print(f"{name} grid: {grid['seconds']} s, lambda {grid['l2']}", flush=True)
    if kernel:
        out["kernels"] = kernels(prepared)
    if old:
        was = fastest([old_path(prepared) for _ in range(REPEAT if s.n_items <= 5000 else 1)])
        print(f"{name} old: {was['seconds']} s, lambda {was['l2']}", flush=True)
        a, b = was.pop("_test"), new["_test"]
        same_top = np.all(a.top_items[:, :10] == b.top_items[:, :10], axis=1)
        out["old"] = was
        out["same_lambda"] = was["l2"] == new["l2"]
        out["valid_ndcg@10_max_abs_diff"] = max(
            abs(was["valid_ndcg@10_per_lambda"][k] - new["valid_ndcg@10_per_lambda"][k])
            for k in new["valid_ndcg@10_per_lambda"]
        )
        out["test_ndcg@10_rel_diff_pct"] = 100 * (new["test_ndcg@10"] / was["test_ndcg@10"] - 1)
        out["test_users_same_top10_pct"] = round(100 * float(same_top.mean()), 3)
        out["speedup"] = round(was["seconds"] / new["seconds"], 1)
    new.pop("_test")
    out["new"] = new
    return out


# ---------------------------------------------------------------------------------------------- 10M memory
def power_law_matrix(n_users: int, n_items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """Zipf-like item popularity, Pareto user activity (>= 20, capped at half the items), ``nnz`` distinct
    (user, item) pairs: drawn with replacement, duplicates dropped, users still short topped up."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(n_items) + 10.0) ** 1.05
    popularity /= popularity.sum()
    raw = rng.pareto(1.3, size=n_users) + 1.0
    scale = nnz / raw.sum()
    for _ in range(50):  # rescale until the clipped total is the target
        scale *= nnz / np.clip(raw * scale, 20, n_items // 2).sum()
    want = np.clip(raw * scale, 20, n_items // 2).astype(np.int64)
    keys = np.empty(0, dtype=np.int64)
    for _ in range(30):
        short = want - np.bincount(keys // n_items, minlength=n_users)
        if not short.any():
            break
        users = np.repeat(np.arange(n_users, dtype=np.int64), np.ceil(short * 1.3).astype(np.int64))
        fresh = np.unique(users * n_items + rng.choice(n_items, size=users.size, p=popularity))
        fresh = fresh[~np.isin(fresh, keys, assume_unique=True)]
        fresh = fresh[rng.permutation(fresh.size)]
        fresh = fresh[np.argsort(fresh // n_items, kind="stable")]
        owner = fresh // n_items
        rank = np.arange(fresh.size) - np.searchsorted(owner, owner)
        keys = np.concatenate([keys, fresh[rank < short[owner]]])
    m = sp.csr_matrix(
        (np.ones(keys.size, dtype=np.float32), (keys // n_items, keys % n_items)), shape=(n_users, n_items)
    )
    m.sort_indices()
    return m


def holdout(m: sp.csr_matrix, frac: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(rest, held out): ``frac`` of every user's interactions, at random."""
    coo = m.tocoo()
    out = np.random.default_rng(seed).random(coo.nnz) < frac

    def part(keep: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)

    return part(~out), part(out)


def run_10m(eval_users: int) -> dict[str, Any]:
    def rss_gib() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)

    t = time.perf_counter()
    full = power_law_matrix(138_493, 26_744, 10_000_000)
    n_interactions = int(full.nnz)
    rest, test_truth = holdout(full, 0.2, 1)
    train, valid_truth = holdout(rest, 0.125, 2)
    del full, rest, test_truth
    out: dict[str, Any] = {
        "users": train.shape[0],
        "items": train.shape[1],
        "interactions": n_interactions,
        "data_seconds": round(time.perf_counter() - t, 1),
        "peak_rss_gib_after_data": rss_gib(),
    }
    t = time.perf_counter()
    gram = EASEGram.of(train)
    out["gram_seconds"] = round(time.perf_counter() - t, 1)
    out["kind"], out["kept_items"] = gram.kind, gram.n_kept
    t = time.perf_counter()
    scorer = gram.scorer(500.0)
    out["one_lambda_fit_seconds"] = round(time.perf_counter() - t, 1)
    users = np.flatnonzero(np.diff(valid_truth.indptr) > 0)
    sample = np.sort(np.random.default_rng(0).choice(users, size=min(eval_users, users.size), replace=False))
    t = time.perf_counter()
    result = evaluate_scorer(scorer, valid_truth, train, ks=KS, users=sample)
    seconds = time.perf_counter() - t
    out["eval_users"], out["eval_seconds"] = int(sample.size), round(seconds, 1)
    out["valid_ndcg@10_sample"] = result.metrics["ndcg@10"]
    per_lambda = out["one_lambda_fit_seconds"] + seconds * users.size / sample.size
    out["estimated_seconds_per_lambda_all_valid_users"] = round(per_lambda, 0)
    out["estimated_reference_seconds"] = round(
        out["gram_seconds"] * 2 + per_lambda * (len(EASE_L2_GRID) + 1), 0
    )
    out["peak_rss_gib"] = rss_gib()
    out["limit_gib"] = 8.0
    out["ease_max_items"] = EASE_MAX_ITEMS
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=[*SHAPES, "10m"])
    p.add_argument("--skip-old", action="store_true", help="only the new path (the old one takes minutes)")
    p.add_argument("--eval-users", type=int, default=5000, help="10m: validation users evaluated")
    args = p.parse_args()
    path = RESULTS / "ease_speed.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    shapes = dict(previous.get("shapes", {}))
    for name in args.shapes:
        if name == "10m":
            shapes[name] = run_10m(args.eval_users)
        else:
            shapes[name] = run_shape(name, old=not args.skip_old, kernel=name == "synthetic-3k-10k")
    write_result(
        "ease_speed",
        {
            "grid": list(EASE_L2_GRID),
            "split": "core.prepare.prepare defaults (DataOptions): auto split, valid 10%, test 20%",
            "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "note": "2-core machine shared with other jobs while measured: absolute seconds are inflated",
            "shapes": shapes,
        },
    )


if __name__ == "__main__":
    main()
