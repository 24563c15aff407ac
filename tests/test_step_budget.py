"""BPR's step budget at scale: small logs train the space's epochs; above the reference size an epoch grows
with the square root of the data and is counted in work (negatives x candidates), phased in, never jumping.
Rules: search.step_budget."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from core.bpr import BPR
from core.errors import ConfigError
from core.prepare import DataOptions
from search import step_budget
from search.run import run_study
from search.settings import StudySettings
from search.step_budget import (
    CANDIDATE_COST,
    REFERENCE_LIKED,
    budgeted,
    epoch_samples,
    liked_interactions,
    sample_cost,
)

HARD = {"samples_per_epoch": 5, "n_negatives": 4, "n_candidates": 8, "epochs": 40}


def test_small_logs_and_other_trainers_keep_the_space_epochs() -> None:
    assert budgeted("bpr", HARD, REFERENCE_LIKED) == HARD
    assert budgeted("als", {"iterations": 15}, 10 * REFERENCE_LIKED) == {"iterations": 15}
    torch = {**HARD, "trainer": "torch"}
    assert budgeted("bpr", torch, 10 * REFERENCE_LIKED) == torch


def test_a_sample_costs_its_negatives_times_its_candidates_scores() -> None:
    assert sample_cost({}) == 1.0
    assert sample_cost({"n_negatives": 4, "n_candidates": 8}) == pytest.approx(4 * (1 + 7 * CANDIDATE_COST))


def test_above_twice_the_reference_an_epoch_is_the_square_root_rule_in_plain_samples() -> None:
    liked = 4 * REFERENCE_LIKED
    assert epoch_samples(5, liked, 1.0) == 2.5  # sqrt(1/4) of the space's 5
    hard = budgeted("bpr", HARD, liked)
    assert hard["samples_per_epoch"] == pytest.approx(2.5 / sample_cost(HARD), rel=1e-3)
    assert {k: v for k, v in hard.items() if k != "samples_per_epoch"} == {
        k: v for k, v in HARD.items() if k != "samples_per_epoch"
    }
    # equal compute per epoch: samples x cost is the same for every configuration
    plain = epoch_samples(5, liked, 1.0)
    assert hard["samples_per_epoch"] * sample_cost(HARD) == pytest.approx(plain, rel=1e-3)


def test_the_work_count_phases_in_without_a_jump() -> None:
    cost = sample_cost(HARD)
    just_above = epoch_samples(5, REFERENCE_LIKED + 1, cost)
    assert just_above == pytest.approx(5, rel=1e-3)  # continuous at the reference size
    middle = epoch_samples(5, int(math.sqrt(2) * REFERENCE_LIKED), cost)
    assert middle == pytest.approx(5 / 2**0.25 / cost**0.5, rel=1e-3)
    sizes = np.linspace(REFERENCE_LIKED + 1, 3 * REFERENCE_LIKED, 50).astype(int)
    values = [epoch_samples(5, int(n), cost) for n in sizes]
    assert all(b <= a for a, b in itertools.pairwise(values))  # shrinking with the data


def test_the_kernel_takes_a_fraction_of_a_sample_per_interaction() -> None:
    rng = np.random.default_rng(0)
    x = sp.random(60, 40, density=0.2, format="csr", random_state=rng)
    x.data[:] = 1.0
    kw = {"factors": 8, "epochs": 3, "num_threads": 1, "random_state": 3}
    whole = BPR(samples_per_epoch=2, **kw).fit(x)
    same = BPR(samples_per_epoch=2.0, **kw).fit(x)
    np.testing.assert_array_equal(whole.item_factors_, same.item_factors_)  # the same draws
    half = BPR(samples_per_epoch=0.5, **kw).fit(x)
    assert np.isfinite(half.item_factors_).all()
    assert not np.array_equal(half.item_factors_, whole.item_factors_)
    with pytest.raises(ConfigError, match="samples_per_epoch must be a finite number > 0"):
        BPR(samples_per_epoch=0.0)


TPE = """\
model: bpr
fixed: {samples_per_epoch: 5, epochs: 5}
tpe:
  factors: {type: int, low: 8, high: 16}
  n_negatives: {type: int, low: 1, high: 3}
  n_candidates: {type: int, low: 1, high: 4}
"""


def test_a_study_on_a_log_above_the_reference_trains_and_records_budgeted_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference lowered below the embedded data's size stands for a large log: every trial's recorded
    epoch is the rule's for its own negatives and candidates, and the study says so once."""
    monkeypatch.chdir(tmp_path)
    liked = liked_interactions(DataOptions().prepare())
    reference = liked // 4
    monkeypatch.setattr(step_budget, "REFERENCE_LIKED", reference)
    (tmp_path / "tpe.yaml").write_text(TPE)
    s = StudySettings(
        model="bpr",
        space=str(tmp_path / "tpe.yaml"),
        sampler="tpe",
        trials=3,
        storage=f"sqlite:///{tmp_path}/optuna.db",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        study_name="budget",
        register=False,
        report=False,
        workers=1,  # helpers would start in fresh processes, with the real reference
    )
    run_study(s)
    assert "step budget:" in capsys.readouterr().out
    trials = optuna.load_study(study_name="budget", storage=s.storage_url).trials
    assert len(trials) == 3
    for t in trials:
        full = t.user_attrs["params_full"]
        expected = 5 / 2.0 / sample_cost(full)  # four times the reference: sqrt(1/4), cost counted in full
        assert full["samples_per_epoch"] == pytest.approx(expected, rel=2e-3)
        assert t.state == optuna.trial.TrialState.COMPLETE
