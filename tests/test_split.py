"""Segmentation, per-user holdout of positives, splits from given files, and hard negatives.

The rules under test (module docstring of ``core.split``): valid and test hold POSITIVES only; each held-out
part gets ``max(1, round(frac * positives))`` items; at least one interaction of every user stays in train
(validation gives way first, then test); ``temporal`` holds out the latest positives and drops a later
non-positive; ``leave_last`` holds out one and one; ``random`` is seeded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from core.interactions import Interactions
from core.split import hard_negatives, segment_users, split, split_from_parts


def _frame(rows: list[tuple[object, object, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _items(part: Interactions, user: object) -> set[object]:
    """Original item ids of ``user`` in one part of a split."""
    rows = part.user_idx == part.users.get_loc(user)
    return set(part.items[part.item_idx[rows]])


def _ten_positives() -> Interactions:
    """User u: positives p1..p10 at t=1..10, a low rating 'early' at t=0 and a low rating 'late' at t=11."""
    rows = [("u", f"p{t}", 5.0, t) for t in range(1, 11)]
    rows += [("u", "early", 2.0, 0), ("u", "late", 2.0, 11)]
    return Interactions.from_frame(_frame(rows))


def _random_log(seed: int = 0, n_users: int = 30, n_items: int = 25) -> Interactions:
    """Each user rates a random subset of items once (unique pairs, as the loaders guarantee)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=rng.integers(3, 15), replace=False)
        for i in chosen:
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), int(rng.integers(0, 1000))))
    return Interactions.from_frame(_frame(rows))


# ---------------------------------------------------------------------------------------------- temporal
def test_temporal_holds_out_the_latest_positives() -> None:
    # 10 positives: test = max(1, round(0.2 * 10)) = 2, valid = max(1, round(0.1 * 10)) = 1
    s = split(_ten_positives(), "temporal")
    assert s.strategy == "temporal" and s.seed is None
    assert _items(s.test, "u") == {"p9", "p10"}
    assert _items(s.valid, "u") == {"p8"}


def test_temporal_drops_a_later_non_positive_and_keeps_an_earlier_one() -> None:
    s = split(_ten_positives(), "temporal")
    # 'late' (t=11) is after the first held-out positive (p8, t=8): the future, dropped;
    # 'early' (t=0) stays in train with p1..p7
    assert _items(s.train, "u") == {"early"} | {f"p{t}" for t in range(1, 8)}
    assert len(s.train) + len(s.valid) + len(s.test) == 12 - 1


def test_auto_means_temporal_with_timestamps_and_random_without() -> None:
    assert split(_ten_positives()).strategy == "temporal"
    no_time = Interactions.from_frame(_ten_positives().to_frame().drop(columns="timestamp"))
    s = split(no_time)
    assert s.strategy == "random" and s.seed == 42


def test_temporal_without_timestamps_is_a_data_error() -> None:
    no_time = Interactions.from_frame(_ten_positives().to_frame().drop(columns="timestamp"))
    with pytest.raises(DataError, match="timestamps"):
        split(no_time, "temporal")


def test_equal_timestamps_are_ordered_by_row() -> None:
    # all 5 positives at t=7: the later rows count as later; test = 1, valid = max(1, round(0.5)) = 1
    d = Interactions.from_frame(_frame([("u", f"p{k}", 5.0, 7) for k in range(5)]))
    s = split(d, "temporal")
    assert _items(s.test, "u") == {"p4"}
    assert _items(s.valid, "u") == {"p3"}


# ---------------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize(
    ("n_pos", "n_test", "n_valid"),
    [
        (10, 2, 1),  # round(2.0), round(1.0)
        (15, 3, 2),  # round(3.0), round(1.5) = 2
        (4, 1, 1),  # round(0.8) = 1, max(1, round(0.4)) = 1
        (3, 1, 1),  # max(1, .) twice, 1 left in train
        (2, 1, 0),  # validation gives way so that one stays in train
        (1, 0, 0),  # then test gives way too
    ],
)
def test_holdout_sizes(n_pos: int, n_test: int, n_valid: int) -> None:
    d = Interactions.from_frame(_frame([("u", f"p{t}", 5.0, t) for t in range(n_pos)]))
    s = split(d, "temporal")
    assert (len(s.test), len(s.valid), len(s.train)) == (n_test, n_valid, n_pos - n_test - n_valid)


