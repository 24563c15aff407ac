"""Claim: full-ranking evaluation of all users costs within 2x of the bare minimum, one dense matmul plus a
top-k (argpartition) over the same users. Writes bench/results/evaluate_speed.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_of, write_result
from core.evaluate import _BLOCK_CELLS, evaluate
from core.names import DEFAULT_KS


def bare_minimum(u: np.ndarray, v: np.ndarray, k: int) -> None:
    """Blocked ``U @ V.T`` and an unsorted argpartition top-k: what any evaluator has to do at least."""
    block = max(1, _BLOCK_CELLS // v.shape[0])
    for start in range(0, u.shape[0], block):
        scores = u[start : start + block] @ v.T
        np.argpartition(-scores, k - 1, axis=1)[:, :k]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    u = rng.standard_normal((args.users, args.factors)).astype(np.float32)
    v = rng.standard_normal((args.items, args.factors)).astype(np.float32)
    seen = sp.random(args.users, args.items, density=0.005, random_state=1, format="csr", dtype=np.float32)
    truth = sp.random(args.users, args.items, density=0.001, random_state=2, format="csr", dtype=np.float32)
    truth = sp.csr_matrix(truth - truth.multiply(seen > 0))
    truth.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    base = best_of(lambda: bare_minimum(u[users], v, 20), args.repeat)
    ours = best_of(lambda: evaluate(u, v, truth, seen, ks=DEFAULT_KS, users=users), args.repeat)
    write_result(
        "evaluate_speed",
        {
            "claim": "evaluate() within 2x of dense matmul + argpartition top-k over the same users",
            "users": int(users.size),
            "items": args.items,
            "factors": args.factors,
            "bare_matmul_topk_seconds": round(base, 4),
            "evaluate_seconds": round(ours, 4),
            "ratio": round(ours / base, 3),
            "within_2x": bool(ours <= 2 * base),
        },
    )


if __name__ == "__main__":
    main()
