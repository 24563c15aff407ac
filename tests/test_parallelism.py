"""Local workers by default: one worker on all cores, except BPR on a large log (where the step budget
applies): one single-threaded worker per core, as many as memory holds. Rules: search.parallelism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from core.prepare import DataOptions
from search import run, step_budget
from search.parallelism import HELPER_FOOTPRINT, MEMORY_SHARE, default_workers
from search.settings import StudySettings
from search.step_budget import REFERENCE_LIKED, liked_interactions

GIB = 2**30
LARGE = 10 * REFERENCE_LIKED
AMPLE = {"cores": 4, "resident": GIB, "available": 64 * GIB}


def test_one_worker_but_for_the_kernels_bpr_on_a_large_log() -> None:
    assert default_workers("als", {}, LARGE, 60, **AMPLE) == 1
    assert default_workers("bpr", {}, REFERENCE_LIKED, 60, **AMPLE) == 1  # small data: as before
    assert default_workers("bpr", {"trainer": "torch"}, LARGE, 60, **AMPLE) == 1
    assert default_workers("bpr", {}, LARGE, 60, **AMPLE) == 4  # one per core


def test_no_more_workers_than_trials_or_than_memory_holds() -> None:
    assert default_workers("bpr", {}, LARGE, 1, **AMPLE) == 1
    assert default_workers("bpr", {}, LARGE, 3, **AMPLE) == 3
    # each helper needs HELPER_FOOTPRINT resident sizes out of MEMORY_SHARE of what is available
    room = int(MEMORY_SHARE * 8 * GIB // (HELPER_FOOTPRINT * GIB))
    assert default_workers("bpr", {}, LARGE, 60, cores=16, resident=GIB, available=8 * GIB) == 1 + room
    assert default_workers("bpr", {}, LARGE, 60, cores=16, resident=8 * GIB, available=8 * GIB) == 1


def _settings(tmp_path: Path, **kw: Any) -> StudySettings:
    fields: dict[str, Any] = {
        "model": "bpr",
        "sampler": "tpe",
        "trials": 2,
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
        "register": False,
        "report": False,
        "pruner": "none",
    }
    return StudySettings(**{**fields, **kw})


def _started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records (helpers asked for, their threads) instead of starting processes."""
    calls: list[tuple[int, int]] = []

    def fake(settings: StudySettings, study_name: str, count: int) -> list[Any]:
        calls.append((count, settings.trial_threads))
        return []

    monkeypatch.setattr(run, "start_helpers", fake)
    return calls


def test_a_study_on_a_large_log_starts_a_helper_per_core_with_one_thread_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference lowered below the embedded data's size stands for a large log."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(step_budget, "REFERENCE_LIKED", liked_interactions(DataOptions().prepare()) // 4)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    calls = _started(monkeypatch)
    s = _settings(tmp_path, study_name="large")
    run.run_study(s)
    assert s.workers == 2 and s.trial_threads == 1
    assert calls == [(1, 1)]  # one helper beside this worker, on one thread
    assert "workers: 2 on this machine, one thread each" in capsys.readouterr().out
    trials = optuna.load_study(study_name="large", storage=s.storage_url).trials
    assert len(trials) == 2  # the helper never ran: this worker ran the budget


def test_small_data_and_an_explicit_count_keep_one_worker_on_all_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    calls = _started(monkeypatch)
    small = _settings(tmp_path, study_name="small")
    run.run_study(small)
    assert small.workers == 1 and small.trial_threads == 2
    monkeypatch.setattr(step_budget, "REFERENCE_LIKED", liked_interactions(DataOptions().prepare()) // 4)
    asked = _settings(tmp_path, study_name="asked", workers=1)
    run.run_study(asked)
    assert asked.workers == 1 and asked.trial_threads == 2
    assert calls == []
    assert "workers:" not in capsys.readouterr().out
