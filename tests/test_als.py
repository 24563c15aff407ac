"""ALS wrapper: presets, parameter checks, the per-iteration callback, early stop, checkpoints and resume,
item-factor initialisation, and the weights implicit receives: 1 + alpha * confidence on observed cells."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from core.als import ALS, PRESETS, confidence_weights, preset_params
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


# ---------------------------------------------------------------------------------------------- weights
def test_an_observed_cell_weighs_1_plus_alpha_times_confidence() -> None:
    conf = sp.csr_matrix(np.array([[2.0, 0.0, 0.5], [0.0, 6.0, 0.0]], dtype=np.float32))
    w = confidence_weights(conf, alpha=0.05)
    np.testing.assert_allclose(w.toarray(), [[1.1, 0.0, 1.025], [0.0, 1.3, 0.0]], rtol=1e-6)
    assert w.nnz == 3  # a missing cell stays missing: implicit weighs it 1 with preference 0
    np.testing.assert_array_equal(conf.data, [2.0, 0.5, 6.0])  # the caller's matrix is not touched


def test_a_stored_zero_stays_unobserved_and_a_negative_confidence_is_refused() -> None:
    conf = sp.csr_matrix((np.array([0.0, 3.0], dtype=np.float32), ([0, 1], [0, 1])), shape=(2, 2))
    assert confidence_weights(conf, alpha=1.0).nnz == 1
    with pytest.raises(ConfigError, match="confidence must be >= 0"):
        confidence_weights(sp.csr_matrix(np.array([[-1.0]], dtype=np.float32)), alpha=1.0)


def test_implicit_receives_1_plus_alpha_times_confidence_with_its_own_alpha_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    seen: dict[str, object] = {}
    real_fit = AlternatingLeastSquares.fit

    def spy(model: AlternatingLeastSquares, user_items: sp.csr_matrix, **kwargs: object) -> None:
        seen["alpha"], seen["matrix"] = model.alpha, user_items.copy()
        real_fit(model, user_items, **kwargs)

    monkeypatch.setattr(AlternatingLeastSquares, "fit", spy)
    m = _matrix()
    _als(alpha=0.05, iterations=1).fit(m)
    assert seen["alpha"] == 1.0
    got = seen["matrix"]
    assert isinstance(got, sp.csr_matrix)
    np.testing.assert_allclose(got.toarray()[m.toarray() > 0], 1 + 0.05 * m.data, rtol=1e-6)
    assert got.nnz == m.nnz


def _reference_half_step(c: np.ndarray, fixed: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """Hu et al.'s closed form, dense: x_u = (Y^T C_u Y + reg I)^-1 Y^T C_u p_u, C_u = 1 + alpha * c_u."""
    out = np.empty((c.shape[0], fixed.shape[1]))
    for u, row in enumerate(c):
        weight = 1.0 + alpha * row  # a missing cell (c = 0) weighs 1
        pref = (row > 0).astype(float)
        a = fixed.T @ (weight[:, None] * fixed) + reg * np.eye(fixed.shape[1])
        out[u] = np.linalg.solve(a, fixed.T @ (weight * pref))
    return out


def test_one_iteration_matches_the_numpy_closed_form() -> None:
    """Two factors: implicit's three conjugate-gradient steps solve each 2 x 2 system exactly."""
    c = np.array([[3.0, 0, 1, 0, 0], [0, 5, 0, 2, 0], [1, 0, 0, 0, 4], [0, 0, 2, 1, 0]])
    alpha, reg = 0.5, 0.1
    model = _als(factors=2, regularization=reg, alpha=alpha, iterations=1, random_state=3)
    model.fit(sp.csr_matrix(c.astype(np.float32)))
    rng = np.random.default_rng(3)  # the wrapper's initialisation
    rng.random((4, 2), dtype=np.float32)
    items0 = (rng.random((5, 2), dtype=np.float32) * 0.01).astype(np.float64)
    users = _reference_half_step(c, items0, alpha, reg)
    items = _reference_half_step(c.T, users, alpha, reg)
    np.testing.assert_allclose(model.user_factors_, users, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(model.item_factors_, items, rtol=2e-3, atol=1e-6)


def test_preset_params_are_the_presets_constructor_arguments() -> None:
    assert preset_params("sparse_data") == {
        "factors": 64,
        "regularization": 0.1,
        "alpha": 5.0,
        "iterations": 15,
    }
    with pytest.raises(ConfigError, match="unknown ALS preset 'nope'"):
        preset_params("nope")
