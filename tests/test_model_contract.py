"""The contract every model keeps (:class:`core.model.Model`), checked the same way for ALS, the kernel BPR
and the torch BPR, in the spirit of scikit-learn's ``check_estimator``: what fitting, cutting back,
tracking and saving rely on without asking which model they hold."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import pytest

from core.als import ALS
from core.bpr.advanced import FlatTorchBPR
from core.bpr.model import BPR
from core.callbacks import TrainingStep
from core.errors import StopTraining
from core.model import Model
from tests.planted import clustered

N_CLUSTERS, STEPS = 4, 4
#: 120 users x 48 items in 4 clusters of 12; each user liked 8 of its cluster's items, so its 4 unseen
#: own-cluster items are the right top 4.
TRAIN, _ = clustered(n_users=120, n_items=48, n_clusters=N_CLUSTERS, per_user=8)
CLUSTER_SIZE = TRAIN.shape[1] // N_CLUSTERS

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="the torch trainer needs torch (the text extra)"
)

#: Each model small, one-threaded (bit-reproducible) and fast, trained for STEPS steps.
FACTORIES: dict[str, Callable[[], Model]] = {
    "als": lambda: ALS(factors=8, iterations=STEPS, regularization=0.05, num_threads=1, show_progress=False),
    "bpr": lambda: BPR(
        factors=8, epochs=STEPS, learning_rate=0.1, hard_ratio=0.0, num_threads=1, show_progress=False
    ),
    "torch": lambda: FlatTorchBPR(
        factors=8,
        epochs=STEPS,
        batch_size=128,
        learning_rate=0.05,
        optimizer="adam",
        scheduler="cosine",  # a curve that depends on the total: with_steps must keep it
        user_weight_decay=0.0,
        item_weight_decay=0.0,
        num_threads=1,
    ),
}
MODELS = [
    pytest.param("als", id="als"),
    pytest.param("bpr", id="bpr"),
    pytest.param("torch", id="torch", marks=needs_torch),
]
METADATA = ("fit_seconds_", "peak_rss_mb_", "n_iterations_", "stopped_early_", "best_epoch_")


def fitted(name: str, **fit: object) -> Model:
    return FACTORIES[name]().fit(TRAIN, **fit)  # type: ignore[arg-type]


def assert_same_factors(a: Model, b: Model) -> None:
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


@pytest.mark.parametrize("name", MODELS)
def test_a_fitted_model_is_a_model_and_fit_returns_it(name: str) -> None:
    model = FACTORIES[name]()
    assert model.fit(TRAIN) is model
    assert isinstance(model, Model)


@pytest.mark.parametrize("name", MODELS)
def test_the_factors_are_finite_one_row_per_user_and_item_of_one_width(name: str) -> None:
    model = fitted(name)
    u, v = model.user_factors_, model.item_factors_
    assert u.ndim == v.ndim == 2
    assert u.shape[0] == TRAIN.shape[0] and v.shape[0] == TRAIN.shape[1]
    assert u.shape[1] == v.shape[1] >= 8  # 8 factors (a bias column may add one)
    assert np.isfinite(u).all() and np.isfinite(v).all()


@pytest.mark.parametrize("name", MODELS)
def test_get_params_rebuilds_the_same_model(name: str) -> None:
    model = fitted(name)
    params = model.get_params()
    rebuilt = type(model)(**params)
    assert rebuilt.get_params() == params
    assert_same_factors(rebuilt.fit(TRAIN), model)


@pytest.mark.parametrize("name", MODELS)
def test_the_callback_sees_every_step_once_in_order(name: str) -> None:
    seen: list[int] = []
    model = fitted(name, callback=lambda step: seen.append(step.step))
    assert seen == list(range(1, STEPS + 1))
    assert model.history_.steps == seen
    assert not model.stopped_early_


@pytest.mark.parametrize("name", MODELS)
def test_stop_training_ends_the_fit_on_that_steps_factors(name: str) -> None:
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def stop_at_2(step: TrainingStep) -> None:
        kept[step.step] = (step.user_factors.copy(), step.item_factors.copy())
        if step.step == 2:
            raise StopTraining("enough")

    model = fitted(name, callback=stop_at_2)
    assert sorted(kept) == [1, 2]
    assert model.history_.steps == [1, 2]
    assert model.stopped_early_  # ALS: the message; the BPR trainers: True
    assert model.n_iterations_ in (2, None)
    np.testing.assert_array_equal(model.user_factors_, kept[2][0])
    np.testing.assert_array_equal(model.item_factors_, kept[2][1])


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_gives_identical_factors(name: str) -> None:
    assert_same_factors(fitted(name), fitted(name))


@pytest.mark.parametrize("name", MODELS)
def test_with_steps_is_the_longer_fit_as_it_stood_at_that_step(name: str) -> None:
    """What :func:`core.fit.trained_to` relies on: a fit of the shorter copy's settings takes the same
    first steps."""
    at_2: list[tuple[np.ndarray, np.ndarray]] = []

    def keep_2(step: TrainingStep) -> None:
        if step.step == 2:
            at_2.append((step.user_factors.copy(), step.item_factors.copy()))

    longer = fitted(name, callback=keep_2)
    short = longer.with_steps(2)
    assert short is not longer and longer.get_params() == FACTORIES[name]().get_params()  # original kept
    alone = type(short)(**short.get_params()).fit(TRAIN)
    assert alone.history_.steps == [1, 2]
    np.testing.assert_array_equal(alone.user_factors_, at_2[0][0])
    np.testing.assert_array_equal(alone.item_factors_, at_2[0][1])


@pytest.mark.parametrize("name", MODELS)
def test_recommend_leaves_out_seen_items_and_ranks_the_planted_cluster_first(name: str) -> None:
    model = fitted(name)
    users = list(range(TRAIN.shape[0]))
    recs = model.recommend(users, TRAIN, k=4)
    assert [r.user_id for r in recs] == users
    own = np.array([[i // CLUSTER_SIZE == u % N_CLUSTERS for i in r.item_ids] for u, r in enumerate(recs)])
    for u, r in enumerate(recs):
        assert len(r.item_ids) == 4 and r.filtered_count == TRAIN[u].nnz
        assert not set(r.item_ids) & set(TRAIN[u].indices.tolist()), f"user {u} got a seen item"
        assert r.scores == sorted(r.scores, reverse=True)
    assert own[:, 0].all()  # every user's first pick is an unseen item of its own cluster
    assert own.mean() >= 0.9  # and nearly all of its top 4 (random: 0.1)
    unfiltered = model.recommend(users, None, k=1)  # without user_items, seen items compete
    assert any(set(r.item_ids) & set(TRAIN[u].indices.tolist()) for u, r in enumerate(unfiltered))


@pytest.mark.parametrize("name", MODELS)
def test_the_run_metadata_members_exist_with_their_meaning(name: str) -> None:
    model = fitted(name)
    missing = [member for member in METADATA if not hasattr(model, member)]
    assert not missing
    assert model.fit_seconds_ is None or model.fit_seconds_ >= 0
    assert model.peak_rss_mb_ is None or model.peak_rss_mb_ > 0
    assert model.n_iterations_ in (STEPS, None)
    assert model.best_epoch_ in (STEPS, None)  # no monitor: the last step, or nothing restored
    assert model.stopped_early_ in (False, None)