def test_valid_frac_zero_means_no_validation() -> None:
    s = split(_ten_positives(), "temporal", valid_frac=0.0, test_frac=0.3)
    assert len(s.valid) == 0
    assert _items(s.test, "u") == {"p8", "p9", "p10"}


def test_non_positives_are_never_held_out() -> None:
    # 2 positives among 5 interactions: test = 1, valid = 1 (3 low ratings stay in train)
    rows = [("u", "lo1", 1.0, 1), ("u", "lo2", 2.0, 2), ("u", "lo3", 3.0, 3), ("u", "a", 4.0, 4)]
    rows.append(("u", "b", 5.0, 5))
    s = split(Interactions.from_frame(_frame(rows)), "temporal")
    assert _items(s.test, "u") == {"b"}
    assert _items(s.valid, "u") == {"a"}
    assert _items(s.train, "u") == {"lo1", "lo2", "lo3"}


def test_positive_threshold_is_configurable() -> None:
    rows = [("u", f"r{t}", float(t), t) for t in range(1, 6)]  # ratings 1..5 at t=1..5
    s = split(Interactions.from_frame(_frame(rows)), "temporal", positive_threshold=2.0)
    # positives r2..r5: test = max(1, round(0.8)) = 1, valid = max(1, round(0.4)) = 1
    assert _items(s.test, "u") == {"r5"}
    assert _items(s.valid, "u") == {"r4"}


def test_a_user_keeps_a_train_interaction_when_the_only_other_one_is_later() -> None:
    # u: a positive at t=1 and a low rating at t=2. "At least one interaction of every user always stays in
    # train": holding out the positive AND dropping the later low rating would leave u with nothing.
    # Holding 'a' out would make 'b' the future (dropped) and leave u with nothing to train on: 'a' stays.
    d = Interactions.from_frame(_frame([("u", "a", 5.0, 1), ("u", "b", 2.0, 2)]))
    for strategy in ("temporal", "leave_last"):
        s = split(d, strategy)
        assert len(s.train) >= 1, strategy


# ---------------------------------------------------------------------------------------------- leave_last
def test_leave_last_holds_out_one_and_one() -> None:
    s = split(_ten_positives(), "leave_last", valid_frac=0.3, test_frac=0.5)  # fractions do not apply
    assert _items(s.test, "u") == {"p10"}
    assert _items(s.valid, "u") == {"p9"}
    assert "late" not in _items(s.train, "u")  # t=11 is after p9: dropped as the future
    assert len(s.train) == 9  # early + p1..p8


def test_leave_last_without_timestamps_uses_file_order() -> None:
    frame = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["c", "a", "d", "b"], "rating": [5.0] * 4})
    s = split(Interactions.from_frame(frame), "leave_last")
    assert _items(s.test, "u") == {"b"}
    assert _items(s.valid, "u") == {"d"}
    assert _items(s.train, "u") == {"c", "a"}


# ---------------------------------------------------------------------------------------------- random
def test_random_split_is_deterministic_per_seed() -> None:
    d = _random_log()
    a, b = split(d, "random", seed=3), split(d, "random", seed=3)
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(a, part).item_idx, getattr(b, part).item_idx)
        np.testing.assert_array_equal(getattr(a, part).user_idx, getattr(b, part).user_idx)
    assert a.seed == 3
    other = split(d, "random", seed=4)
    assert not np.array_equal(a.test.item_idx, other.test.item_idx)


def test_random_split_holds_out_the_same_counts_as_temporal() -> None:
    d = _ten_positives()
    r = split(d, "random", seed=0)
    assert (len(r.test), len(r.valid)) == (2, 1)
    assert set(_items(r.test, "u")) | set(_items(r.valid, "u")) <= {f"p{t}" for t in range(1, 11)}
    assert len(r.train) == 12 - 3  # nothing dropped: random has no "future"


# ---------------------------------------------------------------------------------------------- leakage
@pytest.mark.parametrize("strategy", ["temporal", "leave_last", "random"])
def test_no_leakage_between_parts(strategy: str) -> None:
    d = _random_log(seed=1)
    s = split(d, strategy, seed=5)  # type: ignore[arg-type]
    pairs = {
        name: set(zip(part.user_idx.tolist(), part.item_idx.tolist(), strict=True))
        for name, part in (("train", s.train), ("valid", s.valid), ("test", s.test))
    }
    assert not pairs["train"] & pairs["valid"]
    assert not pairs["train"] & pairs["test"]
    assert not pairs["valid"] & pairs["test"]
    # held-out parts are ground truth: positives only
    assert np.all(s.valid.rating >= 4) and np.all(s.test.rating >= 4)
    # one index space for all three parts
    assert s.valid.users is s.train.users and s.test.items is s.train.items


