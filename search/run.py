"""``python -m search.run``: an Optuna study over a model's space, every trial tracked in MLflow, the best
trial refit on train + validation, tested once, registered, and the registry's aliases settled.

Any number of workers may run one study at once (``--workers N`` starts N on this machine; more machines
join by running the same command against the same PostgreSQL storage and tracking server). Each worker
claims trials under the study's lock (:mod:`search.budget`), so ``--trials`` is the study's budget and every
grid point runs once. Re-running the same command resumes: finished points are not run again, a trial whose
worker died (Ctrl-C, kill -9) is failed and its point run again. The worker that registers waits until the
study is complete, then refits, tests, registers and writes the record; ``--no-register`` workers only help.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from core.errors import CftuneError, ConfigError
from core.faults import fault_cause
from core.home import PROJECT_ROOT
from core.names import metric_k, study_name_from
from core.params import steps_param
from core.prepare import DataOptions, Prepared, dataset_label
from core.progress import no_inner_bars
from search.arguments import build_parser, settings_from_args
from search.budget import (
    FAILURE,
    Heartbeat,
    claim_next,
    fingerprint,
    lease_name,
    study_lock_name,
)
from search.factories import (
    choose_sampler,
    make_pruner,
    make_sampler,
    make_storage,
    max_steps,
    starting_points,
    study_space,
    worker_seed,
)
from search.faults import store_fault
from search.finalize import closed_after_fault, final_phase
from search.locks import Lease, store_lock
from search.objective import Objective, Outcome
from search.parallelism import resolve_workers
from search.phases import PhaseClock, StudyProgress, after_record, prepare_timed, trial_seconds
from search.pruning import study_patience
from search.record import FILE_NAME, StudyRecord
from search.selection import SELECTION_RULES
from search.settings import DATASETS, StudySettings, data_dir
from search.step_budget import budget_note
from search.summary import format_summary, summarize, trial_line
from search.tracking import StudyTracking, Tracker
from search.validation_sample import study_sample
from spaces import Space, load_space, ranges_note, relative_ranges

#: How often a registering worker looks at the storage while other workers finish their last trials.
POLL_SECONDS = 0.5

__all__ = ["StudySettings", "main", "run_study"]


def resolve_data(settings: StudySettings) -> DataOptions:
    """``--dataset NAME`` as a path under the shared data folder; ``synthetic`` (or nothing) as no path."""
    if settings.dataset is None or settings.dataset == "synthetic":
        if settings.dataset == "synthetic" and (settings.data.data or settings.data.train):
            raise ConfigError("--dataset and --data/--train are alternatives; give one")
        return settings.data
    if settings.dataset not in DATASETS:
        raise ConfigError(f"unknown --dataset {settings.dataset!r}; known: synthetic, {', '.join(DATASETS)}")
    if settings.data.data or settings.data.train:
        raise ConfigError("--dataset and --data/--train are alternatives; give one")
    return replace(settings.data, data=str(data_dir() / settings.dataset))


def check_settings(settings: StudySettings) -> None:
    """Every option checked before any data is read or store is touched."""
    metric_k(settings.metric)
    checks = [
        (
            settings.eval_every is None or settings.eval_every >= 1,
            f"--eval-every must be >= 1, but got {settings.eval_every}",
        ),
        (
            settings.grace_period >= 2,
            f"--grace-period must be >= 2 seconds (heartbeats come every 1-2 s), got {settings.grace_period}",
        ),
        (settings.max_attempts >= 1, f"--max-attempts must be >= 1, but got {settings.max_attempts}"),
        (
            settings.workers is None or settings.workers >= 1,
            f"--workers must be >= 1, but got {settings.workers}",
        ),
        (
            settings.select in SELECTION_RULES,
            f"--select must be one of {SELECTION_RULES}, but got {settings.select!r}",
        ),
        (
            settings.threads is None or settings.threads >= 1,
            f"--threads must be >= 1, but got {settings.threads}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    resolve_data(settings).check()


@dataclass
class Worker:
    """One worker's view of the study: what it needs to claim and run trials."""

    settings: StudySettings
    prepared: Prepared
    space: Space
    sampler: str
    budget: int
    study: Any
    tracking: StudyTracking
    number: int
    lease: Lease
    say: Callable[..., None]
    progress: StudyProgress | None = None  # the study-level progress line, after trials (None: quiet)

    def run(self) -> None:
        """Claim and run trials until the budget is claimed; a registering worker also waits until no trial
        is running anywhere (a dead worker's trial is then requeued and run here)."""

        s = self.settings
        every = s.evaluate_every
        objective = Objective(s, self.prepared, self.space, self.sampler, every, self.tracking)
        while True:
            with store_lock(s.storage_url, study_lock_name(self.study.study_name)):
                claim = claim_next(
                    self.study,
                    storage_url=s.storage_url,
                    budget=self.budget,
                    sampler=self.sampler,
                    space=self.space,
                    seed=s.seed,
                    worker=self.number,
                    max_attempts=s.max_attempts,
                    steps_name=None if torch_in(self.space) else steps_param(s.model),
                )
            for dead in claim.reaped:
                self.tracking.end_dead_trial(dead)
                self.say(f"trial {dead.number}: its worker died; the trial is failed and its point requeued")
            if not claim.trials:
                if s.helper or claim.ledger.running == 0:
                    return
                time.sleep(POLL_SECONDS)  # others are finishing their last trials: watch the storage
                continue
            with Heartbeat(self.study._storage, [t._trial_id for t in claim.trials]):
                try:
                    objective(claim.trials, self.tell)
                except KeyboardInterrupt:
                    self.fail_untold(claim.trials, "interrupted")
                    raise
                except Exception as exc:  # a store failed under the trial: fail it, if the store still can
                    if fault_cause(exc) is not None:
                        with contextlib.suppress(Exception):
                            self.fail_untold(claim.trials, f"store fault: {fault_cause(exc)}")
                    raise

    def fail_untold(self, trials: Sequence[Any], reason: str) -> None:
        """Fail the trials the objective did not get to tell, and end their MLflow runs."""
        for trial in trials:
            if self.study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                trial.set_user_attr(FAILURE, reason)
                self.tell(trial, Outcome("FAIL", None, reason))
                self.tracking.end_dead_trial(self.study._storage.get_trial(trial._trial_id))

    def tell(self, trial: Any, outcome: Outcome) -> None:

        state = TrialState[outcome.state]
        value = outcome.value if state == TrialState.COMPLETE else None
        frozen = self.study.tell(trial, value, state=state, skip_if_finished=True)
        self.say(trial_line(frozen, self.settings.metric))
        if self.progress is not None and self.progress.due():
            self.say(self.progress.line(self.study.get_trials(deepcopy=False)))


