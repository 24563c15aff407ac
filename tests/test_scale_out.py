"""Scale-out: two workers on one study through PostgreSQL, tracking through an MLflow server.

Both stores come from ``scripts/stores.sh`` as a user would start them: PostgreSQL by password (the storage
URL names its password file), the MLflow server with basic auth (the workers get the credentials through
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD). It skips when PostgreSQL is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.local_stores import reachable_folder, require_pg_bin, stores_in

ROOT = Path(__file__).resolve().parents[1]
SPACE = """\
model: als
fixed: {confidence: rating_quality, iterations: 8}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
  alpha: [1.0, 5.0]
"""

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def stores() -> Iterator[dict[str, str]]:
    """What ``scripts/stores.sh start`` exports: CFTUNE_STORAGE, MLFLOW_TRACKING_URI and the credentials."""
    require_pg_bin()
    root = reachable_folder("cftune-scale-out-")
    started = stores_in(root / "stores", auth="basic")
    try:
        yield started.start()
    finally:
        started.run("stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study(
    stores: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_url, tracking_server = stores["CFTUNE_STORAGE"], stores["MLFLOW_TRACKING_URI"]
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, stores[name])
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    cmd = [sys.executable, "-m", "search.run", "--model", "als", "--space", str(space), "--pruner", "none"]
    cmd += ["--storage", postgres_url, "--tracking-uri", tracking_server, "--study-name", "shared", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen([*cmd, "--no-register"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-3000:]
    final = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "registry: als-recommender version 1 -> champion" in final.stdout

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs["grid_point"] for t in complete) == list(range(8))  # each point exactly once
    assert len(study.trials) == 8 and len({t.user_attrs["worker"] for t in complete}) <= 2
    assert len({t.user_attrs["mlflow_run_id"] for t in complete}) == len(complete)

    client = MlflowClient(tracking_uri=tracking_server)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, filter_string="tags.kind = 'study'")
    assert len(parents) == 1  # the workers agreed on one parent run, chosen under the study's lock
    trials = client.search_runs(experiments, filter_string="tags.kind = 'trial'", max_results=1000)
    assert len(trials) == len(study.trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
