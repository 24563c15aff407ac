"""Claim (issue 11): on ~10k items the EASE reference costs under 20% of a 60-trial ALS TPE study on the same
data. The data is ``bench/ease_speed.py``'s ``synthetic-3k-10k`` shape (written to a CSV, loaded as a user
would); the study is ``python -m search.run --model als --data CSV --trials 60 --sampler tpe --no-register
--no-report`` on fresh stores (trials only, the part users size their patience by); the reference is
:func:`search.references.compute_references` on a cold cache (lambda tuned on validation, refit on train +
validation, tested). Writes bench/results/ease_share.json.

Run: ``python bench/ease_share.py [--trials 60] [--shape synthetic-3k-10k]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_result
from bench.ease_speed import SYNTHETIC

ROOT = Path(__file__).resolve().parents[1]
TARGET_SHARE = 0.20


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--shape", default="synthetic-3k-10k", choices=list(SYNTHETIC))
    args = p.parse_args()

    from core.data import load
    from core.prepare import prepare
    from core.synthetic import make_synthetic
    from search.references import compute_references

    with tempfile.TemporaryDirectory(prefix="cftune-ease-share-") as tmp:
        csv = Path(tmp) / f"{args.shape}.csv"
        make_synthetic(seed=42, **SYNTHETIC[args.shape]).to_frame().to_csv(csv, index=False)
        prepared = prepare(load(csv))
        t0 = time.perf_counter()
        refs, cached = compute_references(prepared, cache_dir=Path(tmp) / "baselines")
        reference_seconds = time.perf_counter() - t0
        assert not cached

        env = {**os.environ, "CFTUNE_HOME": str(Path(tmp) / "home")}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("CFTUNE_STORAGE", None)
        cmd = [
            sys.executable, "-m", "search.run", "--model", "als", "--data", str(csv), "--trials",
            str(args.trials), "--sampler", "tpe", "--no-register", "--no-report", "--quiet",
        ]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        study_seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    share = reference_seconds / study_seconds
    write_result(
        "ease_share",
        {
            "shape": args.shape,
            "users": prepared.data.n_users,
            "items": prepared.data.n_items,
            "interactions": len(prepared.data),
            "study": " ".join(cmd[1:]).replace(str(csv), "<csv>"),
            "study_seconds": round(study_seconds, 2),
            "reference_seconds": round(reference_seconds, 2),
            "ease_l2": refs.ease_l2,
            "ease_test_ndcg@10": None if refs.ease_test is None else refs.ease_test.metrics["ndcg@10"],
            "reference_share_of_study": round(share, 4),
            "target_share": TARGET_SHARE,
            "meets_target": share < TARGET_SHARE,
        },
    )


if __name__ == "__main__":
    main()
