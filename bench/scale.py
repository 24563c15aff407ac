"""Claim (issue 11): 10 million interactions fit on one machine. On a power-law synthetic log of the
MovieLens-20M shape (~138k users x 27k items, 10M interactions), one ALS trial with full-ranking validation,
the refit on train + validation with its test evaluation, and the registration all complete, and no phase
peaks above 8 GiB RSS. The MovieLens-1M shape (6k x 3.7k, 1M) runs the same phases as the small reference.

Phases, each timed (wall seconds) and measured (peak RSS of the whole process during the phase; the kernel's
high-water mark is reset at the start of the phase and read at its end, with a psutil sampler beside it):

- ``load_csv`` / ``load_parquet``: :func:`core.data.load` of the same log written both ways;
- ``split``: :func:`core.prepare.prepare` with the defaults of :class:`core.prepare.DataOptions`
  (segmentation, the temporal split and the data + split hash), what ``core.train`` and ``search.run`` do
  after loading;
- ``als_trial`` / ``bpr_trial``: what one study trial does (:class:`search.objective.Objective`): fit with the
  validation monitor (full ranking every ``eval_every`` steps, model restored to its best step), then
  :func:`core.final.validate`;
- ``refit_test``: :func:`core.final.final_test` (refit on train + validation, test evaluation, popularity,
  paired bootstrap CIs, score range), what :func:`search.finalize.finalize` calls;
- ``references``: :func:`search.references.compute_references` (popularity; EASE where its item limit allows);
- ``tracking_setup``: the study's MLflow side (:class:`search.tracking.StudyTracking`: experiment, parent run,
  the split logged as Parquet) in a temporary SQLite store;
- ``registration``: :func:`search.registry.register_final` (final run, run folder, pyfunc model, registry
  version, aliases).

``--cli`` (issue 24) runs what a user types instead, on planted logs (:func:`core.planted.make_planted`: a
rank-32 preference under Zipf popularity, so quality numbers mean something) of the MovieLens-1M shape
(6,040 x 3,706, 1M) and the MovieLens-20M shape (138,493 x 26,744, 10M):
``python -m search.run --model {als,bpr} --trials N --sampler tpe --data <log>`` in a fresh process with fresh
stores. Each run records its wall seconds and peak RSS (the child's rusage), the phase table of its study
record (``summary.json``), the references' share of the trials' time, the bytes its artifact store grew by,
the trial counts, and the selected trial's validation and test NDCG@10 beside popularity and EASE. The logs
are kept under ``--tmp`` (default the system temp) and reused by a later run with the same seed; results
merge into ``cli`` of bench/results/scale.json, keyed ``<shape>-<model>-<trials>``; ``--valid-sample all``
adds ``-all-users``: the same study with every validation user at every step, for the quality check.

Every shape runs in its own process, so one shape's memory never shows in another's numbers. The synthetic
logs live in a temporary folder, never in the project. Writes bench/results/scale.json (shapes are merged, so
``--shapes 10m`` alone updates the 10M entry and keeps the 1M one).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, write_result
from core.names import DEFAULT_METRIC

GIB = 2**30
#: The issue's bar.
PHASE_LIMIT_GIB = 8.0
#: MovieLens-like rating shares for 1..5 stars.
RATING_SHARES = (0.06, 0.11, 0.26, 0.35, 0.22)


@dataclass(frozen=True)
class Shape:
    """A synthetic log's size: users x items and the number of (distinct) interactions."""

    name: str
    users: int
    items: int
    interactions: int
    like: str


SHAPES = {
    "1m": Shape("1m", 6_040, 3_706, 1_000_000, "MovieLens-1M (6,040 users x 3,706 items, 1M ratings)"),
    "10m": Shape(
        "10m", 138_493, 26_744, 10_000_000, "MovieLens-20M users x items (138,493 x 26,744), 10M ratings"
    ),
}


