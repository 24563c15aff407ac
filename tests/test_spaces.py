"""Search spaces: the seed's grids, TPE ranges, and clear errors for every malformed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from search.factories import choose_sampler
from search.settings import StudySettings
from spaces import load_space, parse_space


def test_the_seed_grids_have_81_and_162_points() -> None:
    als, bpr = load_space("als"), load_space("bpr")
    assert als.grid_size == 81
    assert als.grid["factors"] == [32, 64, 128] and als.grid["alpha"] == [5, 10, 20]
    assert als.grid["regularization"] == [0.01, 0.05, 0.1] and als.grid["iterations"] == [10, 15, 20]
    assert bpr.grid_size == 162
    assert bpr.grid["learning_rate"] == [0.01, 0.05, 0.1] and bpr.grid["epochs"] == [30, 50]
    assert bpr.grid["regularization"] == [1e-5, 1e-4, 1e-3] and bpr.grid["hard_ratio"] == [0.2, 0.3, 0.4]


def test_the_tpe_space_reaches_beyond_the_grid() -> None:
    from core.prepare import DataOptions
    from search.factories import study_space

    shipped = load_space("als")
    assert shipped.tpe["regularization"].relative is not None  # multiples of the data-driven default
    space, ranges, _ = study_space("als", shipped, "tpe", DataOptions().prepare())
    tpe = space.tpe
    assert tpe["regularization"].log and tpe["regularization"].high >= 100  # type: ignore[operator]
    assert tpe["alpha"].low <= 0.1 and tpe["alpha"].high >= 20  # type: ignore[operator]
    assert set(ranges) == {"regularization", "alpha"}
    assert tpe["confidence"].type == "categorical" and "binary" in tpe["confidence"].choices


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("model: als\ngrid:\n  factor: [32]\n", r"grid\.factor: unknown parameter; known for als"),
        ("model: als\ngrid:\n  factors: []\n", r"grid\.factors: needs a non-empty list"),
        ("model: als\ntpe:\n  alpha: {type: float, low: 5, high: 1}\n", r"tpe\.alpha: low must be < high"),
        (
            "model: als\ntpe:\n  alpha: {type: float, low: 0, high: 1, log: true}\n",
            r"log scale needs low > 0",
        ),
        ("model: als\ntpe:\n  confidence: {type: categorical, choices: []}\n", "non-empty list of choices"),
        ("model: als\ntpe:\n  factors: {type: integer, low: 1, high: 9}\n", "type must be one of"),
        ("model: als\ntpe:\n  factors: {type: int, low: 1.5, high: 9}\n", "whole bounds"),
        ("model: knn\ngrid:\n  factors: [1]\n", r"model: must be 'als' or 'bpr'"),
        ("model: als\ngird:\n  factors: [1]\n", r"unknown keys \['gird'\]"),
        ("model: als\n", "needs a grid, a tpe block, or both"),
        ("model: bpr\ngrid:\n  alpha: [1]\n", r"grid\.alpha: unknown parameter; known for bpr"),
        ("model: als\nfixed: {alpha: 1}\ngrid:\n  alpha: [1, 2]\n", r"fixed\.alpha: is also searched"),
    ],
)
def test_malformed_spaces_name_the_file_and_the_key(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as err:
        load_space(path.read_text().split("\n")[0].split(": ")[1], path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "model: als\ntpe:\n  regularization: {type: float, low: 1e-4, high: 1000.0, log: true}\n",
            r"tpe\.regularization\.low: '1e-4' is a string; write 1\.0e-4$",
        ),
        (
            "model: als\ntpe:\n  alpha: {type: float, low: 0.5, high: 5E1}\n",
            r"tpe\.alpha\.high: '5E1' is a string; write 5\.0e\+1$",
        ),
        (
            "model: als\ntpe:\n  alpha: {type: float, low: 0.5, high: 50, step: '0.5'}\n",
            r"tpe\.alpha\.step: '0\.5' is a string; write 0\.5$",
        ),
        ("model: als\ngrid:\n  regularization: [0.01, 1e-3]\n", r"grid\.regularization: '1e-3' is a string"),
        (
            "model: bpr\nfixed: {regularization: 1e-5}\ngrid:\n  factors: [8]\n",
            r"fixed\.regularization: '1e-5'",
        ),
        (
            "model: als\ntpe:\n  factors: {type: categorical, choices: [32, 1e2]}\n",
            r"tpe\.factors\.choices: '1e2' is a string; write 1\.0e\+2$",
        ),
        ("model: als\ngrid:\n  alpha: [1, abc]\n", r"grid\.alpha: expects a number, got 'abc'"),
        ("model: als\ngrid:\n  factors: [32, 64.5]\n", r"grid\.factors: expects a whole number, got 64\.5"),
        (
            "model: als\ntpe:\n  alpha: {type: float, high: 5}\n",
            r"tpe\.alpha\.low: expects a number, got None",
        ),
    ],
)
def test_a_number_yaml_reads_as_a_string_is_an_error_naming_file_and_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as err:
        load_space(body.split("\n")[0].split(": ")[1], path)
    assert str(err.value).startswith(f"{path}: ")


def test_categorical_string_values_stay_strings(tmp_path: Path) -> None:
    body = (
        "model: als\ngrid:\n  confidence: [rating_quality, binary]\n  regularization: [1.0e-4, 0.01]\n"
        "tpe:\n  confidence: {type: categorical, choices: [rating, binary]}\n"
    )
    space = load_space("als", write(tmp_path, body))
    assert space.grid["confidence"] == ["rating_quality", "binary"]
    assert space.grid["regularization"] == [1e-4, 0.01]
    assert space.tpe["confidence"].choices == ("rating", "binary")


def test_a_space_for_the_other_model_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "model: bpr\ngrid:\n  factors: [8]\n")
    with pytest.raises(ConfigError, match="this space is for 'bpr', but the study is for 'als'"):
        load_space("als", path)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space("als", write(tmp_path, "model: als\ngrid: [unclosed\n"))
    with pytest.raises(ConfigError, match="search space file not found"):
        load_space("als", tmp_path / "nope.yaml")


def test_a_users_own_space(tmp_path: Path) -> None:
    path = write(tmp_path, "model: als\nfixed: {iterations: 3}\ngrid:\n  factors: [8, 16]\n  alpha: [1.0]\n")
    space = load_space("als", path)
    assert space.grid_size == 2 and space.fixed == {"iterations": 3} and not space.tpe


def test_sampler_choice_follows_trials_and_grid_size() -> None:
    space = parse_space(
        {
            "model": "als",
            "grid": {"factors": [8, 16, 32]},
            "tpe": {"alpha": {"type": "float", "low": 1, "high": 2}},
        }
    )
    assert choose_sampler(space, StudySettings(model="als"))[:2] == ("grid", 3)
    name, trials, why = choose_sampler(space, StudySettings(model="als", trials=2))
    assert (name, trials) == ("tpe", 2) and "below the grid size 3" in why
    assert choose_sampler(space, StudySettings(model="als", trials=2, sampler="grid"))[:2] == ("grid", 2)
    assert choose_sampler(space, StudySettings(model="als", trials=50, sampler="grid"))[:2] == ("grid", 3)
    assert choose_sampler(space, StudySettings(model="als", trials=50, sampler="tpe"))[:2] == ("tpe", 50)
    with pytest.raises(ConfigError, match="--trials must be >= 1"):
        choose_sampler(space, StudySettings(model="als", trials=0))
