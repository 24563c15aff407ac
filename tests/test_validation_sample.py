"""Validation that costs less than training: intermediate steps on the study's fixed sample of validation
users, the trial's value on all of them at its best step, and small data exactly as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from core.errors import ConfigError
from core.final import validate, validation_monitor
from core.fit import fit_model
from core.prepare import DataOptions, Prepared
from search.run import run_study
from search.selection import SE_ATTR, standard_error
from search.settings import StudySettings
from search.validation_sample import (
    SAMPLE_ENV,
    STUDY_ATTR,
    ValidationSample,
    asked_size,
    default_every,
    digest,
    draw,
    sample_size,
    study_sample,
    validation_users,
)

GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 6}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
  alpha: [1.0, 5.0]
"""


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return DataOptions().prepare()  # the embedded synthetic data: 705 validation users


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(SAMPLE_ENV, raising=False)
    (tmp_path / "grid.yaml").write_text(GRID)
    return tmp_path


def settings(workdir: Path, **kw: Any) -> StudySettings:
    base: dict[str, Any] = {
        "model": "als",
        "space": str(workdir / "grid.yaml"),
        "sampler": "grid",
        "storage": f"sqlite:///{workdir}/optuna.db",
        "tracking_uri": f"sqlite:///{workdir}/mlflow.db",
        "study_name": "sampled",
        "register": False,
        "quiet": True,
        "report": False,
    }
    base.update(kw)
    return StudySettings(**base)


def trials_of(s: StudySettings) -> list[Any]:
    return optuna.load_study(study_name=str(s.study_name), storage=s.storage_url).trials


# ---------------------------------------------------------------------------------------------- the rule
def test_every_validation_user_up_to_20k_then_a_tenth_between_20k_and_50k() -> None:
    assert sample_size(705) == 705
    assert sample_size(20_000) == 20_000
    assert sample_size(20_001) == 20_000
    assert sample_size(138_493) == 20_000  # the MovieLens-20M shape: a tenth is less than 20k
    assert sample_size(300_000) == 30_000
    assert sample_size(2_000_000) == 50_000


def test_an_asked_size_wins_zero_means_all_and_it_never_exceeds_the_users() -> None:
    assert sample_size(705, 40) == 40
    assert sample_size(50_000, 0) == 50_000
    assert sample_size(705, 10_000) == 705


def test_the_environment_asks_for_a_count_or_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SAMPLE_ENV, "500")
    assert asked_size() == 500 and asked_size(7) == 7
    monkeypatch.setenv(SAMPLE_ENV, "all")
    assert asked_size() == 0
    monkeypatch.setenv(SAMPLE_ENV, "lots")
    with pytest.raises(ConfigError, match=SAMPLE_ENV):
        asked_size()


def test_als_evaluates_less_often_only_where_users_are_sampled(prepared: Prepared) -> None:
    of = len(validation_users(prepared))
    assert default_every("als", prepared, of, of) == 1
    assert default_every("bpr", prepared, of, of) == 5
    assert default_every("bpr", prepared, 40, of) == 5
    # a pass over S users scores S x items cells; an ALS iteration costs about 64 cells per train interaction
    cells_per_iteration = 64 * len(prepared.split.train)
    two = 2 * cells_per_iteration // prepared.split.valid.n_items
    assert default_every("als", prepared, two, of + two) == 1  # a pass of two iterations: every iteration
    twelve = 12 * cells_per_iteration // prepared.split.valid.n_items
    assert default_every("als", prepared, twelve, of + twelve) == 3  # of twelve: every third


def test_the_sample_is_the_same_users_for_the_same_size_and_seed(prepared: Prepared) -> None:
    users = validation_users(prepared)
    a, b = draw(prepared, 40, 0), draw(prepared, 40, 0)
    assert np.array_equal(a, b) and len(a) == 40 and len(np.unique(a)) == 40
    assert np.all(np.diff(a) > 0) and np.isin(a, users).all()
    assert not np.array_equal(a, draw(prepared, 40, 1))
    assert np.array_equal(draw(prepared, len(users), 0), users)


def test_a_study_from_before_samples_goes_on_with_all_users_every_step(prepared: Prepared) -> None:
    study = optuna.create_study()
    study.set_user_attr("search_fingerprint", "abc")
    sample = study_sample(study, "als", prepared, 0, new=False, asked=40)
    assert not sample.sampled and sample.every == 1
    assert study.user_attrs[STUDY_ATTR]["size"] == len(validation_users(prepared))


