"""The trial a study hands on: the best by validation, or the one-standard-error rule's choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from search.record import SelectionRecord, StudyRecord
from search.selection import (
    PAIRED_ATTR,
    PAIRED_USERS,
    SE_ATTR,
    decode_values,
    encode_values,
    paired_error,
    paired_sample,
    select_trial,
    standard_error,
    strength,
)
from search.summary import format_summary

REG = FloatDistribution(1e-3, 1e3, log=True)


def trial(
    number: int,
    value: float,
    regularization: float | None,
    se: float | None = 0.01,
    per_user: np.ndarray | None = None,
) -> Any:
    params = {} if regularization is None else {"regularization": regularization}
    dists = {} if regularization is None else {"regularization": REG}
    attrs: dict[str, Any] = {} if se is None else {SE_ATTR: se}
    if per_user is not None:
        attrs[PAIRED_ATTR] = encode_values(per_user, len(per_user))
    t = optuna.trial.create_trial(value=value, params=params, distributions=dists, user_attrs=attrs)
    t.number = number
    return t


def test_the_standard_error_is_the_sample_std_over_the_square_root_of_users() -> None:
    assert standard_error([0.0, 1.0, 0.0, 1.0]) == pytest.approx(0.57735 / 2, rel=1e-4)
    assert standard_error([0.5]) is None


def test_the_best_rule_is_the_highest_value_and_the_earliest_on_ties() -> None:
    trials = [trial(0, 0.30, 1.0), trial(1, 0.32, 0.1), trial(2, 0.32, 10.0)]
    chosen = select_trial(trials, "best")
    assert chosen is not None and chosen.trial.number == 1 and not chosen.changed


def test_one_se_takes_the_most_regularized_trial_within_one_standard_error_of_the_best() -> None:
    trials = [
        trial(0, 0.320, 0.5, se=0.010),  # the best
        trial(1, 0.312, 40.0),  # 0.008 below: within one SE, most regularized
        trial(2, 0.315, 5.0),
        trial(3, 0.300, 900.0),  # 0.020 below: outside, however strongly regularized
    ]
    chosen = select_trial(trials, "one-se")
    assert chosen is not None
    assert (chosen.trial.number, chosen.best.number, chosen.within) == (1, 0, 3)
    assert chosen.standard_error == 0.010
    note = chosen.to_dict("ndcg@10")["note"]
    assert "trial 0 has the best validation ndcg@10 0.32000" in note and "trial 1" in note


def test_one_se_keeps_the_best_when_it_is_the_most_regularized_or_alone() -> None:
    chosen = select_trial([trial(0, 0.32, 100.0), trial(1, 0.319, 1.0)])
    assert chosen is not None and chosen.trial.number == 0 and chosen.to_dict()["note"] is None
    alone = select_trial([trial(4, 0.2, 1.0)])
    assert alone is not None and alone.trial.number == 4


def test_one_se_falls_back_to_the_best_without_a_standard_error_or_a_regularization() -> None:
    no_se = select_trial([trial(0, 0.32, 0.5, se=None), trial(1, 0.319, 50.0)])
    assert no_se is not None and no_se.trial.number == 0 and no_se.rule.startswith("best")
    unsearched = select_trial([trial(0, 0.32, None), trial(1, 0.319, None)])
    assert unsearched is not None and unsearched.trial.number == 0 and "no regularization" in unsearched.rule
    fixed = select_trial([trial(0, 0.32, 10.0), trial(1, 0.319, 10.0)])  # regularization fixed, not searched
    assert fixed is not None and fixed.trial.number == 0 and fixed.rule.startswith("best")


def test_for_bpr_the_strength_is_the_weakest_of_its_three_l2_weights() -> None:
    bpr = FloatDistribution(1e-6, 1.0, log=True)

    def bpr_trial(number: int, value: float, **regs: float) -> Any:
        t = optuna.trial.create_trial(
            value=value, params=regs, distributions=dict.fromkeys(regs, bpr), user_attrs={SE_ATTR: 0.01}
        )
        t.number = number
        return t

    trials = [
        bpr_trial(0, 0.320, regularization=1e-4, reg_pos=1e-4, reg_neg=1e-4),
        bpr_trial(1, 0.315, regularization=0.1, reg_pos=0.1, reg_neg=1e-6),  # weakest 1e-6: not simpler
        bpr_trial(2, 0.314, regularization=0.01, reg_pos=0.02, reg_neg=0.05),  # weakest 0.01: the choice
    ]
    assert strength(trials[1]) == 1e-6 and strength(trials[2]) == 0.01
    chosen = select_trial(trials)
    assert chosen is not None and chosen.trial.number == 2


def test_no_complete_trial_selects_nothing_and_an_unknown_rule_is_refused() -> None:
    assert select_trial([]) is None
    with pytest.raises(ValueError, match="rule must be one of"):
        select_trial([trial(0, 0.3, 1.0)], "median")


def test_the_summary_says_why_another_trial_than_the_best_was_chosen() -> None:
    chosen = select_trial([trial(0, 0.320, 0.5), trial(1, 0.315, 40.0)])
    assert chosen is not None
    record = StudyRecord(
        study_name="s",
        model="als",
        status="FINISHED",
        data_source="x",
        synthetic=False,
        data_version_hash="h",
        metric="ndcg@10",
        sampler="tpe",
        pruner="median",
        tracking_uri="sqlite://",
        parent_run_id="p",
        trials={"complete": 2},
        wall_seconds=1.0,
        steps_computed=2,
        steps_unpruned=2,
        selection=SelectionRecord(**chosen.to_dict("ndcg@10")),
    )
    from search.record import BestTrial

    record.best_trial = BestTrial(1, {"regularization": 40.0}, {"regularization": 40.0}, 0.315, 3, {}, None)
    text = format_summary(record)
    assert "selected trial 1: validation ndcg@10 0.31500" in text
    assert "one-standard-error rule: trial 0 has the best validation" in text


def test_a_space_that_may_train_with_torch_never_shares_trainings_between_epoch_counts() -> None:
    from search.run import torch_in
    from spaces import load_space

    assert not torch_in(load_space("bpr", None)) and not torch_in(load_space("als", None))
    assert torch_in(load_space("bpr", str(Path(__file__).parents[1] / "spaces" / "bpr_advanced.yaml")))


def test_per_user_values_travel_as_float16_in_base64() -> None:
    values = np.array([0.0, 0.5, 1.0, 1 / 3])
    attr = encode_values(values, users=10)
    assert attr["users"] == 10 and isinstance(attr["float16"], str)
    np.testing.assert_allclose(decode_values(attr), values, atol=1e-3)
    assert decode_values(None) is None and decode_values({"float16": 3}) is None


def test_the_paired_sample_is_every_user_or_a_fixed_seeded_draw() -> None:
    np.testing.assert_array_equal(paired_sample(7), np.arange(7))
    big = paired_sample(PAIRED_USERS * 3)
    assert len(big) == PAIRED_USERS and np.all(np.diff(big) > 0)
    np.testing.assert_array_equal(big, paired_sample(PAIRED_USERS * 3))


def test_the_paired_error_is_the_spread_of_the_differences_over_the_root_of_the_users() -> None:
    a, b = np.array([1.0, 0.5, 0.0, 0.5]), np.array([0.5, 0.5, 0.0, 0.0])
    expected = float(np.std(a - b, ddof=1) / 2)  # 4 users
    assert paired_error(trial(0, 0.5, 1.0, per_user=a), trial(1, 0.25, 1.0, per_user=b)) == pytest.approx(
        expected, abs=1e-3
    )
    assert paired_error(trial(0, 0.5, 1.0, per_user=a), trial(1, 0.25, 1.0)) is None  # one has no values


def test_a_trial_worse_than_the_best_on_nearly_every_user_is_not_its_equal() -> None:
    """Unpaired, trial 1 is within one standard error of the best (0.01 below, the best's error 0.02); user by
    user it loses on nearly every one, so paired it is clearly worse and the best is handed on."""
    rng = np.random.default_rng(0)
    best = rng.uniform(0.2, 0.8, size=400)
    worse = best - 0.01 + rng.normal(0, 0.002, size=400)
    trials = [
        trial(0, float(best.mean()), 0.5, se=0.02, per_user=best),
        trial(1, float(worse.mean()), 50.0, per_user=worse),
    ]
    chosen = select_trial(trials)
    assert chosen is not None and chosen.trial.number == 0 and chosen.within == 1
    unpaired = select_trial([trial(0, float(best.mean()), 0.5, se=0.02), trial(1, float(worse.mean()), 50.0)])
    assert unpaired is not None and unpaired.trial.number == 1  # what the unpaired rule handed on


def test_a_trial_that_is_paired_noise_away_from_the_best_is_still_its_equal() -> None:
    rng = np.random.default_rng(1)
    best = rng.uniform(0.0, 1.0, size=400)
    noisy = best + rng.normal(0, 0.3, size=400)  # differences of spread 0.3: error 0.015
    noisy += best.mean() - 0.005 - noisy.mean()  # 0.005 below the best
    trials = [
        trial(0, float(best.mean()), 0.5, se=0.02, per_user=best),
        trial(1, float(noisy.mean()), 50.0, per_user=noisy),
    ]
    chosen = select_trial(trials)
    assert chosen is not None and chosen.trial.number == 1
    assert chosen.standard_error == pytest.approx(float(np.std(best - noisy, ddof=1) / 20), abs=1e-3)


def test_the_paired_error_never_admits_what_the_best_s_own_error_would_not() -> None:
    rng = np.random.default_rng(2)
    best = rng.uniform(0.0, 1.0, size=100)
    anti = 1.0 - best  # perfectly anticorrelated: a paired error far above the best's own
    anti += best.mean() - 0.03 - anti.mean()
    trials = [
        trial(0, float(best.mean()), 0.5, se=0.01, per_user=best),
        trial(1, float(anti.mean()), 50.0, per_user=anti),
    ]
    chosen = select_trial(trials)
    assert chosen is not None and chosen.trial.number == 0  # 0.03 below: outside the best's own 0.01
