"""Shared bits of the benchmarks: where results go, machine facts, timing, a study on throwaway stores."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
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
    from core.train import DataOptions
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
