"""ALS wrapper: presets, parameter checks, the per-iteration callback, early stop, checkpoints and resume,
item-factor initialisation, and the configuration suggested from the data's shape."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from core.als import ALS, PRESETS, recommend_config_for_data
from core.callbacks import TrainingStep
from core.errors import ConfigError, ModelFitError, StopTraining

N_USERS, N_ITEMS = 60, 40


def _matrix(seed: int = 0) -> sp.csr_matrix:
    """60 x 40, ~15% filled with confidences 1..6."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((N_USERS, N_ITEMS)) < 0.15) * rng.integers(1, 7, size=(N_USERS, N_ITEMS))
    return sp.csr_matrix(dense.astype(np.float32))


def _als(**overrides: object) -> ALS:
    params: dict[str, object] = {
        "factors": 8,
        "regularization": 0.05,
        "alpha": 2.0,
        "iterations": 6,
        "num_threads": 1,
        "show_progress": False,
    }
    params.update(overrides)
    return ALS(**params)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- presets
def test_the_five_presets() -> None:
    table = {name: (p.factors, p.regularization, p.alpha, p.iterations) for name, p in PRESETS.items()}
    assert table == {
        "default": (64, 0.01, 10.0, 15),
        "normalized": (64, 0.01, 40.0, 15),
        "high_quality": (128, 0.05, 10.0, 20),
        "fast": (32, 0.01, 10.0, 10),
        "sparse_data": (64, 0.1, 5.0, 15),
    }


def test_from_preset_with_overrides() -> None:
    model = ALS.from_preset("fast", iterations=3, show_progress=False)
    assert model.get_params() == {
        "factors": 32,
        "regularization": 0.01,
        "alpha": 10.0,
        "iterations": 3,
        "random_state": 42,
        "num_threads": 0,
        "calculate_training_loss": False,
    }


def test_unknown_preset_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown ALS preset 'quick'.*'fast'"):
        ALS.from_preset("quick")


# ---------------------------------------------------------------------------------------------- checks
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"factors": 0}, "factors must be a positive integer"),
        ({"factors": 8.0}, "factors must be a positive integer"),
        ({"regularization": -0.01}, "regularization must be >= 0"),
        ({"regularization": float("nan")}, "regularization must be >= 0"),
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"num_threads": -1}, "num_threads must be >= 0"),
    ],
)
def test_bad_parameters_are_config_errors_naming_the_value(params: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _als(**params).fit(_matrix())


def test_edges_of_the_parameters_are_accepted() -> None:
    model = _als(factors=1, regularization=0.0, iterations=1).fit(_matrix())
    assert model.user_factors_.shape == (N_USERS, 1)


def test_checkpoint_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checkpoint_every must be >= 0"):
        _als().fit(_matrix(), checkpoint_every=-1, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="needs a checkpoint_dir"):
        _als().fit(_matrix(), checkpoint_every=2)


def test_nan_in_the_matrix_is_a_model_fit_error() -> None:
    m = _matrix()
    m.data[0] = np.nan
    with pytest.raises(ModelFitError, match="NaN"):
        _als().fit(m)


# ---------------------------------------------------------------------------------------------- fitting
def test_fit_learns_factors_and_returns_self() -> None:
    model = _als()
    assert model.fit(_matrix()) is model
    assert model.user_factors_.shape == (N_USERS, 8)
    assert model.item_factors_.shape == (N_ITEMS, 8)
    assert model.n_iterations_ == 6
    assert model.history_.steps == [1, 2, 3, 4, 5, 6]
    assert model.stopped_early_ is None
    # observed cells score higher than unobserved ones on average: the model learned something
    scores = model.user_factors_ @ model.item_factors_.T
    observed = _matrix().toarray() > 0
    assert scores[observed].mean() > scores[~observed].mean() + 0.1


def test_same_seed_same_factors() -> None:
    a = _als().fit(_matrix())
    b = _als().fit(_matrix())
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    c = _als(random_state=7).fit(_matrix())
    assert not np.allclose(a.user_factors_, c.user_factors_)


def test_callback_sees_every_iteration() -> None:
    steps: list[TrainingStep] = []
    _als(calculate_training_loss=True).fit(_matrix(), callback=steps.append)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(s.loss, float) for s in steps)
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(steps))
    assert steps[0].user_factors.shape == (N_USERS, 8)


def test_several_callbacks_run_in_order() -> None:
    calls: list[tuple[str, int]] = []
    _als(iterations=2).fit(
        _matrix(), callback=[lambda s: calls.append(("a", s.step)), lambda s: calls.append(("b", s.step))]
    )
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_stop_training_ends_early_and_keeps_that_iterations_factors() -> None:
    kept: dict[str, np.ndarray] = {}

    def stop_at_three(step: TrainingStep) -> None:
        if step.step == 3:
            kept["U"], kept["V"] = step.user_factors.copy(), step.item_factors.copy()
            raise StopTraining("enough")

    model = _als().fit(_matrix(), callback=stop_at_three)
    assert model.n_iterations_ == 3
    assert model.stopped_early_ == "enough"
    assert model.history_.steps == [1, 2, 3]
    np.testing.assert_array_equal(model.user_factors_, kept["U"])
    np.testing.assert_array_equal(model.item_factors_, kept["V"])
    # the same as a fit that was asked for 3 iterations
    three = _als(iterations=3).fit(_matrix())
    np.testing.assert_array_equal(model.user_factors_, three.user_factors_)


