"""Serving the champion: ``python -m search.serve`` answers HTTP from a shell whose PATH does not hold the
virtualenv (``mlflow models serve`` alone dies there with ``uvicorn: not found``), on the default tracking
store; a known user gets the best items they have not seen, an unknown user the popular list. A model, alias
or store that is not there is a one-line error naming the URI and the store, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.artifacts import load_run
from core.home import default_tracking_uri
from search.promote import COMBINED, promote
from search.run import run_study
from search.serve import main, scripts_dir, serve_env
from search.settings import StudySettings
from search.tracking import Tracker

ROOT = Path(__file__).resolve().parents[1]
GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 2, alpha: 1.0}
grid:
  factors: [8]
  regularization: [0.01, 1.0]
"""
#: A shell without the virtualenv activated.
BARE_PATH = os.pathsep.join(["/usr/bin", "/bin"])
#: Bounds a broken server, never a guess at how long a good one takes: readiness is /ping answering.
READY_WITHIN_S = 300


def champion(tmp: Path) -> Tracker:
    """A tiny ALS study on the synthetic data in the default stores ($CFTUNE_HOME), promoted to
    cf-recommender@champion."""
    space = tmp / "grid.yaml"
    space.write_text(GRID)
    run_study(StudySettings(model="als", space=str(space), study_name="serve", quiet=True, report=False))
    tracker = Tracker()
    promote(tracker.client, ["als-recommender"])
    return tracker


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Poll /ping until it answers 200; the pause between polls is a wait on the server process exiting."""
    polls = int(READY_WITHIN_S / 0.25)
    for _ in range(polls):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        try:
            code = proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the server exited with {code} before answering /ping:\n{log.read_text()[-3000:]}")
    pytest.fail(f"no answer on /ping within {READY_WITHIN_S} s:\n{log.read_text()[-3000:]}")


def invoke(port: int, body: dict[str, Any]) -> pd.DataFrame:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return pd.DataFrame(json.load(resp)["predictions"])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (mlflow and the uvicorn it started)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_champion_serves_unseen_items_to_a_known_user_and_the_popular_list_to_an_unknown_one(
    tmp_path: Path, cftune_home: Path
) -> None:
    tracker = champion(tmp_path)
    version = tracker.client.get_model_version_by_alias(COMBINED, "champion")
    assert version.run_id is not None
    run = load_run(tracker.client.download_artifacts(version.run_id, "run", str(tmp_path)))
    held = pd.concat([run.train, run.valid, run.test])[["user_id", "item_id"]].drop_duplicates()
    user = str(run.train["user_id"].value_counts().idxmax())  # the most training items to avoid
    seen = set(held.loc[held["user_id"] == user, "item_id"])

    port, log = free_port(), tmp_path / "server.log"
    env = {**os.environ, "PATH": BARE_PATH, "PYTHONPATH": str(ROOT), "CFTUNE_HOME": str(cftune_home)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store, found through $CFTUNE_HOME
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "search.serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(proc, port, log)
        records = [{"user_id": user, "k": 5}, {"user_id": "nobody", "k": 4}]
        out_frame = invoke(port, {"dataframe_records": records})
    finally:
        stop(proc)

    known = out_frame[out_frame["user_id"] == user]
    assert known["rank"].tolist() == [1, 2, 3, 4, 5] and not known["cold_start"].any(), out_frame
    assert seen and not seen & set(known["item_id"]), (seen, known)
    # the five best by the model's scores among the items the user has not seen
    scores = run.user_factors[run.users.get_loc(user)] @ run.item_factors.T
    unseen = ~run.items.isin(list(seen))
    assert known["score"].tolist() == pytest.approx(sorted(scores[unseen], reverse=True)[:5], rel=1e-5)

    cold = out_frame[out_frame["user_id"] == "nobody"]
    counts = held["item_id"].value_counts()
    assert cold["cold_start"].all() and len(cold) == 4, out_frame
    assert cold["score"].tolist() == counts[cold["item_id"]].astype(float).tolist()  # score = interactions
    assert np.all(np.diff(cold["score"]) <= 0)
    assert cold["score"].min() >= counts.drop(cold["item_id"]).max()  # no item outside is more popular


def test_a_missing_alias_is_one_line_naming_the_uri_and_the_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Tracker().client.create_registered_model(COMBINED)  # registered, never promoted
    capsys.readouterr()  # MLflow's lines from creating the store
    assert main(["--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"models:/{COMBINED}@champion" in err and default_tracking_uri() in err, err
    assert "no alias @champion" in err and "python -m search.promote" in err, err


def test_a_model_not_registered_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    Tracker()  # an existing, empty store
    capsys.readouterr()  # MLflow's lines from creating the store
    assert main(["--model-uri", "models:/bpr-recommender/3", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models:/bpr-recommender/3" in err, err
    assert "no registered model 'bpr-recommender'" in err, err


def test_a_tracking_store_that_does_not_exist_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path}/nothing-here.db"
    assert main(["--tracking-uri", uri, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and uri in err and "does not exist" in err, err
    assert not (tmp_path / "nothing-here.db").exists()


def test_the_server_finds_this_virtualenvs_uvicorn_whatever_the_callers_path() -> None:
    env = serve_env("sqlite:///x.db", {"PATH": BARE_PATH})
    assert shutil.which("uvicorn", path=env["PATH"]) == str(scripts_dir() / "uvicorn")
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"


def test_a_port_in_use_is_one_line_before_anything_loads(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # a run's model is not looked up here (MLflow does), so the port is the first thing checked
        assert main(["--model-uri", "runs:/0123/model", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot serve on 127.0.0.1:{port}" in err, err