# ---------------------------------------------------------------------------------------------- data
def _user_activity(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: a Pareto tail above 20 (MovieLens keeps users with >= 20 ratings), scaled so
    that the total is the shape's, capped at half the catalogue."""
    raw = rng.pareto(1.3, size=shape.users) + 1.0
    cap = shape.items // 2
    counts = np.full(shape.users, 20.0)
    for _ in range(50):  # rescale the tail until the capped total matches
        scale = (shape.interactions - counts.sum() + np.minimum(counts, cap).sum()) / raw.sum()
        counts = np.minimum(np.maximum(20.0, raw * scale), cap)
        if abs(counts.sum() - shape.interactions) < 0.001 * shape.interactions:
            break
    out = np.floor(counts).astype(np.int64)
    deficit = shape.interactions - int(out.sum())
    if deficit > 0:  # hand the rounding remainder to random users below the cap
        room = np.flatnonzero(out < cap)
        np.add.at(out, rng.choice(room, size=deficit), 1)
    return np.minimum(out, cap)


def make_log(shape: Shape, seed: int = 0) -> dict[str, np.ndarray]:
    """A power-law log: Zipf-like item popularity, Pareto user activity, distinct (user, item) pairs,
    ratings 1-5 in MovieLens proportions, unix timestamps increasing within each user's active years."""
    rng = np.random.default_rng(seed)
    n_items = shape.items
    popularity = 1.0 / (np.arange(n_items) + 10.0) ** 1.05
    popularity /= popularity.sum()
    item_ids = rng.permutation(n_items) + 1  # popularity is not id order
    want = _user_activity(shape, rng)
    have = np.zeros(shape.users, dtype=np.int64)
    keys = np.empty(0, dtype=np.int64)
    for _ in range(30):  # draw with replacement, keep distinct pairs, top up users still short
        short = want - have
        if not short.any():
            break
        users = np.repeat(np.arange(shape.users, dtype=np.int64), np.ceil(short * 1.25).astype(np.int64))
        items = rng.choice(n_items, size=users.size, p=popularity)
        fresh = np.unique(users * n_items + items)
        fresh = fresh[~np.isin(fresh, keys, assume_unique=True)]
        fresh = fresh[rng.permutation(fresh.size)]
        fresh_users = fresh // n_items
        order = np.argsort(fresh_users, kind="stable")
        fresh, fresh_users = fresh[order], fresh_users[order]
        starts = np.searchsorted(fresh_users, np.arange(shape.users))
        rank = np.arange(fresh.size) - starts[fresh_users]
        take = rank < short[fresh_users]
        keys = np.concatenate([keys, fresh[take]])
        have += np.bincount(fresh_users[take], minlength=shape.users)
    user = keys // n_items
    item = keys % n_items
    n = keys.size
    start = rng.integers(946_684_800, 1_420_070_400, size=shape.users)  # 2000-01-01 .. 2015-01-01
    span = rng.integers(86_400, 3 * 365 * 86_400, size=shape.users)
    timestamp = start[user] + (rng.random(n) * span[user]).astype(np.int64)
    rating = rng.choice(np.arange(1, 6, dtype=np.int64), size=n, p=RATING_SHARES)
    order = np.argsort(timestamp, kind="stable")  # a log is written in time order
    return {
        "user_id": (user[order] + 1).astype(np.int64),
        "item_id": item_ids[item[order]].astype(np.int64),
        "rating": rating[order],
        "timestamp": timestamp[order],
    }


def write_log(shape: Shape, folder: Path, seed: int = 0) -> tuple[Path, Path, dict[str, object]]:
    """The log as ``scale-<shape>.csv`` and ``.parquet`` in ``folder``; returns both paths and its facts."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    columns = make_log(shape, seed)
    table = pa.table(columns)
    facts = {
        "interactions": table.num_rows,
        "users": int(np.unique(columns["user_id"]).size),
        "items": int(np.unique(columns["item_id"]).size),
        "positive_share": round(float(np.mean(columns["rating"] >= 4)), 4),
        "max_user_interactions": int(np.bincount(columns["user_id"]).max()),
        "max_item_interactions": int(np.bincount(columns["item_id"]).max()),
    }
    del columns
    csv_path = folder / f"scale-{shape.name}.csv"
    parquet_path = folder / f"scale-{shape.name}.parquet"
    pacsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    facts["csv_mib"] = round(csv_path.stat().st_size / 2**20, 1)
    facts["parquet_mib"] = round(parquet_path.stat().st_size / 2**20, 1)
    facts["generate_seconds"] = round(time.perf_counter() - t0, 2)
    return csv_path, parquet_path, facts


# ---------------------------------------------------------------------------------------------- measuring
def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (a study's helper workers)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class TreePeak:
    """The peak of :func:`_tree_rss` over a process's life, polled every ``every`` seconds in a thread
    (a measurement only; ``ru_maxrss`` sees the largest single process, not the sum of a study's workers)."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every, self.peak = pid, every, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _tree_rss(self.pid))
            self._done.wait(self.every)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def _reset_high_water_mark() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) of this process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _high_water_mark() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Meter:
    """Wall time and peak RSS per phase."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.phases: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[dict[str, Any]]:
        """Measure the block; the yielded dict collects notes that go with the phase's numbers."""
        gc.collect()
        notes: dict[str, Any] = {}
        start_rss = _rss()
        exact = _reset_high_water_mark()
        peak = [start_rss]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.interval):
                peak[0] = max(peak[0], _rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        try:
            yield notes
        finally:
            seconds = time.perf_counter() - t0
            done.set()
            sampler.join()
            hwm = _high_water_mark() if exact else None
            top = max(peak[0], _rss(), hwm or 0)
            self.phases[name] = {
                "seconds": round(seconds, 2),
                "peak_rss_gib": round(top / GIB, 3),
                "rss_at_start_gib": round(start_rss / GIB, 3),
                "peak_source": "VmHWM (reset per phase)" if hwm else "psutil sampler (20 ms)",
                **notes,
            }
            print(f"[{name}] {seconds:.1f} s, peak RSS {top / GIB:.2f} GiB", file=sys.stderr, flush=True)


def search_cli(data: Path, home: Path) -> dict[str, Any]:
    """``python -m search.run --model als --data <csv> --trials 1 --sampler tpe`` in its own process, stores
    in ``home``: wall seconds and the process's peak RSS (its whole life, all phases together)."""
    cmd = [sys.executable, "-m", "search.run", "--model", "als", "--data", str(data), "--trials", "1"]
    cmd += ["--sampler", "tpe", "--no-report", "--quiet"]
    env = {**os.environ, "CFTUNE_HOME": str(home), "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("CFTUNE_STORAGE", None)
    log = home / "search-run.log"
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stdout=out, stderr=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    return {
        "command": " ".join(["python", *cmd[1:]]),
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),
        "exit_code": proc.returncode,
        "output_tail": log.read_text(errors="replace")[-1500:],
    }


# ---------------------------------------------------------------------------------------------- phases
def run_shape(shape: Shape, folder: Path, *, bpr_epochs: int, seed: int, e2e: bool) -> dict[str, Any]:
    """Every phase on one shape, in this process."""
    home = folder / "home"  # stores for tracking and registry: never the project's
    home.mkdir()
    os.environ["CFTUNE_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("CFTUNE_STORAGE", None)
    csv_path, parquet_path, facts = write_log(shape, folder, seed)
    gc.collect()
    print(f"[{shape.name}] generated {facts}", file=sys.stderr, flush=True)

    from core.als import PRESETS
    from core.confidence import default_mode
    from core.data import load
    from core.final import final_test, validate, validation_monitor
    from core.fit import fit_model
    from core.names import DEFAULT_KS
    from core.prepare import DataOptions

    meter = Meter()
    ks = DEFAULT_KS
    failures: dict[str, str] = {}

    with meter.phase("load_csv") as notes:
        data = load(csv_path)
        notes["rows"] = len(data)
    del data
    with meter.phase("load_parquet") as notes:
        data = load(parquet_path)
        notes["rows"] = len(data)

    opts = DataOptions()
    with meter.phase("split") as notes:
        prepared = opts.split_data(data)
        notes.update(prepared.split.describe())
        notes["users"], notes["items"] = prepared.split.n_users, prepared.split.n_items

    preset = PRESETS["default"]
    als_params: dict[str, Any] = {
        "factors": preset.factors,
        "regularization": preset.regularization,
        "alpha": preset.alpha,
        "iterations": preset.iterations,
        "confidence": default_mode(prepared.data),
        "random_state": seed,
    }

    def trial(model: str, params: dict[str, Any], every: int, last: int, notes: dict[str, Any]) -> None:
        """What :class:`search.objective.Objective` does for one trial, without Optuna and MLflow."""
        steps: list[tuple[int, float]] = []
        monitor = validation_monitor(
            prepared,
            metric=DEFAULT_METRIC,
            every=every,
            on_evaluate=lambda step, metrics: steps.append((step, metrics[DEFAULT_METRIC])),
            restore_best=True,
            last_step=last,
        )
        t0 = time.perf_counter()
        fitted = fit_model(prepared, model, params, callback=monitor)
        notes["fit_with_validation_seconds"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        valid = validate(prepared, fitted, ks=ks)
        notes["validate_seconds"] = round(time.perf_counter() - t0, 2)
        notes["params"] = params
        notes["validations"] = len(steps)
        notes["best_step"] = int(monitor.best_step)
        notes["valid_ndcg@10"] = round(valid.metrics["ndcg@10"], 5)
        notes["valid_users"] = int(valid.metrics["users"])

    with meter.phase("als_trial") as notes:
        trial("als", als_params, every=1, last=preset.iterations, notes=notes)
        notes["eval_every"] = 1

    bpr_params: dict[str, Any] = {  # the kernel's settings before the one BPR default (core.defaults)
        "factors": 64,
        "learning_rate": 0.05,
        "hard_ratio": 0.3,
        "lr_decay": 1.0,
        "item_bias": False,
        "samples_per_epoch": 5,
        "epochs": bpr_epochs,
        "random_state": seed,
    }
    with meter.phase("bpr_trial") as notes:
        trial("bpr", bpr_params, every=5, last=bpr_epochs, notes=notes)
        notes["eval_every"] = 5

    with meter.phase("refit_test") as notes:
        final = final_test(prepared, "als", als_params, ks=ks)
        notes["refit_seconds"] = round(final.refit_seconds, 2)
        notes["test_ndcg@10"] = round(final.test.metrics["ndcg@10"], 5)
        notes["popularity_test_ndcg@10"] = round(final.popularity.metrics["ndcg@10"], 5)
        notes["test_users"] = int(final.test.metrics["users"])

    from search.references import compute_references

    try:
        with meter.phase("references") as notes:
            refs, _ = compute_references(prepared, ks=ks, cache_dir=None)
            notes["note"] = refs.note
            notes["ease"] = refs.ease_test is not None
    except Exception as err:  # recorded, the registration still runs
        failures["references"] = f"{type(err).__name__}: {err}"[:500]

    try:
        import optuna

        from search.registry import register_final
        from search.run import quiet_library_warnings
        from search.settings import StudySettings, default_storage
        from search.tracking import StudyTracking

        quiet_library_warnings()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with meter.phase("tracking_setup"):
            settings = StudySettings(model="als", report=False, quiet=True)
            study = optuna.create_study(
                study_name=f"scale-{shape.name}", storage=default_storage(), direction="maximize"
            )
            tracking = StudyTracking(settings, prepared, study, f"scale-{shape.name}", "tpe")
        with meter.phase("registration") as notes:
            decision = register_final(
                tracking,
                "als",
                prepared,
                als_params,
                final,
                best_value=float(final.test.metrics["ndcg@10"]),
                study=study.study_name,
                trial_number=0,
            )
            tracking.finish("FINISHED", None)
            notes["registered_version"] = decision.version
            notes["decision"] = decision.decision
    except Exception as err:
        failures["registration"] = f"{type(err).__name__}: {err}"[:500]

    end_to_end = None
    if e2e:
        print("[search.run] ...", file=sys.stderr, flush=True)
        (folder / "e2e").mkdir()
        end_to_end = search_cli(csv_path, folder / "e2e")
        print(
            f"[search.run] {end_to_end['seconds']} s, peak RSS {end_to_end['peak_rss_gib']} GiB",
            file=sys.stderr,
        )

    phases = meter.phases
    core = [p for p in ("als_trial", "refit_test", "registration") if p in phases]
    return {
        "shape": {**shape.__dict__, "generated": facts},
        "phases": phases,
        "failures": failures,
        "end_to_end": end_to_end,
        "max_phase_peak_rss_gib": max(p["peak_rss_gib"] for p in phases.values()),
        "bar": {
            "limit_gib": PHASE_LIMIT_GIB,
            "als_trial_refit_registration_completed": len(core) == 3,
            "every_phase_under_limit": all(p["peak_rss_gib"] <= PHASE_LIMIT_GIB for p in phases.values()),
        },
    }


# ---------------------------------------------------------------------------------------------- --cli
#: Planted logs of real shapes: (users, items, interactions).
CLI_SHAPES = {"1m": (6_040, 3_706, 1_000_000), "20m": (138_493, 26_744, 10_000_000)}


def planted_log(name: str, folder: Path, seed: int) -> tuple[Path, dict[str, Any]]:
    """The planted log of shape ``name`` as Parquet in ``folder`` (made once per seed, then reused)."""
    from core.planted import make_planted

    path = folder / f"planted-{name}-seed{seed}.parquet"
    facts_path = path.with_suffix(".json")
    if path.is_file() and facts_path.is_file():
        return path, json.loads(facts_path.read_text())
    users, items, interactions = CLI_SHAPES[name]
    t0 = time.perf_counter()
    data = make_planted(users, items, rank=32, density=interactions / (users * items), seed=seed)
    frame = data.to_frame()
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    facts = {
        "generator": f"core.planted.make_planted(rank=32, seed={seed})",
        "interactions": len(data),
        "users": data.n_users,
        "items": data.n_items,
        "generate_seconds": round(time.perf_counter() - t0, 1),
        "parquet_mib": round(path.stat().st_size / 2**20, 1),
    }
    facts_path.write_text(json.dumps(facts))
    return path, facts


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _study_attr(home: Path, study_name: str | None, attr: str) -> Any:
    """A user attribute of the study in ``home``'s Optuna storage (the validation sample lives there)."""
    import optuna

    storage = f"sqlite:///{home / 'optuna.db'}"
    if study_name is None or not (home / "optuna.db").is_file():
        return None
    return optuna.load_study(study_name=study_name, storage=storage).user_attrs.get(attr)


def trial_rows(storage: str, study_name: str | None) -> list[dict[str, Any]]:
    """Each trial of the study: how it ended, its value, the steps it was given and trained, the step its
    value is from, its seconds, and its parameters as trained (``params_full``, a step budget included)."""
    import optuna

    if not study_name:
        return []
    rows = []
    for t in optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False):
        a = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "steps_total": a.get("steps_total"),
                "steps_computed": a.get("steps_computed"),
                "best_step": a.get("best_step"),
                "fit_seconds": a.get("fit_seconds"),
                "params": a.get("params_full", t.params),
            }
        )
    return rows


