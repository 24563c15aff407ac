"""The one artifact writer: atomic files, run folders that are never half-written, never silently replaced,
and read back exactly."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import artifacts
from core.artifacts import (
    RunFolderExists,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    load_run,
    save_run,
)
from core.errors import CftuneError

RUN_FILES = {
    "als_U.npy",
    "als_V.npy",
    "params.json",
    "metrics.json",
    "metadata.json",
    "mappings.json",
    "train.parquet",
    "valid.parquet",
    "test.parquet",
}


def _run(**overrides: Any) -> dict[str, Any]:
    """A tiny complete run: users 10, 20 (ints), items 'x', 'y', 'z'."""
    frame = pd.DataFrame({"user_id": [10, 20], "item_id": ["x", "z"], "rating": [5.0, 4.0]})
    run: dict[str, Any] = {
        "model": "als",
        "user_factors": np.arange(4, dtype=np.float32).reshape(2, 2),
        "item_factors": np.arange(6, dtype=np.float32).reshape(3, 2) / 10,
        "params": {"factors": 2, "alpha": np.float64(10.0)},
        "metrics": {"ndcg@10": 0.25, "users": np.int64(2)},
        "metadata": {"dataset": "tiny"},
        "users": pd.Index([10, 20]),
        "items": pd.Index(["x", "y", "z"]),
        "train": frame,
        "valid": frame.iloc[:1],
        "test": frame.iloc[1:],
    }
    run.update(overrides)
    return run


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ---------------------------------------------------------------------------------------------- atomic files
def test_atomic_write_creates_parents_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "blob.bin"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert _names(target.parent) == {"blob.bin"}


def test_failed_atomic_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == {"blob.bin"}


def test_atomic_json_converts_numpy_scalars_and_paths(tmp_path: Path) -> None:
    atomic_write_json(
        tmp_path / "x.json", {"n": np.int32(3), "f": np.float32(0.5), "a": np.array([1, 2]), "p": Path("/d")}
    )
    assert json.loads((tmp_path / "x.json").read_text()) == {"n": 3, "f": 0.5, "a": [1, 2], "p": "/d"}


def test_atomic_json_refuses_unknown_objects_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        atomic_write_json(tmp_path / "x.json", {"o": object()})
    assert _names(tmp_path) == set()


def test_atomic_npz_round_trip(tmp_path: Path) -> None:
    atomic_write_npz(tmp_path / "c.npz", a=np.array([1.5, 2.5]), step=np.array(4))
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_array_equal(z["a"], [1.5, 2.5])
        assert int(z["step"]) == 4


# ---------------------------------------------------------------------------------------------- save_run
def test_save_run_writes_the_complete_folder(tmp_path: Path) -> None:
    out = save_run(tmp_path / "run", **_run(), extra_json={"history.json": {"steps": [1, 2]}})
    assert out == tmp_path / "run"
    assert _names(out) == RUN_FILES | {"history.json"}
    assert _names(tmp_path) == {"run"}  # no temporary folder left beside it


def test_load_run_round_trip(tmp_path: Path) -> None:
    run = _run()
    loaded = load_run(save_run(tmp_path / "run", **run))
    assert loaded.model == "als"
    np.testing.assert_array_equal(loaded.user_factors, run["user_factors"])
    np.testing.assert_array_equal(loaded.item_factors, run["item_factors"])
    assert loaded.params == {"factors": 2, "alpha": 10.0}
    assert loaded.metrics == {"ndcg@10": 0.25, "users": 2}
    assert loaded.metadata == {"model": "als", "dataset": "tiny"}
    # ids are stored as strings, the same keys in mappings and in the split frames, with their type beside
    assert loaded.mappings == {
        "user_to_idx": {"10": 0, "20": 1},
        "item_to_idx": {"x": 0, "y": 1, "z": 2},
        "id_types": {"user_id": "int", "item_id": "str"},
    }
    # ... and come back as the original ids
    assert loaded.users.tolist() == [10, 20] and loaded.items.tolist() == ["x", "y", "z"]
    assert loaded.train["user_id"].tolist() == [10, 20]
    assert loaded.train["rating"].tolist() == [5.0, 4.0]
    assert loaded.valid["item_id"].tolist() == ["x"]
    assert loaded.test["item_id"].tolist() == ["z"]


def test_save_run_into_an_existing_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    save_run(tmp_path / "run", **_run())
    assert _names(tmp_path) == {"run"}
    assert _names(tmp_path / "run") == RUN_FILES


def test_save_run_refuses_a_non_empty_folder_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderExists, match="exists and is not empty"):
        save_run(out, **_run())
    assert _names(out) == {"notes.txt"}
    assert _names(tmp_path) == {"run"}


def test_overwrite_moves_the_old_folder_aside(tmp_path: Path) -> None:
    out = tmp_path / "run"
    save_run(out, **_run(metrics={"ndcg@10": 0.1}))
    save_run(out, **_run(metrics={"ndcg@10": 0.2}), overwrite=True)
    previous = [p for p in tmp_path.iterdir() if p.name.startswith("run.previous-")]
    assert len(previous) == 1
    assert load_run(previous[0]).metrics == {"ndcg@10": 0.1}
    assert load_run(out).metrics == {"ndcg@10": 0.2}
    assert len(list(tmp_path.iterdir())) == 2  # run and run.previous-<time>, no temporary folder


def test_overwriting_twice_in_a_row_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three saves with overwrite, as a quick re-run loop does: every earlier run must be kept somewhere.
    # Regression guard: the aside name has one-second resolution (run.previous-%Y%m%d-%H%M%S); a second move
    # within the same second used to hit the existing non-empty folder and fail with OSError (ENOTEMPTY).
    monkeypatch.setattr(artifacts.time, "strftime", lambda fmt: "20250101-120000")  # all within one second
    out = tmp_path / "run"
    for value in (0.1, 0.2, 0.3):
        save_run(out, **_run(metrics={"ndcg@10": value}), overwrite=True)
    kept = sorted(load_run(p).metrics["ndcg@10"] for p in tmp_path.iterdir())
    assert kept == [0.1, 0.2, 0.3]


def test_a_failed_save_leaves_no_temp_folder_and_the_old_run_intact(tmp_path: Path) -> None:
    out = tmp_path / "run"
    save_run(out, **_run(metrics={"ndcg@10": 0.1}))
    with pytest.raises(TypeError, match="not JSON serialisable"):
        save_run(out, **_run(metrics={"bad": object()}), overwrite=True)
    assert _names(tmp_path) == {"run"}
    assert load_run(out).metrics == {"ndcg@10": 0.1}


def test_a_failed_first_save_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_run(tmp_path / "run", **_run(params={"bad": object()}))
    assert _names(tmp_path) == set()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"model": "svd"}, "model must be one of"),
        ({"user_factors": np.zeros((3, 2))}, "factor rows must match"),
        ({"item_factors": np.zeros((2, 2))}, "factor rows must match"),
    ],
)
def test_save_run_checks_its_arguments(tmp_path: Path, overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        save_run(tmp_path / "run", **_run(**overrides))
    assert _names(tmp_path) == set()


def test_load_run_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(CftuneError, match="not a cftune run folder"):
        load_run(tmp_path)


def test_run_folders_follow_the_umask_not_mkstemps_private_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = save_run(tmp_path / "run", **_run())
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "params.json").stat().st_mode) == 0o644
