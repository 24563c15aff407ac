"""Many workers, one truth: workers started together, killed mid-trial, re-run at once, sharing a budget, and
studies registering at the same moment. Every wait here is on the storage's state (a trial has reported a
step, a process has exited), never on the clock; deadlines only turn a hang into a failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
GRID = """\
model: als
fixed: {{confidence: rating_quality, iterations: {iterations}}}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
  alpha: [1.0, 5.0]
"""
TPE = """\
model: als
fixed: {confidence: binary, iterations: 2}
tpe:
  factors: {type: int, low: 4, high: 64, log: true}
  regularization: {type: float, low: 0.001, high: 100.0, log: true}
  alpha: {type: float, low: 0.1, high: 20.0, log: true}
"""


def cli(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "search.run",
        "--model",
        "als",
        "--pruner",
        "none",
        "--no-report",
        "--quiet",
        "--storage",
        f"sqlite:///{root}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{root}/mlflow.db",
        *extra,
    ]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def space(root: Path, text: str, **fmt: Any) -> str:
    path = root / "space.yaml"
    path.write_text(text.format(**fmt) if fmt else text)
    return str(path)


def trials_of(root: Path, name: str) -> list[Any]:
    try:
        return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/optuna.db").trials
    except KeyError:
        return []


def wait_until(condition: Callable[[], bool], what: str, procs: list[subprocess.Popen[str]]) -> None:
    """Poll the storage until ``condition``; fail at once if a worker exits first, or after 5 minutes."""
    deadline = time.monotonic() + 300
    while not condition():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise AssertionError(f"a worker exited (rc {dead[0].returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def runs(root: Path, kind: str) -> list[Any]:
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.kind = '{kind}'", max_results=1000)


def two_workers_race(root: Path) -> None:
    """Two workers started together on fresh stores: no crash, one parent run, every point exactly once."""
    grid = space(root, GRID, iterations=2)
    cmd = cli(root, "--space", grid, "--study-name", "race")
    procs = [
        subprocess.Popen([*cmd, "--no-register"], cwd=root, env=env(), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    trials = trials_of(root, "race")
    assert sorted(t.user_attrs["grid_point"] for t in trials) == list(range(8))  # each point once
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["worker"] for t in trials} <= {0, 1}
    parents = runs(root, "study")
    assert len(parents) == 1
    children = runs(root, "trial")
    assert len(children) == 8 and {r.data.tags["mlflow.parentRunId"] for r in children} == {
        parents[0].info.run_id
    }


def test_two_workers_started_together_share_one_study(tmp_path: Path) -> None:
    two_workers_race(tmp_path)


@pytest.mark.slow
def test_the_two_worker_race_twenty_times_in_a_row(tmp_path: Path) -> None:
    for rep in range(20):
        root = tmp_path / f"rep{rep}"
        root.mkdir()
        two_workers_race(root)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_study_resumed_at_once_loses_and_skips_nothing(
    tmp_path: Path, sig: signal.Signals
) -> None:
    grid = space(tmp_path, GRID, iterations=200)  # long trials, so that one is caught in the middle
    cmd = cli(tmp_path, "--space", grid, "--study-name", "resume", "--no-register")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), text=True)
    try:
        # the event: two trials complete and a third has reported a validation step
        def mid_trial() -> bool:
            ts = trials_of(tmp_path, "resume")
            done = sum(t.state == TrialState.COMPLETE for t in ts)
            return done >= 2 and any(t.state == TrialState.RUNNING and t.intermediate_values for t in ts)

        wait_until(mid_trial, "a trial mid-way", [proc])
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    finally:
        proc.kill()
    before = trials_of(tmp_path, "resume")
    completed = {t.number: t.params for t in before if t.state == TrialState.COMPLETE}
    (cut,) = [t for t in before if t.state in (TrialState.RUNNING, TrialState.FAIL)]
    if sig == signal.SIGINT:
        assert rc == 130
        assert cut.state == TrialState.FAIL and cut.user_attrs["failure"] == "interrupted"  # marked at once
    else:
        assert cut.state == TrialState.RUNNING  # nobody could mark it: the process was killed
    # re-run at once: no grace period to wait out, the dead worker's lease says it is dead
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env(), timeout=600, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = trials_of(tmp_path, "resume")
    for number, params in completed.items():  # no completed trial lost or changed
        assert after[number].state == TrialState.COMPLETE and after[number].params == params
    assert after[cut.number].state == TrialState.FAIL
    expected = "interrupted" if sig == signal.SIGINT else "worker died"
    assert after[cut.number].user_attrs["failure"] == expected
    done = [t.user_attrs["grid_point"] for t in after if t.state == TrialState.COMPLETE]
    assert sorted(done) == list(range(8))  # every point finished once, the interrupted one included
    assert [t.user_attrs.get("retry_of") for t in after if t.user_attrs.get("retry_of") is not None] == [
        cut.number
    ]
    cut_run = [r for r in runs(tmp_path, "trial") if r.data.tags["trial_number"] == str(cut.number)]
    assert cut_run[0].info.status == "FAILED" and cut_run[0].data.tags["optuna.state"] == "FAIL"


def test_a_trial_asked_but_not_yet_sampled_counts_against_the_budget() -> None:
    """A TPE worker samples its trial's parameters after leaving the lock: until then the trial has none,
    and a second worker reading the study must still count it, or both claim the last trial of the budget."""
    from search.budget import Ledger

    study = optuna.create_study(direction="maximize")
    for x in (0.1, 0.2):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)}, value=x
            )
        )
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))  # failed before sampling: not re-run
    study.ask()  # claimed, not sampled yet
    ledger = Ledger.of(study.get_trials(deepcopy=False), max_attempts=3)
    assert (ledger.claimed, ledger.running, ledger.requeue) == (3, 1, [])


@pytest.mark.slow
def test_two_tpe_workers_share_the_budget_and_never_propose_the_same_configuration(tmp_path: Path) -> None:
    cmd = cli(tmp_path, "--space", space(tmp_path, TPE), "--sampler", "tpe", "--trials", "10")
    cmd += ["--study-name", "tpe", "--no-register"]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=env(), stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    trials = trials_of(tmp_path, "tpe")
    assert len(trials) == 10 and all(t.state == TrialState.COMPLETE for t in trials)
    configs = {tuple(sorted(t.params.items())) for t in trials}
    assert len(configs) == 10
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}  # both did work


@pytest.mark.slow
def test_a_point_that_always_fails_is_given_up_and_reruns_never_crash(tmp_path: Path) -> None:
    grid = tmp_path / "bad.yaml"
    grid.write_text(
        "model: als\nfixed: {confidence: binary, iterations: 2}\n"
        "grid:\n  factors: [8]\n  regularization: [0.1]\n  alpha: [1.0, -1.0]\n"
    )
    cmd = cli(tmp_path, "--space", str(grid), "--study-name", "bad")
    cmd.remove("--quiet")
    for _ in range(5):
        out = subprocess.run(cmd, cwd=tmp_path, env=env(), timeout=300, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "Traceback" not in out.stdout + out.stderr
        assert "given up: factors=8, regularization=0.1, alpha=-1  (invalid; trials " in out.stdout
    trials = trials_of(tmp_path, "bad")
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL"]  # run once, never again


@pytest.mark.slow
def test_two_local_workers_from_one_command(tmp_path: Path) -> None:
    grid = space(tmp_path, GRID, iterations=2)
    out = subprocess.run(
        [*cli(tmp_path, "--space", grid, "--study-name", "pair", "--workers", "2")],
        cwd=tmp_path,
        env=env(),
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    trials = trials_of(tmp_path, "pair")
    assert sorted(t.user_attrs["grid_point"] for t in trials) == list(range(8))
    assert "registry: als-recommender version 1 -> champion" in out.stdout
    assert len(runs(tmp_path, "final")) == 1