def cli_study(data: Path, home: Path, model: str, trials: int, valid_sample: str | None) -> dict[str, Any]:
    """One typed ``search.run`` study in its own process, fresh stores in ``home``; its numbers."""
    home.mkdir(parents=True)
    cmd = [sys.executable, "-m", "search.run", "--model", model, "--trials", str(trials)]
    cmd += ["--sampler", "tpe", "--data", str(data)]
    env = {**os.environ, "CFTUNE_HOME": str(home)}
    for name in ("MLFLOW_TRACKING_URI", "CFTUNE_STORAGE", "CFTUNE_VALID_SAMPLE"):
        env.pop(name, None)
    if valid_sample is not None:
        env["CFTUNE_VALID_SAMPLE"] = valid_sample
    log = home / "search-run.log"
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stdout=out, stderr=out, env=env)
        tree = TreePeak(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        tree_peak = tree.stop()
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    result: dict[str, Any] = {
        "command": " ".join(["python", *cmd[1:]]),
        "valid_sample_env": valid_sample,
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),  # the largest single process
        "peak_rss_all_workers_gib": round(tree_peak / GIB, 3),  # the study's processes together
        "store_bytes": _folder_bytes(home),
        "output_lines": text.count("\n"),
        "output_carriage_returns": text.count("\r"),
    }
    records = sorted(home.rglob("summary.json"), key=lambda f: f.stat().st_mtime)
    if not records:
        result["output_tail"] = text[-3000:]
        return result
    rec = json.loads(records[-1].read_text())
    phases = rec.get("phases") or {}
    secs = phases.get("seconds", {})
    own = list((phases.get("trial_seconds") or {}).values())
    base = rec.get("baselines") or {}
    best = rec.get("best_trial") or {}
    result.update(
        {
            "phases_seconds": secs,
            "phases_total": round(sum(secs.values()), 2),
            "trial_seconds": {
                "sum": round(sum(own), 1),
                "mean": round(sum(own) / len(own), 1) if own else None,
            },
            "references_share_of_trials": (
                round(secs["references"] / secs["trials"], 3)
                if secs.get("trials") and "references" in secs
                else None
            ),
            "artifact_bytes": rec.get("artifact_bytes"),
            "trials": rec.get("trials"),
            "validation_sample": _study_attr(home, rec.get("study_name"), "validation_sample"),
            "patience": _study_attr(home, rec.get("study_name"), "patience"),
            "workers": next(  # search.parallelism's line, printed only for more than one
                (int(line.split()[1]) for line in text.splitlines() if line.startswith("workers: ")), 1
            ),
            "trial_rows": trial_rows(f"sqlite:///{home / 'optuna.db'}", rec.get("study_name")),
            "selected_trial": best.get("number"),
            "selected_params": best.get("params"),
            "valid_ndcg@10": best.get("value"),
            "test_ndcg@10": (rec.get("test") or {}).get("ndcg@10"),
            "popularity_test_ndcg@10": ((base.get("popularity") or {}).get("test") or {}).get("ndcg@10"),
            "ease_test_ndcg@10": ((base.get("ease") or {}).get("test") or {}).get("ndcg@10"),
            "ease_note": base.get("note"),
            "summary_tail": text[-2500:],
        }
    )
    return result


