"""Where a study's time goes: a clock that splits the wall time into contiguous phases (load, split, trials,
refit, test, references, registration, record, report, and the setup between them), each finished trial's
own seconds, and the study-level progress line printed while trials run.

The record (``summary.json``) is written on the parent run before the report is built, by its own process:
so the stored record's table ends with ``registration``; the record's writing and the report are measured
by ``search.run`` around them, printed in the table it ends with, and logged as metrics of the parent run
(``phase_record_seconds``, ``phase_report_seconds``), on which the record sits."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from core.data import load
from core.prepare import DataOptions, Prepared, load_data, prepare_given
from core.progress import Throttle, is_terminal
from search.budget import Ledger
from search.record import PhaseTimes, StudyRecord

if TYPE_CHECKING:
    from search.tracking import StudyTracking

#: How the phases of the stored record were measured, said in the record itself.
NOTE = (
    "wall seconds by phase, measured by search.run in the registering worker; setup is option checks, "
    "store connections, joining the study and the final phase's resume checks; the record's writing and the "
    "report run after the record is stored: search.run prints them and logs them on the parent run"
)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class PhaseClock:
    """Wall time by phase: each :meth:`lap` gives the time since the previous lap to one phase, so the phases
    are contiguous and sum to the wall time since the clock started (a phase seen twice adds up)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start = self._mark = clock()
        self.seconds: dict[str, float] = {}
        self.trial_seconds: dict[str, float] = {}  # each finished trial's own seconds (:func:`trial_seconds`)

    def lap(self, name: str, *, parts: Mapping[str, float] | None = None) -> float:
        """The seconds since the last lap, given to ``name`` less ``parts`` (phase -> seconds measured inside
        this lap, e.g. the refit inside refit + test), which go to their own phases. Returns the lap."""
        now = self.clock()
        elapsed, rest = now - self._mark, now - self._mark
        self._mark = now
        for part, seconds in (parts or {}).items():
            seconds = min(max(seconds, 0.0), rest)
            self.seconds[part] = self.seconds.get(part, 0.0) + seconds
            rest -= seconds
        self.seconds[name] = self.seconds.get(name, 0.0) + rest
        return elapsed

    def wall(self) -> float:
        """Seconds since the clock started (what the phases sum to at the last lap)."""
        return self._mark - self.start

    def times(self, note: str = NOTE) -> PhaseTimes:
        """The phases so far, with each finished trial's own seconds."""
        return PhaseTimes(
            seconds={name: round(s, 3) for name, s in self.seconds.items()},
            trial_seconds=dict(self.trial_seconds),
            note=note,
        )


def trial_seconds(trials: Sequence[Any]) -> dict[str, float]:
    """str(number) -> seconds from start to end, for every finished trial (any worker, any earlier run)."""
    return {
        str(t.number): round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
        for t in trials
        if t.state in FINISHED and t.datetime_start is not None and t.datetime_complete is not None
    }


def prepare_timed(data: DataOptions, clock: PhaseClock) -> Prepared:
    """:meth:`DataOptions.prepare` with its two halves timed: ``load`` (the files read, or the embedded data
    made) and ``split`` (segmentation and the train / validation / test split)."""
    data.check()
    if data.train and data.valid and data.test:
        read = data.read_options()
        train, valid, test = (load(path, **read) for path in (data.train, data.valid, data.test))
        clock.lap("load")
        prepared = prepare_given(train, valid, test, positive_threshold=data.positive_threshold)
    else:
        loaded = load_data(data.data, seed=data.seed, **data.read_options())
        clock.lap("load")
        prepared = data.split_data(loaded)
    clock.lap("split")
    return prepared


def duration(seconds: float) -> str:
    """``75.4`` -> ``1m15s``; under a minute, tenths of a second."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@dataclass
class StudyProgress:
    """The study-level progress line: trials done (finished or given up), running (any worker) and left of
    the budget, with an ETA from the trials finished since this worker began. Printed after each trial on a
    terminal; elsewhere at most once per ``throttle`` interval, so a log file holds plain lines."""

    budget: int
    max_attempts: int
    done_before: int = 0  # trials already done when this worker began (a resumed study)
    clock: Callable[[], float] = time.perf_counter
    throttle: Throttle = field(default_factory=Throttle)
    terminal: bool = field(default_factory=lambda: is_terminal(sys.stdout))  # where the line goes
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def counts(self, trials: Sequence[Any]) -> tuple[int, int, int]:
        """(done, running, left) as the budget counts them (:class:`search.budget.Ledger`)."""
        ledger = Ledger.of(trials, self.max_attempts)
        return ledger.claimed - ledger.running, ledger.running, max(0, self.budget - ledger.claimed)

    def line(self, trials: Sequence[Any]) -> str:
        done, running, left = self.counts(trials)
        text = f"progress: {done} done, {running} running, {left} left of {self.budget} trials"
        finished_here = done - self.done_before
        if left + running and finished_here > 0:
            elapsed = self.clock() - self.started
            eta = elapsed / finished_here * (left + running)
            trials = "trial" if finished_here == 1 else "trials"
            text += f"; ETA {duration(eta)} (from {finished_here} {trials} finished in {duration(elapsed)})"
        return text

    def due(self) -> bool:
        """Whether to print the line now: always on a terminal, else when the throttle lets it through."""
        return self.terminal or self.throttle.ready()


def after_record(record: StudyRecord, clock: PhaseClock, tracking: StudyTracking) -> None:
    """The phases after the stored record (its writing, the report) added to the record this run returns and
    prints, and logged on the parent run as metrics, next to the record; a store that refuses them now only
    warns (the study is done and recorded)."""
    stored = set(record.phases.seconds) if record.phases is not None else set()
    record.phases = clock.times()
    record.wall_seconds = round(clock.wall(), 2)
    later = {f"phase_{name}_seconds": s for name, s in record.phases.seconds.items() if name not in stored}
    try:
        tracking.tracker.log(tracking.parent_run_id, metrics={**later, "wall_seconds": record.wall_seconds})
    except Exception as exc:  # a metric after the end must not fail a recorded study
        print(f"warning: the record's and report's times not logged: {exc}", file=sys.stderr)
