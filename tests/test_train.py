"""`python -m core.train` end to end: a run folder that stands alone, and the headline claim on MovieLens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.artifacts import load_run
from core.evaluate import evaluate
from core.train import main

EXPECTED_FILES = {
    "als_U.npy",
    "als_V.npy",
    "params.json",
    "metrics.json",
    "metadata.json",
    "mappings.json",
    "train.parquet",
    "valid.parquet",
    "test.parquet",
    "history.json",
}


def matrix_from_folder(frame: pd.DataFrame, mappings: dict[str, dict[str, int]]) -> sp.csr_matrix:
    """Rebuild a users x items matrix from a stored split part using only the folder's own mappings."""
    u = frame["user_id"].astype(str).map(mappings["user_to_idx"]).to_numpy()
    i = frame["item_id"].astype(str).map(mappings["item_to_idx"]).to_numpy()
    shape = (len(mappings["user_to_idx"]), len(mappings["item_to_idx"]))
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
    m.data[:] = 1
    return m


def recompute_test_metrics(path: Path) -> dict[str, float]:
    run = load_run(path)
    truth = matrix_from_folder(run.test, run.mappings)
    seen = matrix_from_folder(pd.concat([run.train, run.valid]), run.mappings)
    return evaluate(run.user_factors, run.item_factors, truth, seen, ks=(10, 20)).metrics


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "als"
    assert main(["--model", "als", "--preset", "sparse_data", "--out", str(out), "--no-progress"]) == 0
    return out


def test_run_folder_holds_every_artifact(synthetic_run: Path) -> None:
    assert {p.name for p in synthetic_run.iterdir()} == EXPECTED_FILES
    metadata = json.loads((synthetic_run / "metadata.json").read_text())
    assert metadata["synthetic"] is True
    assert "synthetic" in metadata["data_source"]
    assert set(metadata["score_range"]) == {
        "method",
        "min",
        "max",
        "mean",
        "std",
        "p01",
        "p99",
        "num_samples",
    }
    assert (
        metadata["segmentation"]["users_trainable"] + metadata["segmentation"]["users_cold_start"]
        == (metadata["segmentation"]["users_total"])
    )
    assert len(metadata["data_version_hash"]) == 16
    params = json.loads((synthetic_run / "params.json").read_text())
    assert params["regularization"] == 0.1 and params["alpha"] == 5.0  # the sparse_data preset


def test_metrics_recomputed_from_the_folder_alone_match(synthetic_run: Path) -> None:
    stored = json.loads((synthetic_run / "metrics.json").read_text())["test"]
    recomputed = recompute_test_metrics(synthetic_run)
    for name in ("ndcg@10", "recall@10", "hitrate@10", "ndcg@20", "recall@20", "coverage@10"):
        assert recomputed[name] == pytest.approx(stored[name], abs=1e-6), name


def test_held_out_parts_hold_only_relevant_items_in_original_ids(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    assert (run.valid["rating"] >= 4).all() and (run.test["rating"] >= 4).all()
    pairs = [set(zip(f["user_id"], f["item_id"], strict=True)) for f in (run.train, run.valid, run.test)]
    assert not (pairs[0] & pairs[1]) and not (pairs[0] & pairs[2]) and not (pairs[1] & pairs[2])
    assert set(run.test["user_id"]) <= set(run.mappings["user_to_idx"])


def test_an_existing_run_folder_is_never_overwritten(
    synthetic_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert main(["--model", "als", "--preset", "fast", "--out", str(out), "--no-progress"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "my notes"
    assert (
        main(["--model", "als", "--preset", "fast", "--out", str(out), "--overwrite", "--no-progress"]) == 0
    )
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("mine.previous-")]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "my notes"
    assert (out / "als_U.npy").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_bad_input_exits_2_with_the_file_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "log.csv"
    bad.write_text("user_id,item_id,rating\nu1,i1,5\nu2,i2,five\n")
    assert main(["--data", str(bad), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "log.csv" in err and "rating" in err and "five" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_own_split_files_with_an_unknown_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(f"u{u}", f"i{(u * 7 + k) % 30}", 5, 1000 + k) for u in range(40) for k in range(6)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    k = np.arange(len(frame)) % 6
    frame[k < 4].to_csv(tmp_path / "train.csv", index=False)
    frame[k == 4].to_csv(tmp_path / "valid.csv", index=False)
    test = frame[k == 5].copy()
    test.iloc[3, 0] = "stranger"  # line 5 of test.csv (line 1 is the header)
    test.to_csv(tmp_path / "test.csv", index=False)
    args = ["--train", str(tmp_path / "train.csv"), "--valid", str(tmp_path / "valid.csv")]
    args += ["--test", str(tmp_path / "test.csv"), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "test.csv" in err and "stranger" in err and "user_id" in err and "line 5" in err
    args[5] = str(tmp_path / "valid.csv")  # the validation file as test too: every user is known
    assert main(args) == 0


@pytest.mark.slow
def test_default_als_beats_popularity_on_movielens(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ml"
    assert (
        main(["--model", "als", "--data", str(data_dir / "ml-100k"), "--out", str(out), "--no-progress"]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    ndcg = metrics["vs_popularity"]["ndcg@10"]
    assert ndcg["improvement_pct"]["value"] >= 20.0
    assert ndcg["difference"]["low"] > 0.0
    recomputed = recompute_test_metrics(out)
    assert recomputed["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-6)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--k", "0", "--k values must be >= 1"),
        ("--eval-every", "0", "--eval-every must be >= 1"),
        ("--patience", "0", "--patience must be >= 1"),
        ("--valid-frac", "1.5", "--valid-frac must be in"),
        ("--min-interactions", "0", "--min-interactions must be >= 1"),
    ],
)
def test_bad_options_exit_2_before_any_work(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([flag, value, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_out_path_that_is_a_file_is_moved_aside_not_lost(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("my notes")
    assert (
        main(["--model", "als", "--preset", "fast", "--out", str(target), "--overwrite", "--no-progress"])
        == 0
    )
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.previous-")]
    assert len(kept) == 1 and kept[0].read_text() == "my notes"
    assert (target / "als_U.npy").is_file()
