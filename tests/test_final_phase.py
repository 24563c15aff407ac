"""The final phase (refit, test, log, register, aliases, record) is a transaction that can be resumed: a kill
or a Ctrl-C at any of its steps leaves a state the same command completes exactly once, with one version, the
champion alias on it, no run left RUNNING and no final run FINISHED without a version.

Kill points are injected by replacing the function each step calls with one that kills the process (SIGKILL)
or raises KeyboardInterrupt (Ctrl-C); nothing waits on time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import search.finalize
from reports.sources import load_results
from search.run import run_study
from search.settings import StudySettings

ROOT = Path(__file__).resolve().parents[1]
MODEL = "als-recommender"
GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 2, alpha: 1.0}
grid:
  factors: [8]
  regularization: [0.01, 1.0]
"""
#: step -> (module, attribute) the step calls, in the order the final phase runs them
STEPS = {
    "refit": ("search.finalize", "final_test"),
    "references": ("search.finalize", "compute_references"),
    "log-model": ("mlflow.pyfunc", "log_model"),
    "register": ("mlflow", "register_model"),
    "aliases": ("search.registry", "settle"),
    "record": ("search.record", "StudyRecord.parent_metrics"),
}
DRIVER = textwrap.dedent(
    """
    import importlib, os, signal, sys
    step_module, attribute, how = sys.argv[1], sys.argv[2], sys.argv[3]
    owner = importlib.import_module(step_module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    def stop(*args, **kwargs):
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise KeyboardInterrupt
    setattr(owner, name, stop)
    from search.run import main
    sys.exit(main(sys.argv[4:]))
    """
)


def settings(tmp: Path) -> StudySettings:
    space = tmp / "grid.yaml"
    space.write_text(GRID)
    return StudySettings(
        model="als",
        space=str(space),
        storage=f"sqlite:///{tmp}/optuna.db",
        tracking_uri=f"sqlite:///{tmp}/mlflow.db",
        study_name="final-phase",
        quiet=True,
        report=False,
    )


def interrupted_run(tmp: Path, step: str, how: str) -> subprocess.CompletedProcess[str]:
    s = settings(tmp)
    module, attribute = STEPS[step]
    argv = ["--model", "als", "--space", str(s.space), "--storage", s.storage_url]
    argv += ["--tracking-uri", str(s.tracking_uri), "--study-name", "final-phase", "--no-report", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", DRIVER, module, attribute, how, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def state(tmp: Path) -> dict[str, Any]:
    """What the stores hold: versions, the champion alias, and run states by kind."""
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    models = {m.name for m in client.search_registered_models()}
    versions = list(client.search_model_versions(f"name = '{MODEL}'")) if MODEL in models else []
    champion = None
    if versions:
        try:
            champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
        except MlflowException:  # no champion alias
            champion = None
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    by_kind: dict[str, list[str]] = {}
    for run in runs:
        by_kind.setdefault(run.data.tags.get("kind", "?"), []).append(run.info.status)
    registered_runs = {v.run_id for v in versions}
    finished_without_version = [
        r.info.run_id
        for r in runs
        if r.data.tags.get("kind") == "final"
        and r.info.status == "FINISHED"
        and r.info.run_id not in registered_runs
    ]
    return {
        "versions": len(versions),
        "champion": champion,
        "runs": {k: sorted(v) for k, v in by_kind.items()},
        "finished_without_version": finished_without_version,
    }


def assert_complete(tmp: Path, label: str, before: dict[str, Any]) -> None:
    after = state(tmp)
    print(f"\n{label}\n  after the stop: {before}\n  after one re-run: {after}")  # pytest -s: the evidence
    assert after["versions"] == 1 and after["champion"] == "1", after
    assert after["runs"]["study"] == ["FINISHED"], after
    assert "RUNNING" not in after["runs"]["final"] and after["runs"]["final"].count("FINISHED") == 1, after
    assert after["finished_without_version"] == [], after
    assert all(status != "RUNNING" for statuses in after["runs"].values() for status in statuses), after


@pytest.mark.parametrize("step", list(STEPS))
def test_a_kill_at_any_step_of_the_final_phase_is_completed_exactly_once(tmp_path: Path, step: str) -> None:
    killed = interrupted_run(tmp_path, step, "kill")
    assert killed.returncode == -9, killed.stderr[-2000:]
    before = state(tmp_path)
    assert before["versions"] <= 1
    assert before["runs"]["trial"] and "RUNNING" not in before["runs"]["trial"]  # every trial was done
    record = run_study(settings(tmp_path))
    assert record.registry is not None and record.registry.version == "1"
    assert record.registry.decision == "champion" and record.test is not None
    assert_complete(tmp_path, f"kill -9 at {step}", before)


@pytest.mark.parametrize("step", ["refit", "register", "record"])
def test_ctrl_c_in_the_final_phase_says_so_and_closes_the_runs(tmp_path: Path, step: str) -> None:
    stopped = interrupted_run(tmp_path, step, "ctrl-c")
    assert stopped.returncode == 130
    assert "interrupted during the final phase" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    before = state(tmp_path)
    assert before["runs"]["study"] == ["KILLED"]  # not left RUNNING
    assert "RUNNING" not in before["runs"].get("final", [])
    assert before["finished_without_version"] == []
    run_study(settings(tmp_path))
    assert_complete(tmp_path, f"Ctrl-C at {step}", before)


def test_a_finished_study_is_not_refit_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_study(settings(tmp_path))
    before = state(tmp_path)

    def no_refit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished study was refit")

    monkeypatch.setattr(search.finalize, "final_test", no_refit)
    again = run_study(settings(tmp_path))
    assert again.test == first.test and again.vs == first.vs and again.final_params == first.final_params
    assert again.registry is not None and again.registry.version == "1"
    assert_complete(tmp_path, "re-run of a finished study", before)


def test_a_final_run_an_older_cftune_left_finished_without_a_version_is_closed_failed(tmp_path: Path) -> None:
    run_study(settings(tmp_path))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    final = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.kind = 'final'")[
        0
    ]
    orphan = client.create_run(final.info.experiment_id, tags={**final.data.tags})  # no version from it
    client.set_terminated(orphan.info.run_id, "FINISHED")
    before = state(tmp_path)
    run_study(settings(tmp_path))
    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    assert_complete(tmp_path, "orphan final run FINISHED without a version", before)


def test_a_reports_decision_is_read_from_the_registry_not_frozen_in_the_record(tmp_path: Path) -> None:
    """A finished study's record says "champion"; once a later study took the alias, its report says so."""
    record = run_study(settings(tmp_path))
    assert record.registry is not None and record.registry.decision == "champion"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    client.set_model_version_tag(MODEL, "1", "decision", "challenger")  # what a later settle writes
    client.set_model_version_tag(MODEL, "1", "decision_reason", "a later study's version is better")
    client.delete_registered_model_alias(MODEL, "champion")
    read = load_results(record, settings(tmp_path).storage_url).record.registry
    assert read is not None and read.decision == "challenger"
    assert read.reason == "a later study's version is better" and read.champion_version is None