def test_a_sample_that_this_split_does_not_give_is_refused(prepared: Prepared) -> None:
    study = optuna.create_study()
    study.set_user_attr(STUDY_ATTR, ValidationSample(40, 705, 0, 1, "0123456789abcdef").to_attr())
    with pytest.raises(ConfigError, match="validation users differ"):
        study_sample(study, "als", prepared, 0, new=False)


# ---------------------------------------------------------------------------------------------- studies
def test_the_sample_is_fixed_per_study_across_resume_and_workers(workdir: Path, prepared: Prepared) -> None:
    """The creating worker stores 40 users; a resume that asks for all users, and a second local worker,
    evaluate every trial's curve on those same 40."""
    first = settings(workdir, trials=3, valid_sample_size=40)
    run_study(first)
    study = optuna.load_study(study_name="sampled", storage=first.storage_url)
    stored = study.user_attrs[STUDY_ATTR]
    assert stored["size"] == 40 and stored["of"] == 705
    assert stored["digest"] == digest(draw(prepared, 40, first.seed))

    resumed = settings(workdir, trials=8, valid_sample_size=0, workers=2)
    run_study(resumed)
    trials = trials_of(resumed)
    assert len(trials) == 8 and all(t.state.is_finished() for t in trials)
    assert {t.user_attrs["curve_sample"] for t in trials} == {stored["digest"]}
    assert {t.user_attrs["curve_users"] for t in trials} == {40}
    workers = optuna.load_study(study_name="sampled", storage=first.storage_url).user_attrs["workers_started"]
    assert workers == 3  # the first run's worker, then the resume's two
    assert resumed.validation_sample == ValidationSample.from_attr(stored)


def test_a_trial_value_is_its_all_user_value_at_the_step_the_sample_chose(
    workdir: Path, prepared: Prepared
) -> None:
    s = settings(workdir, trials=4, valid_sample_size=40, pruner="none")
    run_study(s)
    sampled = draw(prepared, 40, s.seed)
    trials = [t for t in trials_of(s) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4
    for t in trials:
        monitor = validation_monitor(prepared, metric=s.metric, restore_best=True, last_step=6, users=sampled)
        params = {**t.user_attrs["params_full"], "random_state": s.seed}
        alone = fit_model(prepared, "als", params, callback=monitor)
        assert t.user_attrs["best_step"] == monitor.best_step  # chosen by the sampled curve
        assert max(t.intermediate_values.values()) == pytest.approx(monitor.best_value, rel=1e-6)
        everyone = validate(prepared, alone, ks=s.ks)
        assert everyone.metrics["users"] == 705
        assert t.value == pytest.approx(everyone.metrics[s.metric], rel=1e-6)
        assert t.value != pytest.approx(monitor.best_value, rel=1e-3)  # not the sample's number
        se = standard_error(everyone.per_user[s.metric])
        assert t.user_attrs[SE_ATTR] == pytest.approx(se, rel=1e-6)


def test_small_data_runs_the_same_trials_to_the_same_values(workdir: Path) -> None:
    """Fewer validation users than the sample: the stored sample is all of them at the old cadence, and a
    pruned grid study gives, trial by trial, the states, values, curves and best steps of the same study
    with the sample forced off."""
    default = settings(workdir, pruner="median", study_name="default")
    off = settings(workdir, pruner="median", study_name="off", valid_sample_size=0)
    run_study(default)
    run_study(off)
    assert default.validation_sample is not None
    assert (default.validation_sample.size, default.validation_sample.of, default.evaluate_every) == (
        705,
        705,
        1,
    )
    a, b = trials_of(default), trials_of(off)
    assert len(a) == len(b) == 8
    assert {t.user_attrs["curve_users"] for t in a} == {705}
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in a)  # pruning decisions are compared too
    for x, y in zip(sorted(a, key=lambda t: t.number), sorted(b, key=lambda t: t.number), strict=True):
        assert (x.params, x.state, x.value) == (y.params, y.state, y.value)
        assert x.intermediate_values == y.intermediate_values
        assert x.user_attrs.get("best_step") == y.user_attrs.get("best_step")
        assert x.user_attrs.get(SE_ATTR) == y.user_attrs.get(SE_ATTR)
