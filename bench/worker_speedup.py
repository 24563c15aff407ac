"""What a second worker buys on this 2-core machine: the ALS grid (MovieLens-100K, 81 points, no pruning so
that both runs do the same work) with 1 worker on 2 threads against 2 workers (``--workers 2``) on 1 thread
each, trials only (``--no-register``: no refit, references or report). Wall time of the command, fresh
stores each run. Also the time spent claiming trials (the study lock's critical section), the serial part
that bounds what N machines on one PostgreSQL study can gain. Writes bench/results/worker_speedup.json.

Run: ``python bench/worker_speedup.py [--repeat 2]``.
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

ROOT = Path(__file__).resolve().parents[1]


def one_run(workers: int, threads: int, pruner: str) -> float:
    with tempfile.TemporaryDirectory(prefix="cftune-speedup-") as home:
        env = {**os.environ, "CFTUNE_HOME": home}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("CFTUNE_STORAGE", None)
        cmd = [
            sys.executable, "-m", "search.run", "--model", "als", "--dataset", "ml-100k", "--quiet",
            "--no-register", "--pruner", pruner, "--workers", str(workers), "--threads", str(threads),
        ]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        return time.perf_counter() - t0


def claim_seconds(repeat: int = 50) -> float:
    """Mean seconds of one claim (lock, read the study, hand out a trial) on a study of 81 finished trials."""
    import optuna

    from search.budget import claim_next, study_lock_name
    from search.locks import store_lock
    from spaces import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space("als", None)
    with tempfile.TemporaryDirectory(prefix="cftune-claim-") as home:
        url = f"sqlite:///{home}/optuna.db"
        study = optuna.create_study(storage=url, direction="maximize", study_name="claims")
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            with store_lock(url, study_lock_name("claims")):
                claim = claim_next(
                    study, storage_url=url, budget=10_000, sampler="grid", space=space, seed=0, worker=0,
                    max_attempts=3, steps_name="iterations",
                )  # fmt: skip
            times.append(time.perf_counter() - t0)
            for trial in claim.trials:
                study.tell(trial, 0.1)
        return sum(times) / len(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    out: dict[str, object] = {"dataset": "ml-100k", "grid": "als, 81 points", "pruner": "none"}
    for name, workers, threads in (("1 worker x 2 threads", 1, 2), ("2 workers x 1 thread", 2, 1)):
        walls = [one_run(workers, threads, "none") for _ in range(args.repeat)]
        out[name] = {"wall_seconds": [round(w, 2) for w in walls], "best": round(min(walls), 2)}
    one, two = out["1 worker x 2 threads"]["best"], out["2 workers x 1 thread"]["best"]  # type: ignore[index]
    out["speedup_2_workers"] = round(one / two, 3)
    out["claim_seconds_mean"] = round(claim_seconds(), 4)
    write_result("worker_speedup", out)


if __name__ == "__main__":
    main()