def test_other_exceptions_from_a_callback_propagate() -> None:
    class Pruned(Exception):
        pass

    def prune(step: TrainingStep) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        _als().fit(_matrix(), callback=prune)


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checkpoints_are_written_every_n_iterations(tmp_path: Path) -> None:
    _als(iterations=5).fit(_matrix(), checkpoint_dir=tmp_path, checkpoint_every=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "als_checkpoint_0002.npz",
        "als_checkpoint_0004.npz",
    ]
    with np.load(tmp_path / "als_checkpoint_0004.npz") as ckpt:
        assert int(ckpt["iteration"]) == 4
        assert ckpt["user_factors"].shape == (N_USERS, 8)


def test_resume_gives_the_same_factors_as_an_uninterrupted_fit(tmp_path: Path) -> None:
    whole = _als().fit(_matrix())

    def crash_after_four(step: TrainingStep) -> None:
        if step.step == 4:
            raise StopTraining("interrupted")

    _als().fit(_matrix(), callback=crash_after_four, checkpoint_dir=tmp_path, checkpoint_every=2)
    resumed = _als().fit(_matrix(), resume_from=tmp_path)  # the folder: its latest checkpoint (step 4)
    assert resumed.history_.steps == [1, 2, 3, 4, 5, 6]
    assert resumed.n_iterations_ == 6
    np.testing.assert_array_equal(resumed.user_factors_, whole.user_factors_)
    np.testing.assert_array_equal(resumed.item_factors_, whole.item_factors_)

    from_two = _als().fit(_matrix(), resume_from=tmp_path / "als_checkpoint_0002.npz")
    np.testing.assert_array_equal(from_two.user_factors_, whole.user_factors_)


def test_resume_from_a_finished_checkpoint_runs_nothing(tmp_path: Path) -> None:
    done = _als(iterations=4).fit(_matrix(), checkpoint_dir=tmp_path, checkpoint_every=4)
    again = _als(iterations=4).fit(_matrix(), resume_from=tmp_path)
    assert again.n_iterations_ == 4
    np.testing.assert_array_equal(again.user_factors_, done.user_factors_)


def test_resume_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ALS checkpoint"):
        _als().fit(_matrix(), resume_from=tmp_path)
    _als(iterations=2).fit(_matrix(), checkpoint_dir=tmp_path, checkpoint_every=2)
    with pytest.raises(ConfigError, match="do not fit"):
        _als(factors=4).fit(_matrix(), resume_from=tmp_path)


# ---------------------------------------------------------------------------------------------- init
def test_item_factors_init_is_projected_and_reports_explained_variance() -> None:
    # singular values 3, 2, 1: the first 2 directions explain (9 + 4) / (9 + 4 + 1) = 13 / 14
    emb = np.zeros((N_ITEMS, 3))
    emb[0, 0], emb[1, 1], emb[2, 2] = 3.0, 2.0, 1.0
    model = _als(factors=2, iterations=1).fit(_matrix(), item_factors_init=emb)
    assert model.init_explained_variance_ == pytest.approx(13 / 14)
    full = _als(factors=8, iterations=1).fit(_matrix(), item_factors_init=emb)
    assert full.init_explained_variance_ == pytest.approx(1.0)  # 3 dims fit into 8
    plain = _als(factors=8, iterations=1).fit(_matrix())
    assert plain.init_explained_variance_ is None
    assert not np.allclose(full.user_factors_, plain.user_factors_)  # the start changed the fit


def test_item_factors_init_with_the_wrong_rows_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="39 rows but the matrix has 40 items"):
        _als().fit(_matrix(), item_factors_init=np.ones((N_ITEMS - 1, 5)))


# ---------------------------------------------------------------------------------------------- suggestion
def test_few_interactions_per_user_suggest_sparse_data() -> None:
    cfg = recommend_config_for_data(1000, 500, 3000)  # 3 per user
    assert cfg["preset"] == "sparse_data"
    assert (cfg["factors"], cfg["regularization"], cfg["iterations"]) == (64, 0.1, 15)
    assert cfg["alpha"] == 5.0  # min(preset 5, recommended 10 for 1-6 confidence)
    assert cfg["reason"].startswith("3.0 interactions per user")


def test_moderate_data_suggests_default_with_the_recommended_alpha() -> None:
    cfg = recommend_config_for_data(100, 200, 2000)  # 20 per user
    assert (cfg["preset"], cfg["alpha"]) == ("default", 10.0)
    cfg = recommend_config_for_data(100, 200, 2000, confidence_range=(0.0, 1.0))
    assert cfg["alpha"] == 40.0


def test_dense_users_in_a_large_catalogue_suggest_high_quality() -> None:
    cfg = recommend_config_for_data(100, 6000, 6000)  # 60 per user, 6000 items
    assert (cfg["preset"], cfg["factors"]) == ("high_quality", 128)
    assert recommend_config_for_data(100, 5000, 6000)["preset"] == "default"  # 5000 items is not > 5000


def test_suggestion_needs_positive_sizes() -> None:
    with pytest.raises(ConfigError, match="positive sizes"):
        recommend_config_for_data(0, 10, 10)