def open_study(
    settings: StudySettings,
    space: Space,
    sampler: str,
    prepared: Prepared,
    label: str,
    default: dict[str, Any],
) -> tuple[Any, StudyTracking, int, Lease]:
    """Create or load the study and join it as a new worker, all under the study's lock: the resume checks,
    the worker's number (its seed stream) and lease, and the one parent MLflow run. ``default`` is the
    data-driven default configuration, a new TPE study's first trial."""

    derived = study_name_from(settings.model, label, sampler, prepared.data_version_hash[:8])
    study_name = settings.study_name or derived
    storage = make_storage(settings.storage_url, settings.grace_period)
    longest = max_steps(space, settings.model)
    with store_lock(settings.storage_url, study_lock_name(study_name)):
        study = optuna.create_study(
            study_name=study_name, storage=storage, direction="maximize", load_if_exists=True
        )
        attrs = study.user_attrs
        mine = {
            "data_version_hash": prepared.data_version_hash,
            "search_fingerprint": fingerprint(space, settings, sampler),
            "select": settings.select,
        }
        for key, what in (
            ("data_version_hash", "other data or another split"),
            ("search_fingerprint", "another metric, space, seed or sampler"),
            ("select", "another --select (it would refit and register another trial)"),
        ):
            if attrs.get(key, mine[key]) != mine[key]:
                raise ConfigError(
                    f"study {study_name!r} in {settings.storage_url} was run with {what}; resuming it would "
                    "mix incomparable trials. Choose another --study-name, or repeat the original options"
                )
        new = "search_fingerprint" not in attrs  # the study's validation sample, its cadence with it
        seed, asked = settings.seed, settings.valid_sample_size
        settings.validation_sample = study_sample(study, settings.model, prepared, seed, new=new, asked=asked)
        train = len(prepared.split.train)
        settings.patience = study_patience(study, settings.patience, new=new, train_interactions=train)
        study.pruner = make_pruner(settings.pruner, longest, settings.evaluate_every, sampler)
        if "search_fingerprint" not in attrs:
            for key, value in {
                **mine,
                "model": settings.model,
                "metric": settings.metric,
                "sampler": sampler,
                "pruner": settings.pruner,
                "dataset": label,
                **({"ranges": ranges} if (ranges := relative_ranges(space)) else {}),
            }.items():
                study.set_user_attr(key, value)
            if sampler == "tpe":  # once, by the worker that creates the study
                for point in starting_points(space, default):
                    study.enqueue_trial(point, user_attrs={"starting_point": True})
        number = int(attrs.get("workers_started", 0))
        while True:  # a number whose lease a live process still holds (a store deleted under it) is skipped
            try:
                lease = Lease(settings.storage_url, lease_name(study_name, number))
                break
            except RuntimeError:
                number += 1
        study.set_user_attr("workers_started", number + 1)
        study.sampler = make_sampler(sampler, worker_seed(settings.seed, number))
        if settings.tracking_uri is None and attrs.get("tracking_uri"):
            settings.tracking_uri = str(attrs["tracking_uri"])  # the study's own tracking store
        tracking = StudyTracking(settings, prepared, study, label, sampler)
    return study, tracking, number, lease


