"""Memory at scale: the evaluator and serving score users in bounded batches (never users x items), the batch
size never changes a number, and the data hash is computed over codes with the value of its definition."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.evaluate import FactorScorer, evaluate, evaluate_scorer, score_range
from core.interactions import Interactions, data_version_hash_reference
from core.ranking import BLOCK_CELLS, batch_rows
from core.recommend import Recommender


@dataclass
class RecordingScorer:
    """A factor scorer that records the shape of every block it is asked for."""

    inner: FactorScorer
    shapes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return self.inner.n_items

    def score(self, users: np.ndarray) -> np.ndarray:
        out = self.inner.score(users)
        self.shapes.append(out.shape)
        return out


def problem(
    n_users: int, n_items: int, seed: int = 0
) -> tuple[FactorScorer, sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Random factors with many ties (integer scores), a train matrix to exclude and disjoint truth."""
    rng = np.random.default_rng(seed)
    u = rng.integers(-2, 3, size=(n_users, 4)).astype(np.float32)
    v = rng.integers(-2, 3, size=(n_items, 4)).astype(np.float32)
    seen = sp.random(n_users, n_items, density=0.05, random_state=seed, format="csr", dtype=np.float32)
    truth = sp.random(n_users, n_items, density=0.03, random_state=seed + 1, format="csr", dtype=np.float32)
    truth = sp.csr_matrix(truth - truth.multiply(seen > 0))
    truth.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    return FactorScorer(u, v), truth, seen, users


def test_batch_rows_bounds_the_block() -> None:
    for n_items in (1, 7, 3_706, 26_744, BLOCK_CELLS, 3 * BLOCK_CELLS):
        rows = batch_rows(n_items)
        assert rows >= 1
        assert rows * n_items <= max(BLOCK_CELLS, n_items)  # one user per batch when a row alone is larger
    assert batch_rows(100, max_cells=1_000) == 10
    with pytest.raises(ValueError, match="max_cells"):
        batch_rows(100, max_cells=0)


def test_the_evaluator_never_asks_for_more_than_the_bound() -> None:
    scorer, truth, seen, users = problem(400, 300)
    recording = RecordingScorer(scorer)
    evaluate_scorer(recording, truth, seen, ks=(5, 10), batch_size=37)
    assert recording.shapes, "the scorer was never called"
    assert max(rows for rows, _ in recording.shapes) == 37
    assert sum(rows for rows, _ in recording.shapes) == users.size  # every user scored once

    # the default batch is the memory bound, whatever the number of users
    recording = RecordingScorer(scorer)
    evaluate_scorer(recording, truth, seen, ks=(10,))
    assert all(rows * cols <= BLOCK_CELLS for rows, cols in recording.shapes)


