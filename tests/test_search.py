"""A study end to end on the synthetic data: Optuna trials, MLflow runs, the registry gate, resuming after
Ctrl-C and kill -9, and the champion served from a fresh process."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from core.errors import ConfigError
from search.registry import gate
from search.run import StudySettings, main, run_study
from search.tracking import TrackingUnavailable

ROOT = Path(__file__).resolve().parents[1]
TINY_GRID = """\
model: als
fixed: {{confidence: rating_quality, iterations: {iterations}}}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
  alpha: [1.0, 5.0]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Studies write ``mlruns/`` relative to the working directory: keep each test's in its own folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings(workdir: Path, **kw: Any) -> StudySettings:
    base: dict[str, Any] = {
        "model": "als",
        "dataset": "synthetic",
        "storage": f"sqlite:///{workdir}/optuna.db",
        "tracking_uri": f"sqlite:///{workdir}/mlflow.db",
        "quiet": True,
        "report": False,
    }
    base.update(kw)
    return StudySettings(**base)


def tiny_space(workdir: Path, iterations: int = 6) -> str:
    path = workdir / "tiny.yaml"
    path.write_text(TINY_GRID.format(iterations=iterations))
    return str(path)


def runs_of(client: MlflowClient, kind: str) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.kind = '{kind}'", max_results=1000)


