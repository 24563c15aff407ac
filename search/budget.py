"""Which trial a worker runs next: the study's budget shared by every worker, resuming, requeueing and
failure limits. Every decision here is taken under the study's lock (:func:`search.locks.store_lock`), so
each rule holds however many workers run and whenever they start or die.

Rules
- **Budget.** ``--trials N`` is the study's, not a worker's: a trial is claimed only while fewer than N are
  complete, pruned, running, or given up. No worker overshoots; a trial that is running when the budget is
  reached finishes.
- **Grid.** Points are enqueued as waiting trials (in a seeded order, as many as the budget takes), and the
  storage hands each to exactly one worker. A worker takes a point together with its waiting *step
  siblings* (the same point but for the number of iterations / epochs): one training to the longest serves
  them all, each still its own trial (:mod:`search.objective`).
- **Dead workers.** A running trial whose worker no longer holds its lease (or, on stores without leases,
  whose heartbeat is older than the grace period) is failed as "worker died", at once.
- **Retries.** A failed point is enqueued again, once, by whichever worker sees it first, unless it is given
  up: a deterministic failure ("diverged", "invalid": the same seed fails the same way) at once, other
  failures ("error", "worker died") after ``max_attempts`` of them. Ctrl-C ("interrupted") never counts.
  Failed trials are never written to again: "given up" is derived from the failures, not stored.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from search.locks import Lease
from search.settings import StudySettings
from spaces import Space

GRID_POINT = "grid_point"
WORKER = "worker"
FAILURE = "failure"
#: Failures that the same configuration and seed would repeat: the point is given up at once.
DETERMINISTIC = ("diverged", "invalid")
#: Failures that count towards ``max_attempts``; "interrupted" (Ctrl-C, SIGTERM) does not.
COUNTED = ("error", "worker died")


def study_lock_name(study_name: str) -> str:
    return f"study:{study_name}"


def lease_name(study_name: str, worker: int) -> str:
    return f"worker:{study_name}:{worker}"


def fingerprint(space: Space, settings: StudySettings, sampler: str) -> str:
    """What must not change when a study is resumed: the metric, the space, the sampler and the seed."""
    what: dict[str, object] = {
        "metric": settings.metric,
        "sampler": sampler,
        "seed": settings.seed,
        "grid": space.grid if sampler == "grid" else None,
        "tpe": {k: repr(v) for k, v in space.tpe.items()} if sampler == "tpe" else None,
        "fixed": space.fixed,
    }
    if sampler == "tpe" and space.start:  # absent when empty: studies from before ``start`` still resume
        what["start"] = list(space.start)
    blob = json.dumps(
        what,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def params_of(trial: Any) -> dict[str, Any]:
    """A trial's configuration: its parameters, or the fixed ones it was enqueued with."""
    return dict(trial.params or trial.system_attrs.get("fixed_params") or {})


def point_of(trial: Any) -> Hashable:
    """The configuration a trial stands for: its grid point, or its parameters."""
    if GRID_POINT in trial.user_attrs:
        return ("grid", int(trial.user_attrs[GRID_POINT]))
    return ("params", tuple(sorted(params_of(trial).items())))


def grid_points(space: Space, seed: int) -> list[dict[str, Any]]:
    """Every grid point, in a seeded order (a budget below the grid size runs a random subset)."""

    names = list(space.grid)
    points = [dict(zip(names, values, strict=True)) for values in itertools.product(*space.grid.values())]
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order]


@dataclass
class Ledger:
    """The study's trials read once, under the lock: what is claimed, what to requeue, what is given up."""

    claimed: int = 0
    running: int = 0
    waiting: int = 0
    present: set[Hashable] = field(default_factory=set)
    given_up: dict[Hashable, str] = field(default_factory=dict)
    requeue: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, trials: Sequence[Any], max_attempts: int) -> Ledger:

        out = cls()
        held: set[Hashable] = set()
        failed: dict[Hashable, list[Any]] = {}
        for t in trials:
            point = point_of(t)
            if point == ("params", ()):
                # a TPE trial asked under the lock but not sampled yet (its worker samples after the lock):
                # claimed all the same, or a second worker would overshoot the budget; a failed one has
                # nothing to re-run
                if t.state == TrialState.RUNNING:
                    out.claimed += 1
                    out.running += 1
                continue
            out.present.add(point)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                out.claimed += 1
                held.add(point)
                out.running += t.state == TrialState.RUNNING
            elif t.state == TrialState.WAITING:
                out.waiting += 1
                held.add(point)
            elif t.state == TrialState.FAIL:
                failed.setdefault(point, []).append(t)
        for point, fails in failed.items():
            if point in held:
                continue
            kinds = Counter(str(t.user_attrs.get(FAILURE, "error")) for t in fails)
            deterministic = [k for k in DETERMINISTIC if kinds[k]]
            counted = sum(kinds[k] for k in COUNTED)
            if deterministic:
                out.given_up[point] = deterministic[0]
            elif counted >= max_attempts:
                out.given_up[point] = f"failed {counted} times"
            else:
                out.requeue.append(max(fails, key=lambda t: t.number))
        out.claimed += len(out.given_up)
        return out


