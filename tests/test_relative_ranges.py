"""A ``relative`` range is a range of multiples of the data-driven default, made absolute once per study on
its training data: printed, recorded with the study, the same for every worker and resume, and every trial
(the starting points included) inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from core.errors import ConfigError
from search.factories import data_default, starting_points
from search.run import run_study
from search.settings import StudySettings
from spaces import parse_space, ranges_note, relative_ranges, resolve_ranges

SPACE: dict[str, Any] = {
    "model": "als",
    "tpe": {
        "factors": {"type": "int", "relative": [0.25, 2], "log": True},
        "alpha": {"type": "float", "relative": [0.1, 10], "log": True},
        "iterations": {"type": "int", "low": 2, "high": 4},
    },
    "start": [{"alpha": 1000.0, "iterations": 3}],
}


def test_relative_bounds_are_the_multiples_of_the_default() -> None:
    space, resolved = resolve_ranges(parse_space(SPACE), {"factors": 10, "alpha": 3.14159, "iterations": 15})
    assert (space.tpe["alpha"].low, space.tpe["alpha"].high) == (0.314, 31.4)  # 3 significant digits
    assert (space.tpe["factors"].low, space.tpe["factors"].high) == (2.0, 20.0)  # floor(2.5), ceil(20)
    assert (space.tpe["iterations"].low, space.tpe["iterations"].high) == (2.0, 4.0)  # absolute: as written
    assert resolved["alpha"] == {
        "default": 3.14159,
        "times_low": 0.1,
        "times_high": 10.0,
        "low": 0.314,
        "high": 31.4,
    }
    assert relative_ranges(space) == {"factors": [2.0, 20.0], "alpha": [0.314, 31.4]}
    assert ranges_note(resolved) == (
        "ranges from the data: factors 2..20 (0.25x-2x the default 10), alpha 0.314..31.4 (0.1x-10x the "
        "default 3.14)"
    )
    assert ranges_note({}) is None


def test_int_bounds_stay_whole_positive_and_apart() -> None:
    space, _ = resolve_ranges(parse_space(SPACE), {"factors": 1, "alpha": 1.0})
    assert (space.tpe["factors"].low, space.tpe["factors"].high) == (1.0, 2.0)


def test_a_start_point_is_clipped_into_the_resolved_range() -> None:
    space, _ = resolve_ranges(parse_space(SPACE), {"factors": 10, "alpha": 2.0})
    assert starting_points(space, None) == [{"alpha": 20.0, "iterations": 3}]


def test_a_relative_range_without_a_default_to_scale_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"my\.yaml: tpe\.alpha: a relative range needs a positive"):
        resolve_ranges(parse_space(SPACE, source="my.yaml"), {"factors": 10})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float", "relative": [0.1, 10], "low": 1}, "relative replaces low and high"),
        ({"type": "float", "relative": [10, 0.1]}, r"tpe\.alpha\.relative: must be \[a, b\] with 0 < a < b"),
        ({"type": "float", "relative": [0, 1]}, "0 < a < b"),
        ({"type": "float", "relative": 3}, "0 < a < b"),
        ({"type": "float", "relative": [True, 2]}, "0 < a < b"),
        ({"type": "categorical", "relative": [1, 2], "choices": [1]}, "no relative range"),
    ],
)
def test_malformed_relative_ranges_name_the_key(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_space({"model": "als", "tpe": {"alpha": spec}}, source="my.yaml")


def test_a_study_resolves_records_and_keeps_its_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "als.yaml"
    space.write_text(
        "model: als\nfixed: {iterations: 2, factors: 8}\n"
        "tpe:\n  alpha: {type: float, relative: [0.5, 2], log: true}\n"
        "  regularization: {type: float, relative: [0.1, 10], log: true}\n"
    )
    s = StudySettings(
        model="als",
        sampler="tpe",
        trials=4,
        space=str(space),
        storage=f"sqlite:///{tmp_path}/optuna.db",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        report=False,
        register=False,
    )
    record = run_study(s)
    default = data_default("als", s.data.prepare())
    bounds = {
        "alpha": [float(f"{default['alpha'] * 0.5:.3g}"), float(f"{default['alpha'] * 2:.3g}")],
        "regularization": [
            float(f"{default['regularization'] * 0.1:.3g}"),
            float(f"{default['regularization'] * 10:.3g}"),
        ],
    }
    assert (
        f"ranges from the data: alpha {bounds['alpha'][0]:g}..{bounds['alpha'][1]:g}"
        in capsys.readouterr().out
    )
    study = optuna.load_study(study_name=record.study_name, storage=s.storage_url)
    assert study.user_attrs["ranges"] == bounds
    assert study.trials[0].params == {"alpha": default["alpha"], "regularization": default["regularization"]}
    for t in study.trials:
        for name, (low, high) in bounds.items():
            assert low <= t.params[name] <= high, (t.number, name)
    # a resume on the same data resolves the same ranges: the study's fingerprint accepts it
    again = run_study(StudySettings(**{**s.__dict__, "trials": 6, "quiet": True}))
    assert again.study_name == record.study_name
    assert len(optuna.load_study(study_name=record.study_name, storage=s.storage_url).trials) == 6
