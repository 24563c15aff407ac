"""A study end to end on the synthetic data: Optuna trials, MLflow runs, the registry gate, resuming after
Ctrl-C and kill -9, and the champion served from a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from core.errors import ConfigError
from core.prepare import DataOptions
from search.run import main, run_study
from search.settings import StudySettings
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = run_study(s)
    assert not [w for w in caught if "type hint" in str(w.message)]  # the pyfunc model is typed
    study = optuna.load_study(study_name=record.study_name, storage=s.storage_url)
    states = [t.state for t in study.trials]
    assert len(states) == 8 and all(st.is_finished() for st in states)

    client = MlflowClient(tracking_uri=s.tracking_uri)
    parent = runs_of(client, "study")
    trials = runs_of(client, "trial")
    assert len(parent) == 1 and len(trials) == 8
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent[0].info.run_id}
    assert parent[0].info.status == "FINISHED"
    by_state = {r.data.tags["optuna.state"]: r for r in trials}
    done = by_state["COMPLETE"]
    assert done.info.status == "FINISHED"
    assert {"factors", "regularization", "alpha", "iterations", "confidence"} <= set(done.data.params)
    assert {"valid_ndcg_at_10", "score_range_p01", "score_range_p99", "fit_seconds"} <= set(done.data.metrics)
    for tag in ("study_name", "trial_number", "data_version_hash", "git_commit", "sampler", "pruner"):
        assert tag in done.data.tags
    history = client.get_metric_history(done.info.run_id, "step_valid_ndcg_at_10")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]  # one value per iteration
    artifacts = {a.path for a in client.list_artifacts(done.info.run_id, "run")}
    assert {"run/params.json", "run/metrics.json", "run/metadata.json"} <= artifacts
    if "PRUNED" in by_state:  # pruned trials are visible as such, never as successes
        assert by_state["PRUNED"].info.status == "KILLED"

    # one number everywhere: Optuna's value is the best evaluated step, MLflow shows that value, and so
    # does the record the reports read
    run_of = {int(r.data.tags["trial_number"]): r for r in trials}
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == max(t.intermediate_values.values())
            assert run_of[t.number].data.metrics["valid_ndcg_at_10"] == t.value
    # the best trial keeps its factor matrices under the default --keep-factors
    best_files = {a.path for a in client.list_artifacts(run_of[study.best_trial.number].info.run_id, "run")}
    assert {"run/als_U.npy", "run/als_V.npy"} <= best_files
    assert record.best_trial is not None and record.selection is not None
    # the record's trial is the one-standard-error rule's choice (search.selection): within one SE of the best
    assert record.selection.best_trial == study.best_trial.number
    se = study.best_trial.user_attrs["valid_se"]
    assert "se" not in record.best_trial.valid  # a property of the trial's value, not a validation metric
    assert 0 < se < 0.1 and study.best_value - se <= record.best_trial.value <= study.best_value
    assert run_of[record.best_trial.number].data.metrics["valid_ndcg_at_10"] == record.best_trial.value

    reg = record.registry
    assert reg is not None and (reg.name, reg.version, reg.decision) == ("als-recommender", "1", "champion")
    version = client.get_model_version_by_alias("als-recommender", "champion")
    assert version.tags["data_version_hash"] == record.data_version_hash
    assert float(version.tags["valid_ndcg_at_10"]) == record.best_trial.valid["ndcg@10"]
    assert str(client.get_model_version_by_alias("als-recommender", reg.data_alias).version) == "1"
    assert record.test is not None and record.baselines is not None
    assert record.test["ndcg@10"] > record.baselines.popularity.test["ndcg@10"]

    # the same command again: nothing re-run, nothing registered twice
    again = run_study(s)
    assert len(optuna.load_study(study_name=record.study_name, storage=s.storage_url).trials) == 8
    assert again.registry is not None and again.registry.version == "1"

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


def test_a_kill_between_registration_and_alias_is_repaired_on_rerun(workdir: Path) -> None:
    s = settings(workdir, space=tiny_space(workdir, iterations=2))
    record = run_study(s)
    client = MlflowClient(tracking_uri=s.tracking_uri)
    assert record.registry is not None
    for alias in ("champion", record.registry.data_alias):  # as if killed right after register_model
        client.delete_registered_model_alias("als-recommender", alias)
    client.delete_model_version_tag("als-recommender", "1", "decision")
    again = run_study(s)
    assert again.registry is not None and again.registry.version == "1"
    champion = client.get_model_version_by_alias("als-recommender", "champion")
    assert str(champion.version) == "1" and champion.tags["decision"] == "champion"


def test_a_helper_worker_only_runs_trials(workdir: Path, cftune_home: Path) -> None:
    s = settings(workdir, space=tiny_space(workdir, iterations=2), register=False)
    record = run_study(s)
    assert record.trials == {"complete": 8} and record.test is None and record.registry is None
    client = MlflowClient(tracking_uri=s.tracking_uri)
    assert not runs_of(client, "final")  # no refit
    assert not client.search_registered_models()
    assert not (cftune_home / "baselines").exists()  # no references computed
    parent = runs_of(client, "study")[0]
    assert "summary.json" not in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_stores_resolve_from_cftune_home_not_the_working_folder(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.promote import main as promote_main

    monkeypatch.setenv("CFTUNE_HOME", str(workdir / "home"))
    s = settings(workdir, space=tiny_space(workdir, iterations=2), storage=None, tracking_uri=None)
    record = run_study(s)
    assert (workdir / "home" / "optuna.db").is_file() and (workdir / "home" / "mlflow.db").is_file()
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert promote_main(["--models", "als-recommender"]) == 0
    out = capsys.readouterr().out
    assert f"comparing on data {record.data_version_hash}" in out and "als-recommender    v1" in out
    study = optuna.load_study(study_name=record.study_name, storage=f"sqlite:///{workdir}/home/optuna.db")
    assert study.user_attrs["tracking_uri"] == f"sqlite:///{workdir / 'home' / 'mlflow.db'}"
    assert not (elsewhere / "mlruns").exists()


def test_the_experiment_is_named_after_the_dataset_not_the_file(workdir: Path) -> None:
    folder = workdir / "shop-2024"
    folder.mkdir()
    rows = [
        f"{u}\t{i}\t{1 + (u * i) % 5}\t{1000 + u * 50 + i}" for u in range(40) for i in range(u % 7, 30, 3)
    ]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    s = settings(
        workdir,
        space=tiny_space(workdir, iterations=2),
        data=DataOptions(data=str(folder / "u.data")),
        register=False,
    )
    run_study(s)
    client = MlflowClient(tracking_uri=s.tracking_uri)
    assert client.get_experiment_by_name("als-shop-2024") is not None


def test_an_unreachable_tracking_store_fails_before_training(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        run_study(settings(workdir, tracking_uri="http://127.0.0.1:9", trials=2, sampler="tpe"))
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


def test_bad_data_options_exit_2_before_any_store_is_touched(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--storage", f"sqlite:///{workdir}/o.db", "--tracking-uri", f"sqlite:///{workdir}/m.db"]
    assert main(["--model", "als", "--valid-frac", "0.7", "--test-frac", "0.5", *common]) == 2
    assert "--valid-frac + --test-frac must be below 1" in capsys.readouterr().err
    assert main(["--model", "als", "--train", "a.csv", *common]) == 2
    assert "--train, --valid and --test go together" in capsys.readouterr().err
    assert main(["--model", "als", "--workers", "0", *common]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert not (workdir / "o.db").exists()


def test_resuming_with_another_metric_is_refused(workdir: Path) -> None:
    space = tiny_space(workdir, iterations=2)
    run_study(settings(workdir, space=space, study_name="fixed-name", register=False))
    with pytest.raises(ConfigError, match="another metric, space, seed or sampler"):
        run_study(settings(workdir, space=space, study_name="fixed-name", metric="recall@20", register=False))
    with pytest.raises(ConfigError, match="another --select"):  # it would refit and register another trial
        run_study(settings(workdir, space=space, study_name="fixed-name", select="best", register=False))
    with pytest.raises(ConfigError, match="--select must be one of"):
        run_study(settings(workdir, space=space, study_name="other-name", select="median"))


def test_a_metric_at_any_k_is_computed_and_diverged_points_are_given_up(workdir: Path) -> None:
    space = workdir / "bpr.yaml"
    space.write_text(
        "model: bpr\nfixed: {epochs: 3, factors: 8, hard_ratio: 0.0}\n"
        "grid:\n  learning_rate: [0.05, 1.0e+6]\n  regularization: [0.0001]\n"
    )
    s = settings(workdir, model="bpr", space=str(space), metric="ndcg@5", register=False, eval_every=1)
    record = run_study(s)
    assert record.trials == {"complete": 1, "fail": 1}  # lr 1e6 diverges, named, and the study goes on
    assert record.best_trial is not None
    assert record.best_trial.value == record.best_trial.valid["ndcg@5"]
    study = optuna.load_study(study_name=record.study_name, storage=s.storage_url)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed[0].user_attrs["failure"] == "diverged"
    assert "diverged at epoch" in failed[0].user_attrs["error"]
    assert [(g.params["learning_rate"], g.reason) for g in record.given_up] == [(1e6, "diverged")]
    run_study(s)  # again: nothing left to run, the diverged point included
    assert len(optuna.load_study(study_name=record.study_name, storage=s.storage_url).trials) == 2


def test_an_erroring_point_is_retried_up_to_the_limit_then_given_up(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.objective

    real_fit = search.objective.fit_model

    def flaky_fit(prepared: Any, model: str, params: dict[str, Any], **kw: Any) -> Any:
        if params["factors"] == 16 and params["alpha"] == 5.0 and params["regularization"] == 1.0:
            raise RuntimeError("disk full")  # an error that is not the configuration's fault
        return real_fit(prepared, model, params, **kw)

    monkeypatch.setattr(search.objective, "fit_model", flaky_fit)
    s = settings(workdir, space=tiny_space(workdir, iterations=2), register=False, max_attempts=3)
    record = run_study(s)
    assert record.trials == {"complete": 7, "fail": 3}  # three attempts, then no more
    (gave_up,) = record.given_up
    assert gave_up.reason == "failed 3 times" and len(gave_up.trials) == 3
    study = optuna.load_study(study_name=record.study_name, storage=s.storage_url)
    retries = [t.user_attrs.get("retry_of") for t in study.trials if t.number in gave_up.trials]
    assert retries[0] is None and retries[1:] == gave_up.trials[:2]  # each attempt requeued the last
    again = run_study(s)  # re-running never crashes, and never runs the point again
    assert again.trials == {"complete": 7, "fail": 3}


STEP_GRID = """\
model: als
fixed: {confidence: rating_quality}
grid:
  factors: [8, 16]
  regularization: [0.05]
  alpha: [2.0]
  iterations: [2, 4, 7]
