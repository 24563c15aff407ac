"""Shared bits of the benchmarks: where results go, machine facts, timing, a study on throwaway stores."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from core.artifacts import atomic_write_json

if TYPE_CHECKING:
    from search.record import StudyRecord

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_result(name: str, result: dict[str, object], *, echo: bool = True) -> Path:
    """``bench/results/<name>.json`` with the machine's facts; ``echo`` prints the result too."""
    path = atomic_write_json(RESULTS / f"{name}.json", {"machine": machine(), **result})
    if echo:
        print(json.dumps(result, indent=2))
    print(f"written: {path}")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    """What :func:`write_result` wrote under ``name`` (without the machine), or None if nothing yet."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    out: dict[str, Any] = json.loads(path.read_text())
    out.pop("machine", None)
    return out


@contextlib.contextmanager
def cftune_home(root: Path) -> Iterator[Path]:
    """``$CFTUNE_HOME`` at ``root`` for the block: a study's reference cache, artifacts and registry stay out
    of the project's ``mlruns/``."""
    old = os.environ.get("CFTUNE_HOME")
    os.environ["CFTUNE_HOME"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("CFTUNE_HOME", None)
        else:
            os.environ["CFTUNE_HOME"] = old


def study_on(
    root: Path,
    *,
    model: str = "als",
    sampler: str | None = None,
    trials: int | None = None,
    dataset: str | None = None,
    data: str | None = None,
    **options: Any,
) -> tuple[StudyRecord, float]:
    """A quiet study (registered, no report) on stores under ``root``: its record and wall seconds.
    ``dataset`` names a shared dataset, ``data`` a file; neither: the embedded synthetic set. ``options``:
    any other :class:`search.settings.StudySettings` field (``pruner``, ``register``, ...)."""
    from core.prepare import DataOptions
    from search.run import run_study
    from search.settings import StudySettings

    t0 = time.perf_counter()
    record = run_study(
        StudySettings(
            model=model,
            data=DataOptions(data=data),
            dataset=dataset,
            sampler=sampler,
            trials=trials,
            storage=f"sqlite:///{root}/optuna.db",
            tracking_uri=f"sqlite:///{root}/mlflow.db",
            **{"quiet": True, "report": False, **options},
        )
    )
    return record, round(time.perf_counter() - t0, 2)


def add_dataset_arguments(p: argparse.ArgumentParser, datasets: Sequence[str], name: str) -> None:
    """The options of a per-dataset quality bench: its study budget, its datasets, --resume/--table/--name."""
    p.add_argument("--trials", type=int, default=60, help="budget of each TPE study")
    p.add_argument("--datasets", default=",".join(datasets), help=f"comma-separated subset of {datasets}")
    p.add_argument("--resume", action="store_true", help="skip datasets already in the results file")
    p.add_argument("--table", action="store_true", help="print the Markdown table of the results and exit")
    p.add_argument("--name", default=name, help="results file bench/results/NAME.json (e.g. for a trial run)")


def run_per_dataset(
    args: argparse.Namespace,
    datasets: Sequence[str],
    measure: Callable[[str], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    header: dict[str, Any],
) -> int:
    """Measure each of ``args.datasets`` (skipping those in the results with ``--resume``), writing the JSON
    ``header`` + rows after each, so an interrupted run loses one dataset at most; or, with ``--table``, print
    ``table`` of the results. A results file of another study budget is refused, never mixed. Each write
    re-reads the file and replaces only the dataset just measured, so processes on other datasets can share
    one results file."""
    existing = read_result(args.name) or {}
    if args.table:
        if not existing:
            print(f"no results yet: bench/results/{args.name}.json", file=sys.stderr)
            return 2
        print(table(existing))
        return 0
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in datasets]
    if unknown or args.trials < 1:
        known = tuple(datasets)
        print(f"error: unknown datasets {unknown} (known: {known}) or --trials < 1", file=sys.stderr)
        return 2
    if existing and existing.get("trials") != args.trials:
        print(
            f"error: bench/results/{args.name}.json holds {existing.get('trials')}-trial studies, not "
            f"{args.trials}: use another --name, or remove the file",
            file=sys.stderr,
        )
        return 2
    from search.run import quiet_library_warnings

    quiet_library_warnings()
    rows: dict[str, Any] = dict(existing.get("datasets", {}))
    for name in names:
        if args.resume and name in rows:
            print(f"{name}: in the results already, skipped (--resume)")
            continue
        rows[name] = measure(name)
        # Merged into the file as it is now: another process measuring other datasets into the same file
        # (one per core) keeps its rows.
        rows = {**(read_result(args.name) or {}).get("datasets", {}), name: rows[name]}
        write_result(args.name, {**header, "trials": args.trials, "datasets": rows}, echo=False)
    print(table({**header, "trials": args.trials, "datasets": rows}))
    return 0
