"""When a trial stops before its last step: pruning decisions that read the study's finished trials once
per training, not once per evaluated step.

``Trial.should_prune`` hands the pruner the study, and the median pruner reads the finished trials through
the storage at every call. Optuna's storage cache re-reads every unfinished trial on each such read, and a
grid study keeps all its points enqueued as waiting trials: on the 81-point ALS grid that was ~20 ms per
step per trial, most of the study's overhead. A finished trial never changes, so :class:`FinishedTrials`
reads them once and again only when its copy is older than ``max_age`` seconds (so other workers' trials
still count within a long training). With one worker nothing finishes during a training (step siblings are
told after it), so the decisions are exactly Optuna's own.

A trial also stops on its own curve: after :data:`DEFAULT_PATIENCE` evaluations without a better value
(``--patience``). A trial's value is its best step, so the steps after a peak it does not climb back from
only cost time: on the ML-20M shape the selected ALS trial peaked at step 4 of its 28, and the study had
computed 269 of its unpruned trials' 350 steps. The default is data-relative, like the validation sample and
its cadence: from :data:`PATIENCE_FROM` training interactions, where every step is dear. Below it a whole
trial costs seconds and runs to its last step, as before: every dataset of ``bench/quality.py`` (up to 120k
interactions) runs exactly as it did, same trials, values and pruning decisions (with patience 3 there, TPE
took other paths and one of nine test ratios left its CI). The patience is the study's, stored with it (user
attribute ``patience``) like its validation sample, so that every worker and every resume stops trials
alike; a study from before it existed goes on without one.
"""

from __future__ import annotations

import time
from collections.abc import Container
from typing import Any, cast

import optuna
from optuna.trial import TrialState

from core.errors import ConfigError

#: Seconds a copy of the finished trials is used before it is read again.
MAX_AGE_SECONDS = 2.0
#: Evaluations without a better value after which a new study's trials stop on a large log (0: never).
DEFAULT_PATIENCE = 3
#: Training interactions from which a new study's trials stop on their curve by default.
PATIENCE_FROM = 500_000
#: The study's user attribute that holds its patience.
PATIENCE_ATTR = "patience"


def default_patience(train_interactions: int) -> int:
    """A new study's patience unless ``--patience`` says: :data:`DEFAULT_PATIENCE` from
    :data:`PATIENCE_FROM` training interactions, else 0 (the module docstring)."""
    return DEFAULT_PATIENCE if train_interactions >= PATIENCE_FROM else 0


def study_patience(study: Any, asked: int | None, *, new: bool, train_interactions: int) -> int:
    """The study's patience: a new study's is ``asked`` (None: :func:`default_patience`), written by the
    worker that creates it; a study that has one keeps it, and ``asked`` must agree; a study from before
    patience existed has none (0). 0 means trials run to their last step unless pruned."""
    if asked is not None and asked < 0:
        raise ConfigError(f"--patience must be >= 0 (0: never stop a trial on its curve), but got {asked}")
    stored = study.user_attrs.get(PATIENCE_ATTR)
    if stored is None:
        value = (default_patience(train_interactions) if asked is None else asked) if new else 0
        if asked is not None and not new and asked != 0:
            raise ConfigError(
                f"study {study.study_name!r} was started before trials stopped on their own curve; resuming "
                "it with --patience would mix trials stopped two ways. Resume it without --patience"
            )
        study.set_user_attr(PATIENCE_ATTR, value)
        return value
    if asked is not None and asked != int(stored):
        raise ConfigError(
            f"study {study.study_name!r} stops trials after {stored} evaluations without improvement; "
            f"resuming it with --patience {asked} would mix trials stopped two ways. "
            "Resume it without --patience"
        )
    return int(stored)


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
