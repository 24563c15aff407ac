"""The defaults ``core.train`` picks without a preset: a pure function of data statistics, checked on inputs
worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from core.defaults import DataStats, als_defaults, bpr_defaults, data_stats
from core.errors import ConfigError
from core.interactions import Interactions


def _stats(
    n_users: int, n_items: int, interactions: int, liked: int = 0, mean_confidence: float = 1.0
) -> DataStats:
    return DataStats(n_users, n_items, interactions, liked, mean_confidence)


# ---------------------------------------------------------------------------------------------- ALS
@pytest.mark.parametrize(
    ("stats", "regularization", "alpha"),
    [
        (_stats(1000, 25_600, 100_000, mean_confidence=3.9), 160.0, 10.0),  # density 1/256: 40 * 256**0.25
        (_stats(10, 10, 100, mean_confidence=1.0), 40.0, 39.0),  # every cell filled, binary confidence
        (_stats(100, 10_000, 100, mean_confidence=5.2), 400.0, 7.5),  # density 1e-4: 40 * 10; 39 / 5.2
        (_stats(3, 4, 5, mean_confidence=3.7), 40 * (12 / 5) ** 0.25, 10.5),  # 49.8 and 10.54 at 3 digits
        (_stats(1000, 1000, 30_000, mean_confidence=1.0), 96.1, 39.0),  # 30 per item: 40 * 0.03**-0.25, x1
        (_stats(1000, 1000, 60_000, mean_confidence=1.0), 162.0, 39.0),  # 60 per item: 40 * 0.06**-0.25 * 2
        (_stats(1000, 100, 50_000, mean_confidence=1.0), 143.0, 39.0),  # 500 per item: 40 * 0.5**-0.25 * 3
    ],
)
def test_als_regularization_grows_as_density_falls_and_items_fill_and_alpha_makes_the_mean_weight_40(
    stats: DataStats, regularization: float, alpha: float
) -> None:
    got = als_defaults(stats)
    assert got == {
        "factors": 128,
        "regularization": pytest.approx(regularization, rel=5e-3),
        "alpha": alpha,
        "iterations": 15,
    }
    assert 1 + got["alpha"] * stats.mean_confidence == pytest.approx(40.0, rel=5e-3)


# ---------------------------------------------------------------------------------------------- BPR
@pytest.mark.parametrize(
    ("stats", "regularization", "epochs"),
    [
        (_stats(1000, 25_600, 100_000, liked=40_000), 0.025, 100),  # 40 per user: 1 / 40; 2e7 / (5 * 40k)
        (_stats(1000, 25_600, 100_000, liked=100_000), 0.01, 40),  # 100 per user: 1 / 100; 2e7 / (5 * 100k)
        (_stats(300, 1000, 20_000, liked=14_000), 0.0214, 100),  # 46.7 per user: 3 / 140 at 3 digits
        (_stats(1000, 1000, 1_000_000, liked=1_000_000), 0.001, 20),  # 1 / 1000; 4 epochs, raised to 20
        (_stats(1000, 1000, 1000, liked=10), 0.03, 100),  # 1 / 0.01 = 100, capped; 400k epochs, capped
        (_stats(1000, 1000, 1000, liked=0), 0.03, 100),  # nothing liked: the cap, never a division by zero
    ],
)
def test_bpr_regularization_falls_with_the_history_and_epochs_keep_20_million_triplets(
    stats: DataStats, regularization: float, epochs: int
) -> None:
    assert bpr_defaults(stats) == {
        "factors": 256,
        "learning_rate": 0.1,
        "lr_decay": 0.8,
        "regularization": regularization,
        "epochs": epochs,
        "samples_per_epoch": 5,
        "hard_ratio": 0.0,
        "item_bias": True,
    }


@pytest.mark.parametrize("liked_per_user", [0.5, 2.0, 16.7, 33.4, 100.0, 2500.0])
def test_the_bpr_l2_never_shrinks_a_mean_user_row_below_0_61_an_epoch(liked_per_user: float) -> None:
    """SGD's per-sample L2 acts at every update of a row: ``lr * reg * samples_per_epoch * h`` is the
    exponent of a mean user's shrink per epoch, held at or below 0.5 (to 3 digits)."""
    users = 1000
    stats = _stats(users, 5000, 10**7, liked=round(liked_per_user * users))
    got = bpr_defaults(stats)
    exponent = got["learning_rate"] * got["regularization"] * got["samples_per_epoch"] * liked_per_user
    assert exponent <= 0.5 * (1 + 5e-3)
    expected = 0.03 if liked_per_user <= 1 / 0.03 else pytest.approx(1 / liked_per_user, rel=5e-3)
    assert got["regularization"] == expected


def test_the_bpr_default_never_relies_on_hard_negatives() -> None:
    for stats in (_stats(5, 5, 20, liked=20), _stats(100_000, 50_000, 200_000, liked=10)):
        assert bpr_defaults(stats)["hard_ratio"] == 0.0


# ---------------------------------------------------------------------------------------------- statistics
def test_statistics_of_a_small_log() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "c", "c"],
            "item_id": ["x", "y", "x", "z", "w"],
            "rating": [5.0, 3.0, 4.0, 1.0, 5.0],
        }
    )
    part = Interactions.from_frame(frame, rating_scale=(1.0, 5.0))
    stats = data_stats(part, confidence_mode="rating")
    assert (stats.n_users, stats.n_items, stats.interactions, stats.liked) == (3, 4, 5, 3)
    assert stats.mean_confidence == pytest.approx(3.6)  # (5 + 3 + 4 + 1 + 5) / 5
    assert stats.density == 5 / 12
    assert data_stats(part, confidence_mode="binary").mean_confidence == 1.0
    assert data_stats(part, confidence_mode="rating", positive_threshold=5.0).liked == 2


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 5, 5, 0, 1.0), "need positive sizes"),
        ((5, 5, 0, 0, 1.0), "need positive sizes"),
        ((5, 5, 5, 6, 1.0), "liked must be in"),
        ((5, 5, 5, 5, 0.0), "mean_confidence must be > 0"),
        ((5, 5, 5, 5, float("nan")), "mean_confidence must be > 0"),
    ],
)
def test_impossible_statistics_are_config_errors(args: tuple[int, int, int, int, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DataStats(*args)