def test_a_grid_study_tracks_every_trial_and_registers_a_champion(workdir: Path) -> None:
    s = settings(workdir, space=tiny_space(workdir), pruner="median")
    summary = run_study(s)
    study = optuna.load_study(study_name=summary["study_name"], storage=s.storage)
    states = [t.state for t in study.trials]
    assert len(states) == 8 and all(st.is_finished() for st in states)

    client = MlflowClient(tracking_uri=s.tracking_uri)
    parent = runs_of(client, "study")
    trials = runs_of(client, "trial")
    assert len(parent) == 1 and len(trials) == 8
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent[0].info.run_id}
    by_state = {r.data.tags["optuna.state"]: r for r in trials}
    done = by_state["COMPLETE"]
    assert done.info.status == "FINISHED"
    assert {"factors", "regularization", "alpha", "iterations", "confidence"} <= set(done.data.params)
    assert {"valid_ndcg_at_10", "score_range_p01", "score_range_p99", "fit_seconds"} <= set(done.data.metrics)
    for tag in ("study_name", "trial_number", "data_version_hash", "git_commit", "sampler", "pruner"):
        assert tag in done.data.tags
    history = client.get_metric_history(done.info.run_id, "valid_ndcg_at_10")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4, 5, 6]  # per iteration, plus the final value
    artifacts = {a.path for a in client.list_artifacts(done.info.run_id, "run")}
    assert {
        "run/als_U.npy",
        "run/als_V.npy",
        "run/params.json",
        "run/metrics.json",
        "run/metadata.json",
    } <= artifacts
    if "PRUNED" in by_state:  # pruned trials are visible as such, never as successes
        assert by_state["PRUNED"].info.status == "KILLED"

    reg = summary["registry"]
    assert (reg["name"], reg["version"], reg["alias"]) == ("als-recommender", "1", "champion")
    version = client.get_model_version_by_alias("als-recommender", "champion")
    assert version.tags["data_version_hash"] == summary["data_version_hash"]
    assert float(version.tags["valid_ndcg_at_10"]) == pytest.approx(summary["best_trial"]["valid"]["ndcg@10"])
    assert summary["test"]["ndcg@10"] > summary["baselines"]["popularity"]["test"]["ndcg@10"]
    assert (
        summary["vs"]["ease"]["ndcg@10"]["difference"]["low"]
        <= summary["vs"]["ease"]["ndcg@10"]["difference"]["high"]
    )

    # the same command again: nothing re-run, nothing registered twice
    again = run_study(s)
    assert len(optuna.load_study(study_name=summary["study_name"], storage=s.storage).trials) == 8
    assert again["registry"]["version"] == "1"

    # the champion serves from a fresh process, original ids out
    code = textwrap.dedent(
        """
        import mlflow, pandas as pd, sys
        model = mlflow.pyfunc.load_model("models:/als-recommender@champion")
        out = model.predict(pd.DataFrame({"user_id": ["U0002", "nobody"], "k": [5, 3]}))
        known = out[out.user_id == "U0002"]
        assert len(known) == 5 and not known.cold_start.any(), out
        assert out[out.user_id == "nobody"].cold_start.all()
        assert known["rank"].tolist() == [1, 2, 3, 4, 5]
        print("served", len(out))
        """
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": s.tracking_uri}  # type: ignore[dict-item]
    done_proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done_proc.returncode == 0, done_proc.stderr[-3000:]
    assert "served 8" in done_proc.stdout


def test_a_weaker_candidate_becomes_challenger() -> None:
    champion = SimpleNamespace(version="1", tags={"data_version_hash": "h", "valid_ndcg_at_10": "0.3"})

    class Client:
        def get_model_version_by_alias(self, name: str, alias: str) -> Any:
            return champion

    assert gate(Client(), "m", "2", 0.25, "h")[:1] == ("challenger",)
    alias, reason, value, version = gate(Client(), "m", "2", 0.35, "h")
    assert (alias, value, version) == ("champion", 0.3, "1") and "beats champion v1" in reason
    alias, reason, _, _ = gate(Client(), "m", "2", 0.1, "other-data")
    assert alias == "champion" and "other data" in reason


def test_an_unreachable_tracking_store_fails_before_training(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.perf_counter()
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        run_study(settings(workdir, tracking_uri="http://127.0.0.1:9", trials=2, sampler="tpe"))
    assert time.perf_counter() - t0 < 30
    assert not (workdir / "optuna.db").exists()  # no study was even created
    code = main(
        ["--model", "als", "--tracking-uri", "http://127.0.0.1:9", "--storage", f"sqlite:///{workdir}/o.db"]
    )
    assert code == 2 and "unreachable" in capsys.readouterr().err


def test_bad_study_arguments_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--storage", f"sqlite:///{workdir}/o.db", "--tracking-uri", f"sqlite:///{workdir}/m.db"]
    assert main(["--model", "als", "--dataset", "nope", *common]) == 2
    assert "unknown --dataset 'nope'" in capsys.readouterr().err
    assert main(["--model", "als", "--metric", "auc", *common]) == 2
    assert "metric must look like ndcg@10" in capsys.readouterr().err


def _cli(workdir: Path, space: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "search.run",
        "--model",
        "als",
        "--space",
        space,
        "--pruner",
        "none",
        "--no-register",
        "--quiet",
        "--storage",
        f"sqlite:///{workdir}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{workdir}/mlflow.db",
        "--grace-period",
        "2",
        *extra,
    ]


def _wait_for(study_name: str, storage: str, complete: int, timeout: float = 120) -> None:
    """Until ``complete`` trials are done and another has been running a while: mid-trial, not between."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).trials
        except KeyError:
            trials = []
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        now = datetime.datetime.now()  # Optuna stores naive local times
        running = [
            t
            for t in trials
            if t.state == optuna.trial.TrialState.RUNNING
            and t.datetime_start is not None
            and (now - t.datetime_start).total_seconds() > 0.3
        ]
        if done >= complete and running:
            return
        time.sleep(0.05)
    raise AssertionError(f"the study never reached {complete} complete trials with one running")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_study_resumes_without_losing_or_skipping_points(
    workdir: Path, sig: signal.Signals
) -> None:
    space = tiny_space(workdir, iterations=120)  # slow enough trials to be caught in the middle of one
    storage = f"sqlite:///{workdir}/optuna.db"
    name = "resume-test"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_cli(workdir, space, "--study-name", name), cwd=workdir, env=env)
    try:
        _wait_for(name, storage, complete=2)
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
    before = optuna.load_study(study_name=name, storage=storage).trials
    completed_before = {t.number: t.params for t in before if t.state == optuna.trial.TrialState.COMPLETE}
    interrupted = [t for t in before if t.state != optuna.trial.TrialState.COMPLETE]
    assert len(completed_before) >= 2 and interrupted
    if sig == signal.SIGINT:
        assert rc == 130
        assert all(t.state == optuna.trial.TrialState.FAIL for t in interrupted)  # marked at once
    else:
        time.sleep(3)  # past the heartbeat grace period: the dead worker's trial is stale
    rerun = subprocess.run(_cli(workdir, space, "--study-name", name), cwd=workdir, env=env, timeout=300)
    assert rerun.returncode == 0
    after = optuna.load_study(study_name=name, storage=storage).trials
    for number, params in completed_before.items():  # no completed trial lost or changed
        assert after[number].state == optuna.trial.TrialState.COMPLETE and after[number].params == params
    done_points = {t.system_attrs["grid_id"] for t in after if t.state == optuna.trial.TrialState.COMPLETE}
    assert done_points == set(range(8))  # every grid point finished, the interrupted one included
    completes = [t for t in after if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completes) == 8  # and none twice
    assert any(t.user_attrs.get("retry_of") is not None for t in after) or sig == signal.SIGKILL


def test_resuming_with_another_metric_is_refused(workdir: Path) -> None:
    space = tiny_space(workdir, iterations=2)
    run_study(settings(workdir, space=space, study_name="fixed-name", register=False))
    with pytest.raises(ConfigError, match="another metric, space, seed or sampler"):
        run_study(settings(workdir, space=space, study_name="fixed-name", metric="recall@20", register=False))


def test_a_metric_at_any_k_is_computed_and_diverged_points_are_not_rerun(workdir: Path) -> None:
    space = workdir / "bpr.yaml"
    space.write_text(
        "model: bpr\nfixed: {epochs: 3, factors: 8, hard_ratio: 0.0}\n"
        "grid:\n  learning_rate: [0.05, 1.0e+6]\n  regularization: [0.0001]\n"
    )
    s = settings(workdir, model="bpr", space=str(space), metric="ndcg@5", register=False, eval_every=1)
    summary = run_study(s)
    assert summary["trials"] == {"complete": 1, "fail": 1}  # lr 1e6 diverges, named, and the study goes on
    assert summary["best_trial"]["value"] == pytest.approx(summary["best_trial"]["valid"]["ndcg@5"])
    study = optuna.load_study(study_name=summary["study_name"], storage=s.storage)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert (
        failed[0].user_attrs["failure"] == "diverged" and "diverged at epoch" in failed[0].user_attrs["error"]
    )
    run_study(s)  # again: nothing left to run, the diverged point included
    assert len(optuna.load_study(study_name=summary["study_name"], storage=s.storage).trials) == 2
