"""`python -m core.train` end to end: a run folder that stands alone, and the headline claim on MovieLens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.artifacts import load_run
from core.errors import ConfigError
from core.evaluate import evaluate
from core.params import TORCH_FROM_DEFAULTS, parse_params
from core.prepare import Prepared
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--param", "alpha=abc"], "--param 'alpha=abc': alpha expects a number, but got 'abc'"),
        (["--param", "factors=64.5"], "--param 'factors=64.5': factors expects a whole number, but got 64.5"),
        (["--param", "iterations=true"], "iterations expects a number, but got True"),
        (["--param", "regularization=nan"], "regularization expects a finite number"),
        (["--param", "confidence=loud"], "confidence must be one of"),
        (["--param", "alhpa=5"], "--param 'alhpa=5': als has no parameter 'alhpa'; known: ["),
        (["--model", "bpr", "--param", "alpha=5"], "bpr has no parameter 'alpha'"),
        (["--model", "bpr", "--param", "confidence=binary"], "bpr has no parameter 'confidence'"),
        (["--param", "alpha"], "--param expects key=value, but got 'alpha'"),
        (["--preset", "turbo"], "unknown ALS preset 'turbo'; choose one of"),
        (["--model", "bpr", "--preset", "fast"], "--preset applies to ALS only"),
    ],
)
def test_bad_params_and_presets_exit_2_with_one_line_before_any_data_is_loaded(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was loaded before the arguments were checked")

    monkeypatch.setattr("core.prepare.load_data", never)
    monkeypatch.setattr("core.prepare.load", never)
    missing = tmp_path / "no-such-log.csv"
    assert main([*argv, "--data", str(missing), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert "no-such-log" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_good_params_are_parsed_to_the_estimators_types() -> None:
    assert parse_params("als", ["factors=1e2", "alpha=5", "regularization=0.5", "confidence=binary"]) == {
        "factors": 100,
        "alpha": 5,
        "regularization": 0.5,
        "confidence": "binary",
    }
    assert parse_params("bpr", ["random_state=7", "hard_ratio=0", "show_progress=false"]) == {
        "random_state": 7,
        "hard_ratio": 0,
        "show_progress": False,
    }
    assert isinstance(parse_params("als", ["factors=1e2"])["factors"], int)


# ---------------------------------------------------------------------------------------------- defaults
@pytest.fixture(scope="module")
def small_prepared() -> Prepared:
    from core.prepare import prepare
    from core.synthetic import make_synthetic

    return prepare(make_synthetic(n_users=1500, n_items=200, seed=3))


def test_without_a_preset_the_defaults_come_from_the_training_data(small_prepared: Prepared) -> None:
    from core.als import preset_params
    from core.defaults import als_defaults, bpr_defaults, data_stats
    from core.params import default_params

    train = small_prepared.split.train
    stats = data_stats(train, confidence_mode="rating_quality")
    assert default_params("als", None, small_prepared) == als_defaults(stats)
    assert default_params("bpr", None, small_prepared) == bpr_defaults(stats)
    assert default_params("bpr", None, small_prepared)["hard_ratio"] == 0.0
    binary = default_params("als", None, small_prepared, confidence_mode="binary")
    assert binary["alpha"] == 39.0  # mean confidence 1: an observed cell weighs 1 + 39 = 40
    assert default_params("als", "fast", small_prepared) == preset_params("fast")
    with pytest.raises(ConfigError, match="--preset applies to ALS only"):
        default_params("bpr", "fast", small_prepared)


def test_the_torch_trainer_takes_the_datas_shape_and_l2_but_not_the_kernels_rates(
    small_prepared: Prepared,
) -> None:
    from core.params import default_params

    kernel = default_params("bpr", None, small_prepared)
    torch = default_params("bpr", None, small_prepared, trainer="torch")
    assert torch == {name: kernel[name] for name in TORCH_FROM_DEFAULTS}
    assert torch["regularization"] == kernel["regularization"] > 0  # the same per-triplet penalty
    assert "learning_rate" not in torch and "lr_decay" not in torch  # SGD's, not an adaptive optimizer's


def test_als_positives_all_or_liked(small_prepared: Prepared) -> None:
    from core.confidence import confidence
    from core.fit import training_matrix

    part = small_prepared.split.train
    liked = part.positive_mask(4.0)
    assert 0 < liked.sum() < len(part)  # the synthetic log has some 1-3 star ratings
    every = training_matrix(part, "als", confidence_mode="rating", positive_threshold=4.0)
    only = training_matrix(part, "als", confidence_mode="rating", positive_threshold=4.0, positives="liked")
    assert every.nnz == len(part) and only.nnz == int(liked.sum())
    assert only.data.min() >= 4.0 and every.data.min() < 4.0
    np.testing.assert_array_equal(every.sum(), confidence(part, "rating").sum())
    bpr = training_matrix(part, "bpr", confidence_mode=None, positive_threshold=4.0)
    assert (bpr != (only > 0)).nnz == 0  # BPR's positives are ALS's liked cells, as ones


def test_an_unknown_positives_value_is_a_config_error(small_prepared: Prepared) -> None:
    from core.fit import fit_model

    with pytest.raises(
        ConfigError, match=r"positives must be one of \('all', 'liked'\), but got positives='some'"
    ):
        fit_model(small_prepared, "als", {"factors": 4, "iterations": 1, "positives": "some"})


def test_fits_on_train_derive_each_matrix_once_and_each_gets_its_own_copy(small_prepared: Prepared) -> None:
    from core.fit import fit_model
    from core.prepare import prepare

    params = {"factors": 4, "epochs": 2, "hard_ratio": 0.3, "num_threads": 1, "random_state": 0}
    fresh = prepare(small_prepared.data)
    first = fit_model(fresh, "bpr", params)
    assert set(fresh.derived) == {("matrix", "bpr", None, None), ("hard",)}
    held = {k: m.copy() for k, m in fresh.derived.items()}
    fresh.on_train(("hard",), lambda: held[("hard",)]).data[:] = 0  # a caller spoiling its copy
    again = fit_model(fresh, "bpr", params)
    for key, m in fresh.derived.items():
        assert (m != held[key]).nnz == 0
    np.testing.assert_array_equal(first.item_factors_, again.item_factors_)
    uncached = fit_model(prepare(fresh.data), "bpr", params)
    np.testing.assert_array_equal(first.item_factors_, uncached.item_factors_)


def test_users_with_nothing_to_learn_from_get_the_average_user() -> None:
    from core.fit import average_user_for_empty_rows

    factors = np.array([[1.0, 2.0], [9.0, 9.0], [3.0, 4.0]])
    matrix = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 1]], dtype=np.float32))
    filled = average_user_for_empty_rows(factors, matrix)
    np.testing.assert_array_equal(filled, [[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    assert factors[1, 0] == 9.0  # the input is not modified
    empty = sp.csr_matrix((3, 2), dtype=np.float32)
    np.testing.assert_array_equal(average_user_for_empty_rows(factors, empty), factors)  # nobody to average


def test_default_bpr_run_records_the_data_driven_settings(tmp_path: Path) -> None:
    out = tmp_path / "bpr"
    assert main(["--model", "bpr", "--out", str(out), "--no-progress"]) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["hard_ratio"] == 0.0 and params["factors"] == 256 and params["item_bias"] is True
    assert params["lr_decay"] == 0.8


@pytest.mark.slow
def test_default_bpr_beats_popularity_on_movielens(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ml-bpr"
    args = ["--model", "bpr", "--data", str(data_dir / "ml-100k"), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    ndcg = json.loads((out / "metrics.json").read_text())["vs_popularity"]["ndcg@10"]
    assert ndcg["improvement_pct"]["value"] >= 20.0
    assert ndcg["difference"]["low"] > 0.0
