"""Torch trainer speed: samples per second of an epoch with dense optimizer steps (torch's optimizers, every
row of both tables at every step) against row-sparse ones (``sparse=True``,
:class:`core.bpr.sparse_optimizer.SparseRowOptimizer`: only the rows the batch touches), same data, seed and
thread count, per optimizer, batch size and factor count.

Two shapes, both generated (seeded; :func:`bench.bpr_throughput.make_data`, Zipf popularity in taste
clusters): Last.fm-2k's (1,892 users x 17,632 items, 92,834 interactions), where a batch touches a small share
of a large catalogue, and MovieLens-100K's (943 x 1,682, 100,000), where it touches most of a small one.

A sample is one (user, positive, negative) triplet; an epoch is ``samples_per_epoch`` (5) x interactions. The
time is the median epoch of ``--epochs`` (default 3, the first one included: no compile step), one training
thread by default. Run: ``python bench/torch_bpr_speed.py [--threads 1] [--epochs 3]``; writes
``bench/results/torch_bpr_speed.json``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bpr_throughput import make_data
from bench.common import write_result

SHAPES = {"lastfm-2k-shape": (1892, 17632, 92834), "ml-100k-shape": (943, 1682, 100000)}
OPTIMIZERS = ("adagrad", "adamw")
BATCHES = (1024, 4096)
FACTORS = (64, 256)


def epoch_seconds(
    user_items: Any, optimizer: str, batch: int, factors: int, sparse: bool, **run: Any
) -> float:
    """Median epoch wall time of a fit (the trainer's own per-epoch clock: sampling, steps, export)."""
    from core.bpr.optimizer import OptimizerConfig
    from core.bpr.torch_trainer import TorchBPR

    config = OptimizerConfig(optimizer=optimizer, learning_rate=0.05, scheduler="constant", sparse=sparse)
    model = TorchBPR(factors=factors, batch_size=batch, optimizer=config, **run).fit(user_items)
    return statistics.median(model.history_.durations)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/torch_bpr_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit; the median epoch is reported")
    args = p.parse_args(argv)
    if args.threads < 1 or args.epochs < 1:
        print("error: --threads and --epochs must be >= 1", file=sys.stderr)
        return 2
    run = {
        "epochs": args.epochs,
        "num_threads": args.threads,
        "samples_per_epoch": 5,
        "random_state": 0,
        "item_bias": False,  # the constructor default these timings were taken with
    }
    rows = []
    for shape, (n_users, n_items, nnz) in SHAPES.items():
        user_items, _ = make_data(n_users, n_items, nnz)
        samples = run["samples_per_epoch"] * user_items.nnz
        for optimizer, batch, factors in itertools.product(OPTIMIZERS, BATCHES, FACTORS):
            dense = epoch_seconds(user_items, optimizer, batch, factors, False, **run)
            sparse = epoch_seconds(user_items, optimizer, batch, factors, True, **run)
            row = {
                "shape": shape,
                "optimizer": optimizer,
                "batch_size": batch,
                "factors": factors,
                "dense_samples_per_s": round(samples / dense),
                "sparse_samples_per_s": round(samples / sparse),
                "speedup": round(dense / sparse, 2),
            }
            print(row, flush=True)
            rows.append(row)
    claim = __doc__.split("\n\n")[0].replace("\n", " ")
    result = {"claim": claim, "threads": args.threads, "epochs": args.epochs, "rows": rows}
    write_result("torch_bpr_speed", result, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
