"""Pruning decisions that read the study's finished trials once per training, not once per evaluated step.

``Trial.should_prune`` hands the pruner the study, and the median pruner reads the finished trials through
the storage at every call. Optuna's storage cache re-reads every unfinished trial on each such read, and a
grid study keeps all its points enqueued as waiting trials: on the 81-point ALS grid that was ~20 ms per
step per trial, most of the study's overhead. A finished trial never changes, so :class:`FinishedTrials`
reads them once and again only when its copy is older than ``max_age`` seconds (so other workers' trials
still count within a long training). With one worker nothing finishes during a training (step siblings are
told after it), so the decisions are exactly Optuna's own.
"""

from __future__ import annotations

import time
from collections.abc import Container
from typing import Any, cast

import optuna
from optuna.trial import TrialState

#: Seconds a copy of the finished trials is used before it is read again.
MAX_AGE_SECONDS = 2.0


class FinishedTrials:
    """The study as a pruner sees it: ``get_trials`` for finished states from a copy, the rest the study's."""

    def __init__(self, study: Any, max_age: float = MAX_AGE_SECONDS) -> None:
        self._study = study
        self._max_age = max_age
        self._read_at: float | None = None
        self._finished: list[Any] = []

    def get_trials(self, deepcopy: bool = True, states: Container[Any] | None = None) -> list[Any]:

        if deepcopy or states is None or any(s in states for s in (TrialState.RUNNING, TrialState.WAITING)):
            return self._study.get_trials(deepcopy=deepcopy, states=states)
        if self._read_at is None or time.monotonic() - self._read_at > self._max_age:
            finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            self._finished = self._study.get_trials(deepcopy=False, states=finished)
            self._read_at = time.monotonic()
        return [t for t in self._finished if t.state in states]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def should_prune(trial: Any, finished: FinishedTrials | None) -> bool:
    """``trial.should_prune()`` with the study's finished trials read from ``finished``. Pruners that read
    the storage themselves (Hyperband's brackets) see the real study, as in Optuna."""

    latest = getattr(trial, "_get_latest_trial", None)
    pruner = getattr(getattr(trial, "study", None), "pruner", None)
    if finished is None or latest is None or not isinstance(pruner, optuna.pruners.PercentilePruner):
        return bool(trial.should_prune())
    return bool(pruner.prune(cast(Any, finished), latest()))  # the study as far as the pruner reads it
