"""A study serves the popularity blend (``core.blend``) its selected trial chose on validation: every trial
records its weight, the refit is tested and registered with it, and ``--no-popularity-blend`` serves the model
alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from core.planted import make_planted
from core.prepare import DataOptions
from search.arguments import build_parser, settings_from_args
from search.run import run_study
from search.selection import BLEND_ATTR, PAIRED_ATTR, decode_values
from search.settings import StudySettings

GRID = """\
model: als
fixed: {iterations: 3}
grid:
  factors: [8]
  regularization: [1.0, 30.0]
"""


@pytest.fixture(scope="module")
def weak_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Few items, steep popularity, little taste: popularity is hard to beat (as on corner-few-items)."""
    csv = tmp_path_factory.mktemp("weak") / "weak.csv"
    log = make_planted(
        n_users=3000, n_items=200, rank=4, density=0.015, popularity_skew=1.5, signal=0.3, seed=5
    )
    log.to_frame().to_csv(csv, index=False)
    return csv


def settings(tmp: Path, csv: Path, *, blend: bool = True) -> StudySettings:
    space = tmp / "grid.yaml"
    space.write_text(GRID)
    return StudySettings(
        model="als",
        data=DataOptions(data=str(csv)),
        space=str(space),
        storage=f"sqlite:///{tmp}/optuna.db",
        tracking_uri=f"sqlite:///{tmp}/mlflow.db",
        study_name="blend",
        quiet=True,
        report=False,
        popularity_blend=blend,
    )


def test_the_registered_model_carries_the_weight_its_trial_chose(tmp_path: Path, weak_csv: Path) -> None:
    import optuna

    record = run_study(settings(tmp_path, weak_csv))
    study = optuna.load_study(study_name="blend", storage=f"sqlite:///{tmp_path}/optuna.db")
    weights = {t.number: t.user_attrs[BLEND_ATTR] for t in study.trials}
    assert len(weights) == 2
    for t in study.trials:  # and, for the paired one-standard-error rule, the per-user values
        values = decode_values(t.user_attrs[PAIRED_ATTR])
        assert values is not None and len(values) == t.user_attrs[PAIRED_ATTR]["users"] > 100
        assert abs(values.mean() - t.value) < 1e-3
    best = record.best_trial
    assert best is not None and best.popularity_weight == weights[best.number] > 0
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    version = client.get_model_version("als-recommender", "1")
    assert float(version.tags["popularity_weight"]) == best.popularity_weight
    final = client.get_run(version.run_id)
    assert float(final.data.params["popularity_weight"]) == best.popularity_weight
    assert record.vs is not None
    assert record.vs["popularity"]["ndcg@10"].difference.high >= 0  # not significantly below popularity


def test_without_the_blend_the_model_alone_is_served(tmp_path: Path, weak_csv: Path) -> None:
    import optuna

    record = run_study(settings(tmp_path, weak_csv, blend=False))
    study = optuna.load_study(study_name="blend", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert all(BLEND_ATTR not in t.user_attrs for t in study.trials)
    assert record.best_trial is not None and record.best_trial.popularity_weight == 0.0
    version = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_model_version("als-recommender", "1")
    assert version.tags["popularity_weight"] == "0"


def test_the_command_line_turns_the_blend_off() -> None:
    parse = build_parser("a study").parse_args
    assert settings_from_args(parse(["--model", "als"])).popularity_blend
    assert not settings_from_args(parse(["--model", "als", "--no-popularity-blend"])).popularity_blend
