"""A trial stops on its own curve: after the study's patience of validations without a better value it ends on
its best step, with the value it would have had run to the end whenever that end brings no better step. The
patience is the study's, kept across resumes. Rules: search.pruning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from core.errors import ConfigError
from search import pruning
from search.pruning import DEFAULT_PATIENCE, PATIENCE_ATTR, PATIENCE_FROM, default_patience, study_patience
from search.run import run_study
from search.settings import StudySettings

# low regularization and many iterations: curves that peak early on the synthetic data, then fall
GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 25, alpha: 5.0}
grid:
  factors: [16, 48]
  regularization: [0.001, 0.05]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.yaml").write_text(GRID)
    return tmp_path


def settings(workdir: Path, **kw: Any) -> StudySettings:
    base: dict[str, Any] = {
        "model": "als",
        "space": str(workdir / "grid.yaml"),
        "sampler": "grid",
        "pruner": "none",
        "storage": f"sqlite:///{workdir}/optuna.db",
        "tracking_uri": f"sqlite:///{workdir}/mlflow.db",
        "study_name": "patience",
        "register": False,
        "quiet": True,
        "report": False,
    }
    base.update(kw)
    return StudySettings(**base)


def by_params(s: StudySettings) -> dict[tuple[Any, ...], Any]:
    trials = optuna.load_study(study_name=str(s.study_name), storage=s.storage_url).trials
    return {tuple(sorted(t.params.items())): t for t in trials}


def test_a_trial_stops_patience_validations_after_its_best_step_and_keeps_that_step(workdir: Path) -> None:
    patient = settings(workdir, study_name="patient", patience=2)
    endless = settings(workdir, study_name="endless", patience=0)
    run_study(patient)
    run_study(endless)
    assert (patient.patience, endless.patience) == (2, 0)
    stopped = 0
    for point, full in by_params(endless).items():
        short = by_params(patient)[point]
        assert short.state == full.state == optuna.trial.TrialState.COMPLETE
        assert full.user_attrs["steps_computed"] == 25
        computed = short.user_attrs["steps_computed"]
        curve = full.intermediate_values  # best so far, step by step
        assert short.intermediate_values == {k: v for k, v in curve.items() if k <= computed}
        if computed < 25:
            stopped += 1
            assert computed == short.user_attrs["best_step"] + 2  # two validations without a better value
            raw = full.user_attrs  # the full run's best step is later only where its curve climbed back
            if raw["best_step"] <= computed:
                assert raw["best_step"] == short.user_attrs["best_step"]
                assert short.value == pytest.approx(full.value, rel=1e-6)
            else:
                assert curve[25] > curve[computed]
        else:
            assert short.value == pytest.approx(full.value, rel=1e-6)
    assert stopped >= 1  # the grid has curves that peak and fall


def test_a_new_study_on_a_large_log_stores_the_default_patience_and_a_resume_keeps_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threshold lowered below the embedded data's size stands for a large log."""
    monkeypatch.setattr(pruning, "PATIENCE_FROM", 100)
    first = settings(workdir, trials=1)
    run_study(first)
    study = optuna.load_study(study_name="patience", storage=first.storage_url)
    assert study.user_attrs[PATIENCE_ATTR] == DEFAULT_PATIENCE == first.patience
    monkeypatch.setattr(pruning, "PATIENCE_FROM", 10**9)  # a resume keeps the study's, whatever the rule says
    resumed = settings(workdir, trials=2)
    run_study(resumed)
    assert resumed.patience == DEFAULT_PATIENCE
    with pytest.raises(ConfigError, match="stops trials after 3 evaluations"):
        run_study(settings(workdir, trials=3, patience=5))


def test_small_logs_run_every_trial_to_its_last_step_by_default(workdir: Path) -> None:
    """Below the threshold (the embedded data: ~7k training interactions) nothing stops a trial on its curve:
    the same trials, to the same steps and values, as with --patience 0."""
    default = settings(workdir, study_name="default")
    off = settings(workdir, study_name="off", patience=0)
    run_study(default)
    run_study(off)
    assert default.patience == 0
    a, b = by_params(default), by_params(off)
    assert a.keys() == b.keys()
    for point, t in a.items():
        u = b[point]
        assert (t.value, t.intermediate_values, t.user_attrs["steps_computed"]) == (
            u.value,
            u.intermediate_values,
            u.user_attrs["steps_computed"],
        )
        assert t.user_attrs["steps_computed"] == 25


def test_the_default_is_three_from_half_a_million_training_interactions() -> None:
    assert default_patience(PATIENCE_FROM - 1) == 0
    assert default_patience(PATIENCE_FROM) == DEFAULT_PATIENCE == 3
    assert PATIENCE_FROM == 500_000


class _Study:
    """The user attributes and name of a study, as :func:`study_patience` reads them."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.user_attrs, self.study_name = dict(attrs), "old"

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


def test_a_study_from_before_patience_goes_on_without_one_and_refuses_one() -> None:
    old = _Study({"search_fingerprint": "x"})
    assert study_patience(old, None, new=False, train_interactions=10**7) == 0
    assert old.user_attrs[PATIENCE_ATTR] == 0
    with pytest.raises(ConfigError, match="started before trials stopped"):
        study_patience(_Study({}), 2, new=False, train_interactions=10**7)
    assert study_patience(_Study({}), 0, new=False, train_interactions=10**7) == 0


def test_a_new_study_takes_the_patience_asked_and_refuses_a_negative_one() -> None:
    assert study_patience(_Study({}), 7, new=True, train_interactions=10) == 7
    assert study_patience(_Study({}), None, new=True, train_interactions=10**7) == DEFAULT_PATIENCE
    assert study_patience(_Study({}), None, new=True, train_interactions=10) == 0
    with pytest.raises(ConfigError, match="--patience must be >= 0"):
        study_patience(_Study({}), -1, new=True, train_interactions=10)
