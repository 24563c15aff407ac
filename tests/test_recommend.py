"""Serving: top-k with original ids, seen items filtered and counted, unknown users refused or served the
popularity list, and a run folder served as it was saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.artifacts import save_run
from core.errors import DataError
from core.recommend import Recommender

# Items a, b, c, d score 4, 3, 2, 1 for "fan" (factor +1) and -4, -3, -2, -1 for "contrarian" (factor -1).
ITEM_FACTORS = np.array([[4.0], [3.0], [2.0], [1.0]], dtype=np.float32)
USER_FACTORS = np.array([[1.0], [-1.0]], dtype=np.float32)
USERS = pd.Index(["fan", "contrarian"])
ITEMS = pd.Index(["a", "b", "c", "d"])


def _seen() -> sp.csr_matrix:
    # fan has seen a; contrarian has seen c and d
    return sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 1]], dtype=np.float32))


def _recommender(seen: sp.csr_matrix | None = None, popularity: np.ndarray | None = None) -> Recommender:
    return Recommender(
        USER_FACTORS, ITEM_FACTORS, USERS, ITEMS, _seen() if seen is None else seen, popularity
    )


# ---------------------------------------------------------------------------------------------- known users
def test_recommend_ranks_by_score_and_filters_seen_items() -> None:
    rec = _recommender().recommend("fan", k=2)
    assert rec.user_id == "fan"
    assert rec.item_ids == ["b", "c"]  # a (score 4) was seen
    assert rec.scores == [3.0, 2.0]
    assert rec.filtered_count == 1
    assert rec.cold_start is False


def test_without_filtering_seen_items_stay() -> None:
    rec = _recommender().recommend("fan", k=2, filter_seen=False)
    assert rec.item_ids == ["a", "b"]
    assert rec.filtered_count == 0


def test_fewer_than_k_when_everything_else_was_seen() -> None:
    rec = _recommender().recommend("contrarian", k=10)
    assert rec.item_ids == ["b", "a"]  # -3 before -4; c and d were seen
    assert rec.scores == [-3.0, -4.0]
    assert rec.filtered_count == 2


def test_batch_keeps_the_order_of_the_request() -> None:
    recs = _recommender().recommend_batch(["contrarian", "fan", "contrarian"], k=1)
    assert [r.user_id for r in recs] == ["contrarian", "fan", "contrarian"]
    assert [r.item_ids for r in recs] == [["b"], ["b"], ["b"]]
    assert [r.filtered_count for r in recs] == [2, 1, 2]


def test_equal_scores_go_to_the_lower_item_index() -> None:
    flat = Recommender(np.ones((1, 1)), np.ones((4, 1)), pd.Index(["u"]), ITEMS)
    assert flat.recommend("u", k=2).item_ids == ["a", "b"]


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        _recommender().recommend("fan", k=0)


def test_factor_rows_must_match_the_mappings() -> None:
    with pytest.raises(ValueError, match="factor rows"):
        Recommender(USER_FACTORS, ITEM_FACTORS[:3], USERS, ITEMS)


# ---------------------------------------------------------------------------------------------- unknown users
def test_unknown_user_is_a_data_error_naming_the_id() -> None:
    with pytest.raises(DataError, match="unknown user id 'stranger'"):
        _recommender().recommend_batch(["fan", "stranger"])


def test_unknown_user_gets_the_popularity_list_when_asked() -> None:
    # popularity from seen: a 1, b 0, c 1, d 1 -> a, c, d (ties to the lower index)
    recs = _recommender().recommend_batch(["stranger", "fan"], k=3, unknown="popular")
    assert recs[0].user_id == "stranger"
    assert recs[0].cold_start is True
    assert recs[0].item_ids == ["a", "c", "d"]
    assert recs[0].scores == [1.0, 1.0, 1.0]
    assert recs[0].filtered_count == 0
    assert recs[1].cold_start is False and recs[1].item_ids == ["b", "c", "d"]


def test_given_popularity_overrides_the_seen_counts() -> None:
    rec = _recommender(popularity=np.array([1.0, 9.0, 5.0, 0.0], dtype=np.float32)).recommend(
        "stranger", k=2, unknown="popular"
    )
    assert rec.item_ids == ["b", "c"]
    assert rec.scores == [9.0, 5.0]


def test_no_seen_matrix_means_nothing_filtered() -> None:
    rec = Recommender(USER_FACTORS, ITEM_FACTORS, USERS, ITEMS).recommend("fan", k=4)
    assert rec.item_ids == ["a", "b", "c", "d"] and rec.filtered_count == 0


def test_integer_user_ids() -> None:
    r = Recommender(USER_FACTORS, ITEM_FACTORS, pd.Index([7, 8]), ITEMS)
    assert r.recommend(8, k=1).item_ids == ["d"]
    with pytest.raises(DataError, match="unknown user id 9"):
        r.recommend(9)


# ---------------------------------------------------------------------------------------------- from_run
def _save(path: Path, users: pd.Index) -> Path:
    train = pd.DataFrame({"user_id": [users[0]], "item_id": ["a"], "rating": [5.0]})
    valid = pd.DataFrame({"user_id": [users[1]], "item_id": ["c"], "rating": [5.0]})
    test = pd.DataFrame({"user_id": [users[1]], "item_id": ["d"], "rating": [4.0]})
    return save_run(
        path,
        model="als",
        user_factors=USER_FACTORS,
        item_factors=ITEM_FACTORS,
        params={},
        metrics={},
        metadata={},
        users=users,
        items=ITEMS,
        train=train,
        valid=valid,
        test=test,
    )


def test_from_run_serves_what_was_saved_with_train_valid_and_test_seen(tmp_path: Path) -> None:
    r = Recommender.from_run(_save(tmp_path / "run", USERS))
    np.testing.assert_array_equal(r.seen.toarray(), _seen().toarray())
    assert r.recommend("fan", k=2).item_ids == ["b", "c"]
    assert r.recommend("contrarian", k=4).item_ids == ["b", "a"]
    assert r.recommend("stranger", k=1, unknown="popular").item_ids == ["a"]


def test_from_run_with_integer_user_ids(tmp_path: Path) -> None:
    # ml-100k style numeric ids: a run folder stores them as strings ("7"), and a caller asks for user 7.
    # Integer ids survive the run folder (stored as strings, typed in mappings.json): 7 and "7" both work.
    r = Recommender.from_run(_save(tmp_path / "run", pd.Index([7, 8])))
    assert r.recommend("7", k=2).item_ids == ["b", "c"]
    assert r.recommend(7, k=2).item_ids == ["b", "c"]
