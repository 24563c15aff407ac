"""Every storage fault is one line naming the store and the cause, and leaves nothing half-written.

Read-only and full disks are real (a small tmpfs) where this machine lets the test mount one, and injected in
the process otherwise (:mod:`tests.faulty_disk`); both variants run where they can. After each fault the same
command, once the disk is healed, completes the study: one version, the champion alias on it, no run left
RUNNING. Artifacts follow the tracking store, and the EASE cache the Optuna storage."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from core.errors import StoreFault
from core.faults import fault_cause
from core.home import PROJECT_ROOT
from core.train import main as train_main
from search.factories import make_storage
from search.run import main, run_study
from search.settings import StudySettings
from search.tracking import Tracker, TrackingUnavailable
from tests.faulty_disk import KINDS, faulty_folder

GRID = "model: als\nfixed: {iterations: 2}\ngrid:\n  factors: [4, 8]\n"


def settings(tmp: Path, stores: Path, **kw: Any) -> StudySettings:
    space = tmp / "grid.yaml"
    space.write_text(GRID)
    return StudySettings(
        model="als",
        space=str(space),
        storage=f"sqlite:///{stores}/optuna.db",
        tracking_uri=f"sqlite:///{stores}/mlflow.db",
        study_name="faults",
        quiet=True,
        report=False,
        **kw,
    )


def state(stores: Path) -> dict[str, Any]:
    client = MlflowClient(tracking_uri=f"sqlite:///{stores}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    by_kind: dict[str, list[str]] = {}
    for run in runs:
        by_kind.setdefault(run.data.tags.get("kind", "?"), []).append(run.info.status)
    versions = client.search_model_versions("name = 'als-recommender'")
    trials = sqlite3.connect(stores / "optuna.db").execute("select state from trials").fetchall()
    return {
        "runs": {k: sorted(v) for k, v in by_kind.items()},
        "versions": len(versions),
        "trials": sorted(t for (t,) in trials),
    }


def assert_completed(stores: Path) -> None:
    after = state(stores)
    assert after["versions"] == 1 and after["runs"]["study"] == ["FINISHED"], after
    assert all("RUNNING" not in statuses for statuses in after["runs"].values()), after
    assert "RUNNING" not in after["trials"] and after["trials"].count("COMPLETE") == 2, after


@pytest.mark.parametrize("kind", KINDS)
def test_a_read_only_artifact_store_is_one_line_and_the_rerun_completes(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = tmp_path / "stores"
    with faulty_folder(stores / "artifacts", kind, monkeypatch) as artifacts:
        artifacts.read_only()
        with pytest.raises(StoreFault) as fault:
            run_study(settings(tmp_path, stores))
        message = str(fault.value)
        assert message.startswith(f"MLflow artifact store {stores / 'artifacts'}: read-only file system")
        assert "\n" not in message
        artifacts.heal()
        before = state(stores)
        assert before["versions"] == 0 and "RUNNING" not in before["runs"]["study"], before
        run_study(settings(tmp_path, stores))
        assert_completed(stores)


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_disk_under_both_stores_is_one_line_and_the_rerun_completes(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with faulty_folder(tmp_path / "stores", kind, monkeypatch) as stores:
        first = settings(tmp_path, stores.path)
        Tracker(first.tracking_uri)  # both stores exist; then the disk fills
        make_storage(first.storage_url, first.grace_period)
        stores.full()
        with pytest.raises(StoreFault, match="no space left on device") as fault:
            run_study(first)
        assert "\n" not in str(fault.value) and "exceeding max length" not in str(fault.value)
        assert str(fault.value).startswith(("Optuna storage", "MLflow", "cannot open the Optuna storage"))
        stores.heal()
        run_study(settings(tmp_path, stores.path))  # freed space: the same command finishes the study
        assert_completed(stores.path)


def test_the_command_line_says_a_fault_in_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings(tmp_path, tmp_path / "stores")
    argv = ["--model", "als", "--space", str(s.space), "--storage", s.storage_url, "--study-name", "faults"]
    argv += ["--tracking-uri", str(s.tracking_uri), "--quiet", "--no-report"]
    with faulty_folder(tmp_path / "stores" / "artifacts", "shim", monkeypatch) as artifacts:
        artifacts.read_only()
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MLflow artifact store") and err.count("\n") == 0, err


@pytest.mark.parametrize("kind", KINDS)
def test_core_train_into_a_read_only_folder_fails_before_training(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with faulty_folder(tmp_path / "out", kind, monkeypatch) as out:
        out.read_only()
        assert train_main(["--model", "als", "--out", str(out.path / "run"), "--no-progress"]) == 2
        captured = capsys.readouterr()
        assert f"error: output folder {out.path}: read-only file system" in captured.err
        assert "nothing was saved" in captured.err and "ALS" not in captured.err  # before any training
        assert list(out.path.iterdir()) == []


def test_a_database_of_another_optuna_version_is_named(tmp_path: Path) -> None:
    s = settings(tmp_path, tmp_path / "stores")
    make_storage(s.storage_url, s.grace_period)
    with sqlite3.connect(tmp_path / "stores" / "optuna.db") as db:
        db.execute("update version_info set schema_version = 99, library_version = '9.9.0'")
        db.execute("update alembic_version set version_num = 'v9.9.0.z'")
    with pytest.raises(StoreFault, match="its schema belongs to another Optuna version") as fault:
        run_study(s)
    assert "optuna.db" in str(fault.value) and "\n" not in str(fault.value)


def test_a_database_of_another_mlflow_version_is_named(tmp_path: Path) -> None:
    s = settings(tmp_path, tmp_path / "stores")
    # made by another process: MLflow checks a store's schema once per process
    made = f"from search.tracking import Tracker; Tracker({s.tracking_uri!r})"
    subprocess.run([sys.executable, "-c", made], check=True, cwd=PROJECT_ROOT, capture_output=True)
    with sqlite3.connect(tmp_path / "stores" / "mlflow.db") as db:
        db.execute("update alembic_version set version_num = '0badc0ffee00'")
    with pytest.raises(TrackingUnavailable, match="its schema belongs to another MLflow version") as fault:
        run_study(s)
    assert "mlflow.db" in str(fault.value) and "\n" not in str(fault.value)


def test_an_unreachable_database_server_is_named_without_its_password(tmp_path: Path) -> None:
    s = settings(tmp_path, tmp_path / "stores")
    s.storage = "postgresql://cftune:secret@127.0.0.1:1/studies"
    with pytest.raises(StoreFault, match="unreachable") as fault:
        run_study(s)
    assert "secret" not in str(fault.value) and "127.0.0.1:1" in str(fault.value)


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (OSError(30, "Read-only file system", "/x/y"), "read-only file system (/x/y)"),
        (OSError(28, "No space left on device"), "no space left on device"),
        (RuntimeError("(sqlite3.OperationalError) database or disk is full"), "no space left on device"),
        (RuntimeError("attempt to write a readonly database"), "read-only file system"),
        (ValueError("a bug, not a store"), None),
        (FileNotFoundError(2, "No such file or directory", "/x"), None),
    ],
)
def test_the_cause_is_read_down_the_chain(exc: Exception, cause: str | None) -> None:
    wrapped = RuntimeError("An exception is raised during the commit, e.g. exceeding max length.")
    wrapped.__cause__ = exc
    assert fault_cause(exc) == cause and fault_cause(wrapped) == cause


def test_artifacts_follow_the_tracking_store_and_the_ease_cache_the_optuna_storage(
    tmp_path: Path, cftune_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(GRID)
    s = StudySettings(
        model="als",
        space=str(space),
        storage=f"sqlite:///{tmp_path}/optuna-here/optuna.db",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow-there/mlflow.db",
        report=False,
    )
    run_study(s)
    client = MlflowClient(tracking_uri=s.tracking_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("als-")]
    location = experiment.artifact_location
    assert location == (tmp_path / "mlflow-there" / "artifacts" / experiment.name).as_uri()
    assert any((tmp_path / "mlflow-there" / "artifacts").rglob("MLmodel"))
    assert any((tmp_path / "optuna-here" / "baselines").iterdir())
    assert not (cftune_home / "artifacts").exists() and not (cftune_home / "baselines").exists()
    assert f"artifacts: {location}" in capsys.readouterr().out


def test_artifacts_go_where_the_user_asks(tmp_path: Path) -> None:
    s = settings(tmp_path, tmp_path / "stores", artifact_root=str(tmp_path / "my artifacts"))
    run_study(s)
    assert any((tmp_path / "my artifacts").rglob("MLmodel"))
    assert not (tmp_path / "stores" / "artifacts").exists()
