"""Training history and the validation monitor: best step, patience, StopTraining, and the best factors kept
for restoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from core.als import ALS
from core.callbacks import TrainingHistory, TrainingStep, ValidationMonitor, as_callbacks, run_callbacks
from core.errors import StopTraining

# One user, three items, item 0 relevant. With one factor and user factor 1, the item factors ARE the scores:
GOOD = np.array([[3.0], [2.0], [1.0]])  # item 0 ranked 1st: ndcg@2 = 1
MID = np.array([[2.0], [3.0], [1.0]])  # item 0 ranked 2nd: ndcg@2 = 1 / log2(3) = 0.63093
BAD = np.array([[1.0], [2.0], [3.0]])  # item 0 ranked 3rd, outside the top 2: ndcg@2 = 0
NDCG = {"good": 1.0, "mid": 1 / np.log2(3), "bad": 0.0}
TRUTH = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]]))


def _step(n: int, items: np.ndarray) -> TrainingStep:
    return TrainingStep(n, float(n), None, np.ones((1, 1)), items.copy())


def _monitor(**kwargs: object) -> ValidationMonitor:
    return ValidationMonitor(TRUTH, None, metric="ndcg@2", ks=(2,), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- history
def test_best_epoch_is_the_step_with_the_highest_value_first_on_ties() -> None:
    h = TrainingHistory()
    for step, value in ((2, 0.1), (4, 0.3), (6, 0.3), (8, 0.2)):
        h.record_validation(step, {"ndcg@10": value, "recall@10": 1.0 - value})
    assert h.get_best_epoch() == 4
    assert h.get_best_epoch("recall@10") == 2


def test_best_epoch_of_an_unrecorded_metric_is_a_key_error_listing_the_recorded_ones() -> None:
    h = TrainingHistory()
    h.record_validation(1, {"ndcg@10": 0.5})
    with pytest.raises(KeyError, match=r"no validation values recorded for 'map@10'.*ndcg@10"):
        h.get_best_epoch("map@10")


def test_history_round_trips_through_json() -> None:
    h = TrainingHistory()
    h.record(1, 2.5, None, 0.1)
    h.record(2, None, 0.01, 0.2)
    h.record_validation(2, {"ndcg@10": 0.4})
    back = TrainingHistory.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back == h
    assert back.losses == [2.5, None]


def test_as_callbacks_accepts_none_one_or_many() -> None:
    seen: list[int] = []
    assert as_callbacks(None) == []
    one = as_callbacks(lambda s: seen.append(s.step))
    many = as_callbacks([lambda s: seen.append(10 * s.step), lambda s: seen.append(100 * s.step)])
    run_callbacks(one + many, _step(1, GOOD))
    assert seen == [1, 10, 100]


# ---------------------------------------------------------------------------------------------- monitor
def test_monitor_records_known_metric_values() -> None:
    m = _monitor()
    for n, items in enumerate((MID, GOOD, BAD), start=1):
        m(_step(n, items))
    assert m.history.val_steps == [1, 2, 3]
    np.testing.assert_allclose(m.history.val_metrics["ndcg@2"], [NDCG["mid"], 1.0, 0.0])
    assert (m.best_step, m.best_value) == (2, 1.0)


def test_monitor_evaluates_every_nth_step_only() -> None:
    m = _monitor(every=2)
    for n in range(1, 6):
        m(_step(n, GOOD))
    assert m.history.val_steps == [2, 4]


def test_patience_stops_after_that_many_evaluations_without_improvement() -> None:
    m = _monitor(patience=2)
    m(_step(1, MID))
    m(_step(2, GOOD))
    m(_step(3, MID))  # 1 without improvement
    with pytest.raises(
        StopTraining, match=r"ndcg@2 did not improve for 2 evaluations \(best 1.00000 at step 2\)"
    ):
        m(_step(4, BAD))  # 2 without improvement


def test_an_improvement_resets_patience() -> None:
    m = _monitor(patience=2)
    for n, items in enumerate((BAD, BAD, MID, BAD, GOOD, BAD), start=1):
        m(_step(n, items))  # never two non-improvements in a row
    assert m.best_step == 5


def test_an_equal_value_is_not_an_improvement() -> None:
    m = _monitor(patience=1)
    m(_step(1, GOOD))
    with pytest.raises(StopTraining):
        m(_step(2, GOOD))
    assert m.best_step == 1


def test_min_delta_is_the_improvement_needed() -> None:
    m = _monitor(min_delta=0.5)
    m(_step(1, MID))  # 0.631
    m(_step(2, GOOD))  # 1.0 is only 0.369 better
    assert m.best_step == 1
    m = _monitor(min_delta=0.3)
    m(_step(1, MID))
    m(_step(2, GOOD))
    assert m.best_step == 2


def test_best_factors_are_copies_of_the_best_step() -> None:
    m = _monitor()
    best = _step(2, GOOD)
    m(_step(1, MID))
    m(best)
    m(_step(3, BAD))
    best.item_factors[:] = 0.0  # the trainer keeps updating its live arrays
    assert m.best_factors is not None
    np.testing.assert_array_equal(m.best_factors[1], GOOD)
    np.testing.assert_array_equal(m.best_factors[0], [[1.0]])


def test_without_restore_best_no_factors_are_kept() -> None:
    m = _monitor(restore_best=False)
    m(_step(1, GOOD))
    assert m.best_factors is None and m.best_step == 1


def test_exclude_is_applied_before_ranking() -> None:
    # excluding item 1 lifts item 0 to first place in MID
    m = ValidationMonitor(TRUTH, sp.csr_matrix(np.array([[0.0, 1.0, 0.0]])), metric="ndcg@2", ks=(2,))
    m(_step(1, MID))
    assert m.best_value == pytest.approx(1.0)


def test_on_evaluate_sees_each_evaluation_and_may_raise() -> None:
    class Pruned(Exception):
        pass

    reported: list[tuple[int, float]] = []

    def report(step: int, metrics: dict[str, float]) -> None:
        reported.append((step, metrics["ndcg@2"]))
        if step == 2:
            raise Pruned

    m = _monitor(on_evaluate=report)
    m(_step(1, GOOD))
    with pytest.raises(Pruned):
        m(_step(2, BAD))
    assert reported == [(1, 1.0), (2, 0.0)]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"every": 0}, "every must be >= 1"), ({"patience": 0}, "patience")]
)
def test_monitor_arguments_are_checked(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _monitor(**kwargs)


# ---------------------------------------------------------------------------------------------- with ALS
def test_monitor_stops_als_and_keeps_the_factors_of_the_best_iteration() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((60, 40)) < 0.2).astype(np.float32)
    held = dense * (rng.random(dense.shape) < 0.25)
    train, truth = sp.csr_matrix(dense - held), sp.csr_matrix(held)
    snapshots: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def snapshot(step: TrainingStep) -> None:
        snapshots[step.step] = (step.user_factors.copy(), step.item_factors.copy())

    monitor = ValidationMonitor(truth, train, metric="ndcg@10", ks=(10,), patience=1, min_delta=1.0)
    model = ALS(factors=4, iterations=10, num_threads=1, show_progress=False)
    model.fit(train, callback=[snapshot, monitor])
    # min_delta = 1 cannot be beaten: step 1 is the best, step 2 ends the fit
    assert model.n_iterations_ == 2 and model.stopped_early_ is not None
    assert monitor.best_step == 1
    assert monitor.best_factors is not None
    np.testing.assert_array_equal(monitor.best_factors[0], snapshots[1][0])
    np.testing.assert_array_equal(monitor.best_factors[1], snapshots[1][1])