def run_cli(args: argparse.Namespace) -> None:
    folder = Path(args.tmp or tempfile.gettempdir()) / "cftune-scale-logs"
    folder.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "scale.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    cli: dict[str, Any] = dict(old.get("cli", {}))
    for shape in args.cli:
        data, facts = planted_log(shape, folder, args.seed)
        for model in args.models:
            key = f"{shape}-{model}-{args.trials}"
            if args.valid_sample is not None:
                key += "-all-users" if args.valid_sample == "all" else f"-sample-{args.valid_sample}"
            print(f"[{key}] {facts}", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix=f"cftune-cli-{key}-", dir=args.tmp) as tmp:
                result = cli_study(data, Path(tmp) / "home", model, args.trials, args.valid_sample)
            result["log"] = {"shape": shape, **facts}
            cli[key] = result
            print(
                f"[{key}] {result['seconds']} s, peak {result['peak_rss_gib']} GiB",
                file=sys.stderr,
                flush=True,
            )
            write_result(
                "scale", {**{k: v for k, v in old.items() if k != "machine"}, "cli": cli}, echo=False
            )


# ---------------------------------------------------------------------------------------------- CLI
def _child(args: argparse.Namespace) -> None:
    shape = SHAPES[args.child]
    with tempfile.TemporaryDirectory(prefix=f"cftune-scale-{shape.name}-", dir=args.tmp) as tmp:
        result = run_shape(shape, Path(tmp), bpr_epochs=args.bpr_epochs, seed=args.seed, e2e=args.child_e2e)
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["1m", "10m"])
    p.add_argument("--bpr-epochs", type=int, default=10, help="a modest BPR trial (the space has 10-80)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="where the synthetic logs go (default: the system temp)")
    p.add_argument(
        "--e2e",
        nargs="*",
        choices=sorted(SHAPES),
        default=["1m"],
        help="shapes on which `python -m search.run ... --trials 1` also runs end to end, in its own process",
    )
    p.add_argument("--child", choices=sorted(SHAPES), default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-e2e", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--cli", nargs="+", choices=sorted(CLI_SHAPES), help="run the typed search.run on these shapes"
    )
    p.add_argument("--models", nargs="+", choices=["als", "bpr"], default=["als", "bpr"], help="with --cli")
    p.add_argument("--trials", type=int, default=20, help="with --cli")
    p.add_argument("--valid-sample", default=None, help="with --cli: $CFTUNE_VALID_SAMPLE for the studies")
    args = p.parse_args()
    if args.cli:
        run_cli(args)
        return
    if args.child:
        _child(args)
        return
    previous = RESULTS / "scale.json"
    shapes: dict[str, Any] = {}
    if previous.is_file():
        shapes = dict(json.loads(previous.read_text()).get("shapes", {}))
    for name in args.shapes:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            out = Path(fh.name)
        cmd = [sys.executable, __file__, "--child", name, "--result", str(out)]
        cmd += ["--bpr-epochs", str(args.bpr_epochs), "--seed", str(args.seed)]
        if args.tmp:
            cmd += ["--tmp", args.tmp]
        if name in args.e2e:
            cmd.append("--child-e2e")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False)
        if proc.returncode == 0:
            shapes[name] = json.loads(out.read_text())
        else:
            shapes[name] = {"error": f"the {name} run exited with {proc.returncode}"}
        shapes[name]["process_wall_seconds"] = round(time.perf_counter() - t0, 1)
        out.unlink(missing_ok=True)
    write_result(
        "scale",
        {
            "claim": "the 10M run's ALS trial + evaluation + refit + registration complete on this machine, "
            f"and no phase peaks above {PHASE_LIMIT_GIB:g} GiB RSS",
            "note": "peak RSS is the whole process's during the phase (what it holds from earlier phases "
            "included); wall seconds were measured while other jobs shared the machine's cores, so they are "
            "inflated. The synthetic logs have popularity and activity structure but no user tastes: their "
            "quality numbers (ALS below popularity) mean nothing, only time and memory do. BPR ran "
            "--bpr-epochs epochs (default 10, the space spans 10-80).",
            "shapes": shapes,
        },
    )


if __name__ == "__main__":
    main()