@pytest.mark.parametrize("strategy", ["temporal", "leave_last", "random"])
def test_every_user_keeps_a_train_interaction(strategy: str) -> None:
    # In this log 3 of 30 users have their only positive as their earliest interaction: holding it out would
    # drop every later low rating as the future, so the positive stays in train instead.
    d = _random_log(seed=1)
    s = split(d, strategy, seed=5)  # type: ignore[arg-type]
    assert set(np.unique(s.train.user_idx).tolist()) == set(range(d.n_users))


@pytest.mark.parametrize("strategy", ["temporal", "leave_last"])
def test_time_aware_splits_train_only_on_the_past(strategy: str) -> None:
    d = _random_log(seed=2)
    s = split(d, strategy)  # type: ignore[arg-type]
    held = s.valid.concat(s.test)
    for u in range(d.n_users):
        held_t = held.timestamp[held.user_idx == u]
        train_t = s.train.timestamp[s.train.user_idx == u]
        if held_t.size and train_t.size:
            assert train_t.max() <= held_t.min(), f"user {u}"
        valid_t, test_t = s.valid.timestamp[s.valid.user_idx == u], s.test.timestamp[s.test.user_idx == u]
        if valid_t.size and test_t.size:
            assert valid_t.max() <= test_t.min(), f"user {u}"


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "by_item"}, "strategy must be one of"),
        ({"valid_frac": -0.1}, "valid_frac must be in"),
        ({"valid_frac": 1.0}, "valid_frac must be in"),
        ({"test_frac": 0.0}, "0 < test_frac"),
        ({"test_frac": 1.0}, "test_frac must be in"),
        ({"valid_frac": 0.5, "test_frac": 0.5}, "valid_frac \\+ test_frac < 1"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split(_ten_positives(), **kwargs)  # type: ignore[arg-type]


def test_edges_of_the_fractions_are_accepted() -> None:
    s = split(_ten_positives(), "temporal", valid_frac=0.0, test_frac=0.99)
    # test = round(9.9) = 10 positives, but one interaction must stay: 'early' is in train already
    assert len(s.test) == 10 and _items(s.train, "u") == {"early"}


# ---------------------------------------------------------------------------------------------- Split helpers
def test_exclusion_matrices_and_final_refit_data() -> None:
    s = split(_ten_positives(), "temporal")
    assert s.valid_exclude().nnz == 8  # early + p1..p7
    assert s.test_exclude().nnz == 9  # ... and p8
    assert len(s.train_valid()) == 9
    assert s.valid_truth().nnz == 1 and s.test_truth().nnz == 2
    d = s.describe()
    assert (d["train_interactions"], d["valid_interactions"], d["test_interactions"]) == (8, 1, 2)
    assert (d["valid_users"], d["test_users"]) == (1, 1)


# ---------------------------------------------------------------------------------------------- segmentation
def _segmentation_log() -> Interactions:
    rows = [
        ("keen", "a", 5.0, 1),
        ("keen", "b", 2.0, 2),
        ("keen", "c", 4.0, 3),  # 3 interactions, 2 positive
        ("lukewarm", "a", 3.0, 1),
        ("lukewarm", "b", 2.0, 2),  # 2 interactions, 0 positive
        ("once", "d", 5.0, 1),  # 1 interaction, 1 positive; only user of item d
    ]
    return Interactions.from_frame(_frame(rows))


def test_segmentation_keeps_users_with_enough_history() -> None:
    seg = segment_users(_segmentation_log())  # >= 2 interactions and >= 1 positive
    assert list(seg.trainable.users) == ["keen"]
    assert (seg.n_users_total, seg.n_trainable, seg.n_cold_start) == (3, 1, 2)
    # item d was seen only by a cold-start user
    assert list(seg.trainable.items) == ["a", "b", "c"]
    assert (seg.n_items_total, seg.n_items_dropped) == (4, 1)
    assert seg.n_interactions_dropped == 3
    np.testing.assert_array_equal(seg.trainable.user_idx, [0, 0, 0])
    assert seg.to_dict()["rule"] == ">= 2 interactions and >= 1 positive (rating >= 4)"


def test_segmentation_thresholds_move_users_across() -> None:
    seg = segment_users(_segmentation_log(), min_interactions=1, min_positive=0)
    assert seg.n_trainable == 3 and seg.n_items_dropped == 0
    seg = segment_users(_segmentation_log(), min_interactions=2, min_positive=0)
    assert list(seg.trainable.users) == ["keen", "lukewarm"]
    seg = segment_users(_segmentation_log(), min_interactions=1, min_positive=1)
    assert list(seg.trainable.users) == ["keen", "once"]


def test_segmentation_with_nobody_trainable_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no trainable users"):
        segment_users(_segmentation_log(), min_interactions=4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"min_interactions": 0}, "min_interactions"), ({"min_positive": -1}, "min_positive")],
)
def test_segmentation_arguments_are_checked(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        segment_users(_segmentation_log(), **kwargs)


# ---------------------------------------------------------------------------------------------- given files
def test_split_from_parts_maps_into_train_space_and_keeps_positives() -> None:
    train = Interactions.from_frame(_frame([("a", "x", 5.0, 1), ("b", "y", 4.0, 2), ("b", "z", 5.0, 3)]))
    valid = Interactions.from_frame(_frame([("b", "x", 5.0, 4), ("a", "y", 2.0, 5)]), source="valid.csv")
    test = Interactions.from_frame(_frame([("a", "z", 4.0, 6)]), source="test.csv")
    s = split_from_parts(train, valid, test)
    assert s.strategy == "given"
    assert s.valid.users is train.users and s.test.items is train.items
    # valid keeps (b, x) only: (a, y, 2.0) is not a positive
    assert s.valid_truth().toarray().tolist() == [[0, 0, 0], [1, 0, 0]]
    assert s.test_truth().toarray().tolist() == [[0, 0, 1], [0, 0, 0]]


def test_split_from_parts_names_the_file_with_an_unseen_item() -> None:
    train = Interactions.from_frame(_frame([("a", "x", 5.0, 1), ("b", "y", 4.0, 2)]))
    valid = Interactions.from_frame(_frame([("a", "y", 5.0, 3)]), source="valid.csv")
    test = Interactions.from_frame(
        _frame([("a", "x", 5.0, 4), ("b", "new", 5.0, 5)]), source="test.csv", line=np.array([2, 3])
    )
    with pytest.raises(DataError, match="unknown item_id 'new'") as info:
        split_from_parts(train, valid, test)
    # the file and its line 3 (header on line 1), not a position in some intermediate frame
    assert str(info.value).startswith("test.csv, line 3, column 'item_id'")


# ------------------------------------------------------------------------------------------- hard negatives
def _negatives_log() -> Interactions:
    # item popularity (interactions): x 3, y 2, z 1, w 1
    rows = [
        ("a", "x", 5.0, 1),
        ("a", "y", 2.0, 2),  # explicit negative for a
        ("b", "x", 4.0, 3),
        ("b", "z", 3.0, 4),  # explicit negative for b
        ("c", "x", 5.0, 5),
        ("c", "y", 5.0, 6),
        ("c", "w", 1.0, 7),  # explicit negative for c
    ]
    return Interactions.from_frame(_frame(rows))


def test_hard_negatives_explicit_low_ratings_only() -> None:
    neg = hard_negatives(_negatives_log(), top_popular=0).toarray()
    #            x  y  z  w
    expected = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(neg, expected)


def test_hard_negatives_add_unseen_popular_items() -> None:
    # top 2 popular: x (3), y (2). a has seen both; b has not seen y; c has seen both
    neg = hard_negatives(_negatives_log(), top_popular=2).toarray()
    expected = [[0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(neg, expected)
    assert neg.dtype == np.float32


def test_hard_negatives_never_include_a_positive() -> None:
    d = _random_log(seed=3)
    neg = hard_negatives(d, top_popular=10)
    pos = d.subset(d.positive_mask()).to_csr()
    assert neg.multiply(pos).nnz == 0
    assert set(np.unique(neg.data)) == {1.0}


def test_hard_negatives_for_play_counts_use_popularity_only() -> None:
    d = Interactions.from_frame(
        pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7], "rating": [1.0, 1.0, 9.0]}), kind="count"
    )
    np.testing.assert_array_equal(hard_negatives(d, top_popular=0).toarray(), [[0, 0], [0, 0]])
    np.testing.assert_array_equal(hard_negatives(d, top_popular=2).toarray(), [[0, 0], [0, 1]])


def test_hard_negatives_reject_negative_top_popular() -> None:
    with pytest.raises(ValueError, match="top_popular"):
        hard_negatives(_negatives_log(), top_popular=-1)