def torch_in(space: Space) -> bool:
    """Whether trials of ``space`` may use BPR's torch trainer, whose learning-rate curve depends on the epoch
    count: grid points that differ only in ``epochs`` then cannot share one training as step siblings."""
    choices = [space.fixed.get("trainer"), *space.grid.get("trainer", [])]
    tpe = space.tpe.get("trainer")
    if tpe is not None:
        choices += list(tpe.choices)
    return "torch" in choices


def _helper(settings: StudySettings) -> None:
    """A local helper worker started by ``--workers`` (in a fresh process)."""
    quiet_library_warnings()
    with contextlib.suppress(KeyboardInterrupt):  # the main worker says what happened
        run_study(settings)


def start_helpers(settings: StudySettings, study_name: str, count: int) -> list[Any]:
    """Start ``count`` single-study helper processes beside this worker, each with this worker's threads."""
    ctx = multiprocessing.get_context("spawn")
    helper = replace(
        settings,
        register=False,
        report=False,
        quiet=True,
        workers=1,
        threads=settings.trial_threads,
        study_name=study_name,
    )
    procs = [ctx.Process(target=_helper, args=(helper,), name=f"cftune-worker-{i + 1}") for i in range(count)]
    for p in procs:
        p.start()
    return procs


def run_study(settings: StudySettings) -> StudyRecord:
    """Join (or start) the study, run trials until its budget is claimed; a registering worker then waits for
    the study to complete, refits the best, registers it and writes the record. Returns the record. A store
    that fails (read-only, full, unreachable, another version's schema) is a one-line
    :class:`~core.errors.StoreFault` naming it. Inside a study no library call shows a bar of its own: the
    trials print one progress line, and each later phase shows at most one bar (on a terminal)."""
    try:
        with no_inner_bars():
            return _run_study(settings)
    except CftuneError:
        raise
    except Exception as exc:
        fault = store_fault(exc, settings)
        if fault is None:
            raise
        raise fault from None


def _sayer(quiet: bool) -> Callable[..., None]:
    """The study's printer: silent when ``quiet``; a line of None (a note that does not apply) is skipped."""

    def say(*parts: object) -> None:
        if not quiet and parts and parts[0] is not None:
            print(*parts, flush=True)

    return say


