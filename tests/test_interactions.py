"""Interactions: ids mapped in order of first appearance, views in one index space, a content hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from core.interactions import Interactions


def _log() -> Interactions:
    # users b, a, c appear in that order; items x, y, z likewise
    return Interactions.from_frame(
        pd.DataFrame(
            {
                "user_id": ["b", "a", "b", "c", "a"],
                "item_id": ["x", "y", "y", "z", "x"],
                "rating": [5.0, 3.0, 4.0, 1.0, 2.0],
                "timestamp": [10, 20, 30, 40, 50],
            }
        ),
        source="log.csv",
    )


# ---------------------------------------------------------------------------------------------- from_frame
def test_ids_are_numbered_in_order_of_first_appearance() -> None:
    d = _log()
    assert list(d.users) == ["b", "a", "c"]
    assert list(d.items) == ["x", "y", "z"]
    np.testing.assert_array_equal(d.user_idx, [0, 1, 0, 2, 1])
    np.testing.assert_array_equal(d.item_idx, [0, 1, 1, 2, 0])
    assert d.user_idx.dtype == np.int32 and d.item_idx.dtype == np.int32
    assert d.rating.dtype == np.float32
    assert d.shape == (3, 3) and len(d) == 5


def test_optional_columns_are_kept_only_when_present() -> None:
    d = _log()
    np.testing.assert_array_equal(d.timestamp, [10, 20, 30, 40, 50])
    assert d.timestamp.dtype == np.int64
    assert d.text is None and d.has_image is None


def test_given_index_space_maps_into_it() -> None:
    train = _log()
    part = Interactions.from_frame(
        pd.DataFrame({"user_id": ["c", "b"], "item_id": ["x", "z"], "rating": [5.0, 4.0]}),
        users=train.users,
        items=train.items,
    )
    np.testing.assert_array_equal(part.user_idx, [2, 0])
    np.testing.assert_array_equal(part.item_idx, [0, 2])
    assert part.shape == (3, 3)


def test_id_outside_the_given_index_space_is_a_data_error_naming_row_and_column() -> None:
    train = _log()
    frame = pd.DataFrame({"user_id": ["a", "zed"], "item_id": ["x", "x"], "rating": [5.0, 5.0]})
    with pytest.raises(DataError, match="unknown user_id 'zed'") as info:
        Interactions.from_frame(frame, users=train.users, items=train.items, source="valid.csv")
    # without file lines, the 1-based data row: 'zed' is on the second row
    assert (info.value.row, info.value.unit, info.value.column) == (2, "row", "user_id")
    assert str(info.value).startswith("valid.csv, row 2, column 'user_id': ")


def test_unknown_id_error_names_the_file_line_when_lines_are_known() -> None:
    train = _log()
    frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "nope"], "rating": [5.0, 5.0]})
    with pytest.raises(DataError) as info:
        Interactions.from_frame(
            frame, users=train.users, items=train.items, source="valid.csv", line=np.array([7, 9])
        )
    assert (info.value.row, info.value.unit, info.value.column) == (9, "line", "item_id")
    assert str(info.value).startswith("valid.csv, line 9, column 'item_id': unknown item_id 'nope'")


def test_views_carry_the_file_lines_along() -> None:
    frame = _log().to_frame()
    d = Interactions.from_frame(frame, line=np.array([2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(d.subset(np.array([4, 1])).line, [6, 3])
    np.testing.assert_array_equal(d.subset(np.array([0])).concat(d.subset(np.array([3]))).line, [2, 5])


def test_empty_frame_is_a_data_error() -> None:
    frame = pd.DataFrame({"user_id": [], "item_id": [], "rating": []})
    with pytest.raises(DataError, match="no interactions"):
        Interactions.from_frame(frame)


# ---------------------------------------------------------------------------------------------- views
def test_subset_by_mask_and_by_rows_keeps_the_index_space() -> None:
    d = _log()
    by_mask = d.subset(d.rating >= 4)
    np.testing.assert_array_equal(by_mask.rating, [5.0, 4.0])
    np.testing.assert_array_equal(by_mask.timestamp, [10, 30])
    assert by_mask.users is d.users and by_mask.shape == (3, 3)
    by_rows = d.subset(np.array([4, 0]))
    np.testing.assert_array_equal(by_rows.user_idx, [1, 0])
    np.testing.assert_array_equal(by_rows.timestamp, [50, 10])


def test_concat_stacks_rows_of_the_same_index_space() -> None:
    d = _log()
    both = d.subset(np.array([0, 1])).concat(d.subset(np.array([4])))
    np.testing.assert_array_equal(both.rating, [5.0, 3.0, 2.0])
    np.testing.assert_array_equal(both.timestamp, [10, 20, 50])
    assert both.shape == d.shape


def test_concat_refuses_another_index_space() -> None:
    d = _log()
    other = Interactions.from_frame(pd.DataFrame({"user_id": ["q"], "item_id": ["x"], "rating": [5.0]}))
    with pytest.raises(ValueError, match="user index"):
        d.concat(other)


def test_reindex_keeps_chosen_users_and_items_and_renumbers_them() -> None:
    d = _log()
    # keep users b (0) and c (2), items y (1) and z (2): rows (b,y,4) and (c,z,1) remain
    part = d.reindex(np.array([0, 2]), np.array([1, 2]))
    assert list(part.users) == ["b", "c"]
    assert list(part.items) == ["y", "z"]
    np.testing.assert_array_equal(part.user_idx, [0, 1])
    np.testing.assert_array_equal(part.item_idx, [0, 1])
    np.testing.assert_array_equal(part.rating, [4.0, 1.0])
    np.testing.assert_array_equal(part.timestamp, [30, 40])


def test_to_csr_sums_duplicate_cells() -> None:
    d = Interactions.from_frame(
        pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 7, 8], "rating": [2.0, 3.0, 4.0]})
    )
    ones = d.to_csr().toarray()
    np.testing.assert_array_equal(ones, [[2.0, 0.0], [0.0, 1.0]])
    weighted = d.to_csr(d.rating).toarray()
    np.testing.assert_array_equal(weighted, [[5.0, 0.0], [0.0, 4.0]])


def test_to_frame_gives_back_original_ids() -> None:
    d = _log()
    frame = d.to_frame()
    assert frame["user_id"].tolist() == ["b", "a", "b", "c", "a"]
    assert frame["item_id"].tolist() == ["x", "y", "y", "z", "x"]
    assert frame["timestamp"].tolist() == [10, 20, 30, 40, 50]


# ---------------------------------------------------------------------------------------------- lookups
def test_user_index_maps_original_ids() -> None:
    d = _log()
    np.testing.assert_array_equal(d.user_index(["c", "b"]), [2, 0])
    np.testing.assert_array_equal(d.user_index("a"), [1])


def test_unknown_user_id_is_a_data_error_naming_it() -> None:
    with pytest.raises(DataError, match="unknown user id 'nobody'"):
        _log().user_index(["a", "nobody"])


def test_positive_is_rating_at_least_threshold_or_any_play_for_counts() -> None:
    d = _log()
    np.testing.assert_array_equal(d.positive_mask(), [True, False, True, False, False])
    np.testing.assert_array_equal(d.positive_mask(3.0), [True, True, True, False, False])
    plays = Interactions.from_frame(
        pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rating": [0.0, 1.0]}), kind="count"
    )
    np.testing.assert_array_equal(plays.positive_mask(), [False, True])


# ---------------------------------------------------------------------------------------------- hash
def test_data_version_hash_ignores_row_order_and_index_numbering() -> None:
    frame = _log().to_frame()
    reversed_rows = Interactions.from_frame(frame.iloc[::-1].reset_index(drop=True))
    assert list(reversed_rows.users) == ["a", "c", "b"]  # a different index space, same content
    assert reversed_rows.data_version_hash() == _log().data_version_hash()
    assert len(_log().data_version_hash()) == 16


def test_data_version_hash_changes_with_content() -> None:
    frame = _log().to_frame()
    changed = frame.copy()
    changed.loc[0, "rating"] = 4.0
    assert Interactions.from_frame(changed).data_version_hash() != _log().data_version_hash()
    later = frame.copy()
    later.loc[0, "timestamp"] = 11
    assert Interactions.from_frame(later).data_version_hash() != _log().data_version_hash()


def test_summary_counts() -> None:
    s = _log().summary()
    assert s["interactions"] == 5 and s["users"] == 3 and s["items"] == 3
    assert s["density"] == pytest.approx(5 / 9)
    assert s["rating_share"] == {"1": 0.2, "2": 0.2, "3": 0.2, "4": 0.2, "5": 0.2}
