"""Pruning from a copy of the finished trials decides exactly as Optuna's own ``should_prune``."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

from search.pruning import FinishedTrials, should_prune

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(pruner: Any) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for curve in ([0.1, 0.2, 0.3], [0.2, 0.4, 0.6], [0.3, 0.5, 0.7], [0.05, 0.1]):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 1.0},
                distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
                value=max(curve),
                intermediate_values=dict(enumerate(curve)),
            )
        )
    return study


class _CountingStudy:
    """Counts the reads a pruner makes through the study."""

    def __init__(self, study: optuna.Study) -> None:
        self.study, self.reads = study, 0

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        self.reads += 1
        return self.study.get_trials(deepcopy=deepcopy, states=states)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.study, name)


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        optuna.pruners.PercentilePruner(25.0, n_startup_trials=1),
        optuna.pruners.NopPruner(),
    ],
    ids=["median", "percentile", "none"],
)
def test_every_decision_equals_optunas_own(pruner: Any) -> None:
    study = _study(pruner)
    finished = FinishedTrials(study)
    for curve in ([0.0, 0.0, 0.0], [0.3, 0.45, 0.9], [0.15, 0.3, 0.35], [math.nan, 0.1, 0.2]):
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
            assert should_prune(trial, finished) == trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def test_the_finished_trials_are_read_once_within_their_age() -> None:
    study = _study(optuna.pruners.MedianPruner(n_startup_trials=1))
    counting = _CountingStudy(study)
    finished = FinishedTrials(counting, max_age=math.inf)
    trial = study.ask()
    for step in range(3):
        trial.report(0.01, step)
        assert should_prune(trial, finished)
    assert counting.reads == 1


def test_a_trial_finished_since_the_last_read_counts_once_the_copy_is_too_old() -> None:
    study = _study(optuna.pruners.MedianPruner(n_startup_trials=6, n_warmup_steps=0))
    stale, fresh = FinishedTrials(study, max_age=math.inf), FinishedTrials(study, max_age=0.0)
    trial = study.ask()
    trial.report(0.01, 0)
    assert not should_prune(trial, stale) and not should_prune(trial, fresh)  # 4 finished < 6 to start
    for value in (0.5, 0.6):
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values={0: value}))
    trial.report(0.01, 1)
    assert not should_prune(trial, stale)  # its copy still holds 4 finished trials
    assert should_prune(trial, fresh) and trial.should_prune()


def test_a_trial_without_a_study_decides_by_itself() -> None:
    class Scripted:
        def should_prune(self) -> bool:
            return True

    assert should_prune(Scripted(), None)