"""


def test_one_training_serves_every_step_count_of_a_grid_point(workdir: Path) -> None:
    """A fit of 7 iterations passes through the fits of 2 and 4: the grid trains each point once at its
    longest, yet every point is its own trial with the value, MLflow run and artifacts it would have had
    trained alone (ALS is deterministic with a fixed seed)."""
    import json

    from core.final import validate, validation_monitor
    from core.fit import fit_model

    space = workdir / "steps.yaml"
    space.write_text(STEP_GRID)
    s = settings(workdir, space=str(space), pruner="none", register=False)
    record = run_study(s)
    study = optuna.load_study(study_name=record.study_name, storage=s.storage_url)
    trials = study.trials
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    groups = {frozenset([t.number, *t.user_attrs["trained_with"]]) for t in trials}
    assert len(groups) == 2 and all(len(g) == 3 for g in groups)  # 2 trainings for 6 points

    prepared = s.data.prepare()
    client = MlflowClient(tracking_uri=s.tracking_uri)
    runs = {r.info.run_id: r for r in runs_of(client, "trial")}
    assert len(runs) == 6 and {t.user_attrs["mlflow_run_id"] for t in trials} == set(runs)
    for t in trials:
        params = {**t.params, "random_state": s.seed}
        monitor = validation_monitor(
            prepared, metric=s.metric, restore_best=True, last_step=t.params["iterations"]
        )
        alone = fit_model(prepared, "als", params, callback=monitor)
        expected = validate(prepared, alone, ks=s.ks).metrics[s.metric]
        assert t.value == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert t.user_attrs["best_step"] == alone.best_epoch_
        run = runs[t.user_attrs["mlflow_run_id"]]
        assert run.data.params["iterations"] == str(t.params["iterations"])
        assert run.data.metrics["valid_ndcg_at_10"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        curve = client.get_metric_history(run.info.run_id, "step_valid_ndcg_at_10")
        assert max(m.step for m in curve) == t.params["iterations"]  # no step beyond its own
        folder = client.download_artifacts(run.info.run_id, "run", str(workdir / f"art{t.number}"))
        saved = json.loads((Path(folder) / "params.json").read_text())
        assert saved["iterations"] == t.params["iterations"]
        history = json.loads((Path(folder) / "history.json").read_text())
        assert history["steps"] == list(range(1, t.params["iterations"] + 1))


class _ScriptedTrial:
    """A stand-in for an Optuna trial whose pruner says "prune" from a given step on."""

    def __init__(self, number: int, params: dict[str, Any], prune_from: int) -> None:
        self.number, self.params, self.prune_from = number, params, prune_from
        self.reported: list[int] = []
        self.user_attrs: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.params[name]

    def report(self, value: float, step: int) -> None:
        self.reported.append(step)

    def should_prune(self) -> bool:
        return self.reported[-1] >= self.prune_from

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


class _NoTracking:
    def start_trial(self, number: int, params: dict[str, Any]) -> str:
        return f"run-{number}"

    def end_trial(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_pruning_a_shared_training_ends_each_trial_as_if_trained_alone(workdir: Path) -> None:
    """Pruned from step 3 on: the 2-step point completes, the 4- and 7-step points are pruned at step 3, and
    the training stops there."""
    from search.objective import Objective
    from spaces import load_space

    space_file = workdir / "steps.yaml"
    space_file.write_text(STEP_GRID)
    s = settings(workdir, space=str(space_file))
    space = load_space("als", str(space_file))
    point = {"factors": 8, "regularization": 0.05, "alpha": 2.0}
    trials = [_ScriptedTrial(n, {**point, "iterations": it}, prune_from=3) for n, it in enumerate((7, 2, 4))]
    told: dict[int, str] = {}
    objective = Objective(s, s.data.prepare(), space, "grid", 1, _NoTracking())  # type: ignore[arg-type]
    objective(trials, lambda trial, outcome: told.__setitem__(trial.number, outcome.state))
    assert told == {1: "COMPLETE", 2: "PRUNED", 0: "PRUNED"}
    assert [t.reported for t in trials] == [[1, 2, 3], [1, 2], [1, 2, 3]]
    assert trials[1].user_attrs["steps_computed"] == 2 and trials[0].user_attrs["steps_computed"] == 3