def _run_study(settings: StudySettings) -> StudyRecord:
    """:func:`run_study` without the translation of storage faults."""
    clock = PhaseClock()  # the wall time by phase (search.phases)
    settings.ks = tuple(sorted({*settings.ks, metric_k(settings.metric)}))  # the metric is always computed
    check_settings(settings)
    space = load_space(settings.model, settings.space)
    sampler_name, budget, why = choose_sampler(space, settings)
    Tracker(settings.tracking_uri)  # fail fast, before any data is loaded or model trained
    clock.lap("setup")
    prepared = prepare_timed(resolve_data(settings), clock)
    label = dataset_label(prepared)
    say = _sayer(settings.quiet)
    source = prepared.data.source
    say(f"data: the embedded SYNTHETIC dataset ({source})" if prepared.synthetic else f"data: {source}")
    say(f"sampler: {why}; pruner: {settings.pruner}; metric: validation {settings.metric}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, ranges, default = study_space(settings.model, space, sampler_name, prepared)
    study, tracking, number, lease = open_study(settings, space, sampler_name, prepared, label, default)
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    say(f"study: {study.study_name} (budget {budget} trials, {done} finished; worker {number})")
    say(f"dashboard: optuna-dashboard {settings.storage_url}   (or: python -m search.dashboard)")
    say(f"tracking: {tracking.tracker.uri}   artifacts: {tracking.artifact_location()}")
    say(ranges_note(ranges))
    say(budget_note(settings.model, space.fixed, prepared))
    say(resolve_workers(settings, space.fixed, prepared, budget))
    progress = None
    if not settings.quiet:
        progress = StudyProgress(budget, settings.max_attempts)
        progress.done_before = progress.counts(trials)[0]  # as the line counts them, given-up points included
    worker = Worker(settings, prepared, space, sampler_name, budget, study, tracking, number, lease, say)
    worker.progress = progress
    clock.lap("setup")
    try:
        status = run_workers(worker)
    except Exception as exc:
        fault = closed_after_fault(exc, settings, tracking)
        if fault is None:
            raise
        raise fault from None
    clock.lap("trials")
    clock.trial_seconds = trial_seconds(study.get_trials(deepcopy=False))

    def record_now() -> StudyRecord:
        return summarize(
            settings,
            prepared,
            study,
            clock.wall(),
            status,
            sampler=sampler_name,
            tracking_uri=tracking.tracker.uri,
            parent_run_id=tracking.parent_run_id,
            space=space,  # the summary warns when the best trial sits on an edge of it
        )

    if settings.helper:
        if status == "KILLED":
            raise KeyboardInterrupt
        return record_now()
    try:
        with store_lock(settings.storage_url, study_lock_name(study.study_name)):  # one registration a study
            record = record_now()
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            ending = status == "FINISHED" or not running
            final_phase(settings, prepared, record, tracking, say, status=status, ending=ending, clock=clock)
    except Exception as exc:
        fault = closed_after_fault(exc, settings, tracking)
        if fault is None:
            raise
        raise fault from None
    clock.lap("record")  # the record written on the parent run, the run ended
    if settings.report and status == "FINISHED":
        report(record, settings.storage_url)
        clock.lap("report")
    after_record(record, clock, tracking)
    print(format_summary(record), flush=True)
    if status == "KILLED":
        raise KeyboardInterrupt
    return record


def run_workers(worker: Worker) -> str:
    """Run ``worker`` and the ``--workers`` helpers beside it: "FINISHED", or "KILLED" on an interrupt."""
    settings = worker.settings
    name = worker.study.study_name
    count = settings.workers or 1
    helpers = start_helpers(settings, name, count - 1) if count > 1 else []
    status = "FINISHED"
    try:
        worker.run()
    except KeyboardInterrupt:
        status = "KILLED"
        worker.say(
            "\ninterrupted: the running trial is failed; the same command resumes the study and re-runs it"
        )
    finally:
        for p in helpers:
            if status == "KILLED" and p.pid is not None:
                p.terminate()
            p.join()
        worker.lease.release()
    return status


def report(record: StudyRecord, storage_url: str) -> None:
    """The study's report, built by its own command (``python -m reports.build`` on the record: search/ never
    imports reports/), which prints where it went. A report must never fail a study that finished and was
    recorded: its failure is a warning."""
    with tempfile.TemporaryDirectory(prefix="cftune-record-") as tmp:
        path = Path(tmp) / FILE_NAME
        path.write_bytes(record.to_json())
        command = [sys.executable, "-m", "reports.build", "--record", str(path), "--storage", storage_url]
        # this project's reports/, wherever the current folder is
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        done = subprocess.run([*command, "--brief"], env=env, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        print(f"warning: report not built: {why}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- CLI
def quiet_library_warnings() -> None:
    """Warnings about APIs we use on purpose (heartbeats with ask/tell, multivariate TPE)."""

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # MLflow logs the traceback of each database error it then re-raises: the StoreFault says it in a line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the running trial as "interrupted", like Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(__doc__.split("\n\n")[0]).parse_args(argv)
    quiet_library_warnings()
    previous = signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C interrupts the running trial even where the parent shell started us with SIGINT ignored
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run_study(settings_from_args(args))
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    return 0


if __name__ == "__main__":
    sys.exit(main())