def test_default_batches_stay_bounded_for_many_users(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a small bound, many users are scored in many small blocks, never all at once."""
    import core.evaluate

    monkeypatch.setattr(core.evaluate, "batch_rows", lambda n_items: batch_rows(n_items, max_cells=3_000))
    scorer, truth, seen, users = problem(500, 250)
    recording = RecordingScorer(scorer)
    evaluate_scorer(recording, truth, seen, ks=(10,))
    assert max(rows * cols for rows, cols in recording.shapes) <= 3_000
    assert len(recording.shapes) == -(-users.size // 12)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_batched_equals_unbatched(batch_size: int) -> None:
    scorer, truth, seen, users = problem(300, 200, seed=batch_size)
    one = evaluate_scorer(scorer, truth, seen, ks=(1, 5, 20), batch_size=len(users), keep_top_items=True)
    many = evaluate_scorer(scorer, truth, seen, ks=(1, 5, 20), batch_size=batch_size, keep_top_items=True)
    assert one.metrics == many.metrics
    for name, values in one.per_user.items():
        np.testing.assert_array_equal(values, many.per_user[name])
    assert one.top_items is not None and many.top_items is not None
    np.testing.assert_array_equal(one.top_items, many.top_items)


def test_batched_metrics_match_a_dense_computation_by_hand() -> None:
    """The outside oracle: one dense users x items block, a stable sort and the metric definitions."""
    scorer, truth, seen, users = problem(120, 80, seed=3)
    k = 10
    scores = scorer.score(users).astype(np.float64)
    scores[seen[users].toarray() > 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    relevant = truth[users].toarray() > 0
    hits = np.take_along_axis(relevant, order, axis=1)
    n_rel = relevant.sum(axis=1)
    discounts = 1 / np.log2(np.arange(2, k + 2))
    ndcg = (hits @ discounts) / np.cumsum(discounts)[np.minimum(k, n_rel) - 1]
    result = evaluate_scorer(scorer, truth, seen, ks=(k,), batch_size=9)
    np.testing.assert_allclose(result.per_user[f"ndcg@{k}"], ndcg)
    np.testing.assert_allclose(result.per_user[f"recall@{k}"], hits.sum(axis=1) / n_rel)
    assert result.metrics[f"coverage@{k}"] == pytest.approx(np.unique(order).size / 80)


def test_hits_with_unsorted_truth_and_short_rankings() -> None:
    # user 0: 3 candidates left (items 0..2 excluded), relevant items given out of order
    truth = sp.csr_matrix((np.ones(2, dtype=np.float32), np.array([4, 3]), np.array([0, 2])), shape=(1, 6))
    assert not truth.has_sorted_indices
    exclude = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0]], dtype=np.float32))
    u = np.ones((1, 1), dtype=np.float32)
    v = np.arange(6, dtype=np.float32)[::-1, None].copy()  # item 0 best ... item 5 worst
    result = evaluate(u, v, truth, exclude, ks=(2, 10), batch_size=1)
    assert result.metrics["recall@2"] == 1.0
    assert result.metrics["ndcg@2"] == pytest.approx(1.0)
    assert result.metrics["recall@10"] == 1.0


def test_progress_bar_only_for_many_users(capsys: pytest.CaptureFixture[str]) -> None:
    scorer, truth, seen, _ = problem(50, 40)
    evaluate_scorer(scorer, truth, seen, ks=(5,))
    assert "user" not in capsys.readouterr().err
    evaluate_scorer(scorer, truth, seen, ks=(5,), show_progress=True)
    assert "evaluate" in capsys.readouterr().err


def test_score_range_is_unchanged_by_blocks() -> None:
    scorer, _, seen, _ = problem(200, 150, seed=5)
    u, v = scorer.user_factors, scorer.item_factors
    users = np.arange(200)
    sr = score_range(u, v, users, seen)
    values = (u @ v.T).astype(np.float32)[seen.toarray() == 0]
    assert sr.num_samples == values.size
    assert sr.mean == pytest.approx(values.mean(dtype=np.float64))
    assert sr.std == pytest.approx(values.std(dtype=np.float64))
    assert (sr.min, sr.max) == (values.min(), values.max())
    assert sr.p01 == pytest.approx(np.percentile(values, 1))


def test_serving_scores_in_bounded_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.recommend

    scorer, _, seen, _ = problem(60, 30, seed=7)
    users = pd.Index(np.arange(60) + 1000)
    items = pd.Index([f"i{j}" for j in range(30)])
    rec = Recommender(scorer.user_factors, scorer.item_factors, users, items, seen)
    whole = rec.recommend_batch(list(users), k=5)
    monkeypatch.setattr(core.recommend, "batch_rows", lambda n_items: 7)
    batched = rec.recommend_batch(list(users), k=5)
    assert [r.item_ids for r in whole] == [r.item_ids for r in batched]
    assert [r.filtered_count for r in whole] == [r.filtered_count for r in batched]


@pytest.mark.parametrize("ids", ["int", "text", "mixed"])
@pytest.mark.parametrize("with_time", [True, False])
def test_data_hash_equals_its_definition(ids: str, with_time: bool) -> None:
    rng = np.random.default_rng(len(ids) + with_time)
    n = 3_000
    uid: np.ndarray = rng.integers(0, 200, n)
    iid: np.ndarray = rng.integers(0, 150, n)
    if ids != "int":
        uid = np.array([f"u{x:03d}" if x % 3 else str(x) for x in uid], dtype=object)
        iid = np.array([f"é{x}" if x % 2 else f"Z{x}" for x in iid], dtype=object)
    frame = pd.DataFrame({"user_id": uid, "item_id": iid, "rating": rng.integers(1, 6, n).astype(float)})
    if ids == "mixed":  # 7 and "7" are two users with one text form: the row-by-row definition decides
        frame["user_id"] = frame["user_id"].astype(object)
        frame.loc[0, "user_id"], frame.loc[1, "user_id"] = 7, "7"
    if with_time:
        frame["timestamp"] = rng.integers(0, 40, n)  # repeated (user, item) pairs, ordered by time and rating
    data = Interactions.from_frame(frame)
    for part in (data, data.subset(rng.random(n) < 0.4)):
        assert part.data_version_hash() == data_version_hash_reference(part)
    shuffled = data.subset(rng.permutation(n))
    assert shuffled.data_version_hash() == data.data_version_hash()  # independent of row order
