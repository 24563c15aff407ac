"""A TPE study starts from the data-driven default and the space's ``start`` list, in that order, kept
inside the space; only then does the sampler choose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from core.errors import ConfigError
from search.factories import data_default, starting_points
from search.run import run_study
from search.settings import StudySettings
from spaces import parse_space

SPACE = {
    "model": "als",
    "tpe": {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "regularization": {"type": "float", "low": 0.001, "high": 1000.0, "log": True},
        "alpha": {"type": "float", "low": 0.05, "high": 50.0, "log": True, "step": None},
        "iterations": {"type": "int", "low": 2, "high": 20, "step": 2},
        "confidence": {"type": "categorical", "choices": ["rating", "binary"]},
    },
    "start": [{"factors": 64, "confidence": "binary"}],
}


def test_the_default_comes_first_clipped_into_the_ranges_then_the_spaces_own() -> None:
    space = parse_space(SPACE)
    default: dict[str, Any] = {"factors": 128, "regularization": 5000.0, "alpha": 0.01, "iterations": 15}
    default |= {"confidence": "log_count", "lr_decay": 0.8}  # not in the space: left out
    assert starting_points(space, default) == [
        # clipped into the ranges; iterations 15 onto the steps 2, 4, ..., 20
        {"factors": 128, "regularization": 1000.0, "alpha": 0.05, "iterations": 14},
        {"factors": 64, "confidence": "binary"},
    ]
    assert starting_points(space, None) == [{"factors": 64, "confidence": "binary"}]
    assert starting_points(space, {"factors": 64, "confidence": "binary"}) == [
        {"factors": 64, "confidence": "binary"}
    ]  # the same point is enqueued once


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"factors": 1000}, r"start\[0\]\.factors: 1000 is outside the range \[16"),
        ({"depth": 3}, r"start\[0\]\.depth: is not in the tpe block"),
        ({"confidence": "loud"}, r"start\[0\]\.confidence: 'loud' is not one of"),
        ({"alpha": "1e-2"}, r"start\[0\]\.alpha: '1e-2' is a string; write 1.0e-2"),
    ],
)
def test_a_start_point_outside_the_space_is_an_error_naming_it(point: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_space({**SPACE, "start": [point]}, source="my.yaml")


def test_a_tpe_study_runs_its_starting_points_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "als.yaml"
    space.write_text(
        "model: als\nfixed: {iterations: 2}\n"
        "tpe:\n  factors: {type: int, low: 4, high: 16}\n"
        "  regularization: {type: float, low: 0.01, high: 1000.0}\n"
        "  confidence: {type: categorical, choices: [rating_quality, binary]}\n"
        "start:\n  - {factors: 5, regularization: 0.5, confidence: binary}\n"
    )
    s = StudySettings(
        model="als",
        sampler="tpe",
        trials=3,
        space=str(space),
        storage=f"sqlite:///{tmp_path}/optuna.db",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        quiet=True,
        report=False,
        register=False,
    )
    record = run_study(s)
    trials = optuna.load_study(study_name=record.study_name, storage=s.storage_url).trials
    default = data_default("als", s.data.prepare())
    assert trials[0].params == {
        "factors": 16,  # 128 clipped to the range
        "regularization": pytest.approx(min(default["regularization"], 1000.0)),
        "confidence": default["confidence"],
    }
    assert trials[1].params == {"factors": 5, "regularization": 0.5, "confidence": "binary"}
    assert [t.user_attrs.get("starting_point") for t in trials] == [True, True, None]
    assert len(trials) == 3


@pytest.mark.parametrize("trainer", ["kernel", "torch"])
def test_a_bpr_studys_first_trial_is_the_whole_default_not_the_datas_part_with_random_rest(
    trainer: str,
) -> None:
    from core.params import default_params, make_model
    from core.prepare import DataOptions
    from spaces import SPACES_DIR, load_space, resolve_ranges

    prepared = DataOptions().prepare()
    shipped = load_space("bpr", SPACES_DIR / ("bpr_advanced.yaml" if trainer == "torch" else "bpr.yaml"))
    default = data_default("bpr", prepared, trainer)
    space, _ = resolve_ranges(shipped, default)  # as a study does: its relative ranges made absolute first
    [point, *_] = starting_points(space, default)
    assert set(point) == set(space.tpe)  # every searched parameter set: nothing left to the sampler
    chosen = default_params("bpr", None, prepared, trainer=trainer)
    fitted_as = make_model("bpr", {**chosen, "trainer": trainer})  # what core.train would fit
    for name, value in point.items():
        if name in ("reg_user", "reg_pos", "reg_neg"):  # None (= regularization) as the number it stands for
            assert value == pytest.approx(fitted_as.regularization)
        elif space.tpe[name].type == "categorical":
            assert value == getattr(fitted_as, name)
        else:  # clipped into the range
            r = space.tpe[name]
            assert value == pytest.approx(min(max(float(getattr(fitted_as, name)), r.low), r.high))