def reap_dead(study: Any, storage_url: str, trials: Sequence[Any] | None = None) -> list[Any]:
    """Fail the running trials whose worker is dead; returns them (their MLflow runs need ending too).

    Called under the study lock, so a running trial without a worker tag was claimed by a process that
    died inside the lock. A worker is dead when its lease is free; where the store has no leases, when its
    heartbeat is older than the grace period. ``trials``: the study's trials, when already read."""

    storage = study._storage
    stale: set[int] = set()
    get_stale = getattr(storage, "_get_stale_trial_ids", None)  # the storage's own heartbeat check
    if get_stale is not None and storage.get_heartbeat_interval():
        stale = set(get_stale(study._study_id))
    dead = []
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    for t in [t for t in trials if t.state == TrialState.RUNNING]:
        worker = t.user_attrs.get(WORKER)
        held = None if worker is None else Lease.is_held(storage_url, lease_name(study.study_name, worker))
        if worker is not None and held is not False and t._trial_id not in stale:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, FAILURE, "worker died")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # it finished after all
        dead.append(storage.get_trial(t._trial_id))
    return dead


@dataclass
class Claim:
    """What :func:`claim_next` found: the trials to run (none when the budget is claimed; several when step
    siblings were taken together), and the dead workers' trials it failed."""

    trials: list[Any]
    reaped: list[Any]
    requeued: int
    ledger: Ledger


def claim_siblings(
    study: Any, trial: Any, steps_name: str, worker: int, waiting: Sequence[Any] | None = None
) -> list[Any]:
    """The waiting trials that differ from ``trial`` only in ``steps_name``, taken (set RUNNING) for this
    worker the way Optuna pops a waiting trial: a trial another worker took first is skipped. ``waiting``:
    the study's waiting trials, when already read under the lock."""

    storage = study._storage
    mine = params_of(storage.get_trial(trial._trial_id))
    if steps_name not in mine:
        return []
    rest = {k: v for k, v in mine.items() if k != steps_name}
    if waiting is None:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    taken = []
    for t in waiting:
        theirs = params_of(t)
        if t._trial_id == trial._trial_id or steps_name not in theirs:
            continue
        if {k: v for k, v in theirs.items() if k != steps_name} != rest:
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        storage.set_trial_user_attr(t._trial_id, WORKER, worker)
        taken.append(optuna.trial.Trial(study, t._trial_id))
    return taken


def pop_waiting(study: Any, waiting: Sequence[Any]) -> Any | None:
    """The first waiting trial that this call sets RUNNING, as Optuna's ``ask`` pops one, but from trials
    already read: ``ask`` reads every unfinished trial again, which on a fresh grid is all of them."""

    for t in sorted(waiting, key=lambda t: t.number):
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(study, t._trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


def claim_next(
    study: Any,
    *,
    storage_url: str,
    budget: int,
    sampler: str,
    space: Space,
    seed: int,
    worker: int,
    max_attempts: int,
    steps_name: str | None = None,
) -> Claim:
    """Under the study lock: reap dead workers, requeue failed points, enqueue grid points up to the budget,
    and hand out the next trial while the budget allows; on a grid, with its waiting siblings that differ
    only in ``steps_name`` (their points are already counted in the budget, being enqueued).

    The trials are read once: waiting trials change state only under this lock, so what was read stays
    true but for the trials this call enqueues, reaps or takes."""

    trials = study.get_trials(deepcopy=False)
    reaped = reap_dead(study, storage_url, trials)
    if reaped:
        now = {t.number: t for t in reaped}
        trials = [now.get(t.number, t) for t in trials]
    ledger = Ledger.of(trials, max_attempts)
    enqueued = bool(ledger.requeue)
    for t in ledger.requeue:
        attrs = {
            "retry_of": t.number,
            **({GRID_POINT: t.user_attrs[GRID_POINT]} if GRID_POINT in t.user_attrs else {}),
        }
        study.enqueue_trial(params_of(t), user_attrs=attrs)
    ledger.waiting += len(ledger.requeue)
    if sampler == "grid":
        for index, params in enumerate(grid_points(space, seed)):
            if ledger.claimed + ledger.waiting >= budget:
                break
            if ("grid", index) not in ledger.present:
                study.enqueue_trial(params, user_attrs={GRID_POINT: index})
                ledger.waiting += 1
                enqueued = True
    if ledger.claimed >= budget or (sampler == "grid" and not ledger.waiting):
        return Claim([], reaped, len(ledger.requeue), ledger)
    trial, waiting = None, None
    if sampler == "grid":
        waiting = (
            study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if enqueued
            else [t for t in trials if t.state == TrialState.WAITING]
        )
        trial = pop_waiting(study, waiting)
    if trial is None:
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": we run it
            warnings.simplefilter("ignore")
            trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, WORKER, worker)
    siblings = claim_siblings(study, trial, steps_name, worker, waiting) if waiting and steps_name else []
    return Claim([trial, *siblings], reaped, len(ledger.requeue), ledger)


class Heartbeat:
    """Records the running trials' heartbeats in the storage every ``interval`` seconds, in a thread."""

    def __init__(self, storage: Any, trial_ids: Sequence[int]) -> None:
        self.storage, self.trial_ids = storage, list(trial_ids)
        self.interval = (
            storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                self.storage.record_heartbeat(trial_id)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
