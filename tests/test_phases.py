"""Where a study's time went: the phase table in the record, the report and the printed summary, summing to
the wall time; the study-level progress line; and no progress bars redrawn into a file or a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from core.progress import Throttle, default_bar, no_inner_bars
from reports.summary import phase_rows
from search.phases import PhaseClock, StudyProgress
from search.record import FILE_NAME, PhaseTimes, StudyRecord
from search.run import run_study
from search.settings import StudySettings
from search.summary import format_summary
from tests.test_record import full_record

ROOT = Path(__file__).resolve().parents[1]
TINY_GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 3}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
"""
#: The phases every finished, registered study's table names, in the order they ran.
STUDY_PHASES = ["setup", "load", "split", "trials", "refit", "test", "references", "registration", "record"]


class FakeClock:
    """A clock the test moves by hand: no waiting, no wall-clock guesses."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tiny_space(folder: Path) -> str:
    path = folder / "tiny.yaml"
    path.write_text(TINY_GRID)
    return str(path)


# ---------------------------------------------------------------------------------------------- the clock
def test_laps_are_contiguous_so_the_phases_sum_to_the_wall_time() -> None:
    clock = FakeClock()
    phases = PhaseClock(clock)
    clock.now = 2.0
    phases.lap("load")
    clock.now = 10.0
    phases.lap("test", parts={"refit": 5.0})  # the refit measured inside the refit + test lap
    clock.now = 11.0
    phases.lap("load")  # a phase seen again adds up
    assert phases.seconds == {"load": 3.0, "refit": 5.0, "test": 3.0}
    assert sum(phases.seconds.values()) == phases.wall() == 11.0


def test_a_part_never_takes_more_than_its_lap() -> None:
    clock = FakeClock()
    phases = PhaseClock(clock)
    clock.now = 1.0
    phases.lap("test", parts={"refit": 4.0})
    assert phases.seconds == {"refit": 1.0, "test": 0.0}


# ---------------------------------------------------------------------------------------------- a study
@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyRecord, float, StudySettings]:
    """One registered study with its report, and the wall time of ``run_study`` measured around it."""
    folder = tmp_path_factory.mktemp("phases")
    s = StudySettings(
        model="als",
        space=tiny_space(folder),
        storage=f"sqlite:///{folder}/optuna.db",
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        quiet=True,
        report=True,
    )
    t0 = time.perf_counter()
    record = run_study(s)
    return record, time.perf_counter() - t0, s


def test_the_record_names_each_phase_and_they_sum_to_the_wall_time(
    study: tuple[StudyRecord, float, StudySettings],
) -> None:
    record, wall, _ = study
    assert record.phases is not None
    assert list(record.phases.seconds) == [*STUDY_PHASES, "report"]
    assert abs(record.phases.total - wall) < 1.0
    assert abs(record.wall_seconds - wall) < 1.0
    assert sorted(map(int, record.phases.trial_seconds)) == [0, 1, 2, 3]  # every trial's own seconds
    assert all(seconds > 0 for seconds in record.phases.trial_seconds.values())


def test_the_stored_record_holds_the_phases_before_it_and_the_parent_run_the_rest(
    study: tuple[StudyRecord, float, StudySettings], tmp_path: Path
) -> None:
    record, _, s = study
    client = MlflowClient(tracking_uri=s.tracking_uri)
    stored = StudyRecord.from_json(
        Path(client.download_artifacts(record.parent_run_id, FILE_NAME, str(tmp_path))).read_bytes()
    )
    assert stored.phases is not None
    assert list(stored.phases.seconds) == STUDY_PHASES[:-1]  # written before its own writing
    assert abs(stored.phases.total - stored.wall_seconds) < 0.05
    metrics = client.get_run(record.parent_run_id).data.metrics
    assert {"phase_trials_seconds", "phase_record_seconds", "phase_report_seconds"} <= set(metrics)
    assert metrics["wall_seconds"] == record.wall_seconds


def test_a_record_without_phases_still_reads_and_phases_read_back_typed() -> None:
    raw = json.loads(full_record().to_json())
    del raw["phases"]
    assert StudyRecord.from_json(json.dumps(raw)).phases is None  # a record from before phase tables
    timed = replace(full_record(), phases=PhaseTimes({"load": 1.0, "trials": 2.5}, {"0": 1.2}, "how"))
    back = StudyRecord.from_json(timed.to_json())
    assert back == timed and isinstance(back.phases, PhaseTimes) and back.phases.total == 3.5


# ---------------------------------------------------------------------------------------------- the table
def timed_record(**seconds: float) -> StudyRecord:
    return replace(full_record(), phases=PhaseTimes(dict(seconds), {"0": 2.0, "1": 4.0}))


def test_the_printed_summary_ends_with_the_phase_table() -> None:
    lines = format_summary(timed_record(load=1.0, trials=6.0, refit=3.0)).splitlines()
    assert lines[-5:] == [
        "where the time went (wall seconds):",
        "  load               1.00   10.0%",
        "  trials             6.00   60.0%   2 trials, 6.00 s their own time; per trial mean 3.00 s, "
        "longest 4.00 s",
        "  refit              3.00   30.0%",
        "  total             10.00",
    ]


def test_a_summary_without_a_completed_trial_ends_with_the_table_too() -> None:
    record = replace(timed_record(load=1.0, trials=1.0), best_trial=None, selection=None)
    assert format_summary(record).splitlines()[-1] == "  total              2.00"


def test_the_report_shows_the_phase_table_with_its_total() -> None:
    rows = phase_rows(timed_record(load=1.0, trials=3.0))
    assert rows[0] == ["load", "1.00", "25.0%"]
    assert rows[1][0].startswith("trials (2 trials, 6.0 s their own") and rows[1][1:] == ["3.00", "75.0%"]
    assert rows[-1] == ["total", "4.00", ""]
    assert phase_rows(replace(full_record(), phases=None)) == []


# ---------------------------------------------------------------------------------------------- progress
def trials_in(study: Any, *, complete: int, pruned: int, running: int) -> list[Any]:
    dist = {"x": IntDistribution(0, 100)}
    for i in range(complete + pruned):
        state = TrialState.COMPLETE if i < complete else TrialState.PRUNED
        value = 0.1 if state == TrialState.COMPLETE else None
        study.add_trial(
            create_trial(
                params={"x": i}, distributions=dist, value=value, state=state, intermediate_values={1: 0.1}
            )
        )
    for _ in range(running):
        study.ask()
    return study.get_trials(deepcopy=False)


def test_the_progress_line_counts_done_running_and_left_with_an_eta_from_finished_trials() -> None:
    trials = trials_in(optuna.create_study(), complete=3, pruned=1, running=2)
    clock = FakeClock()
    progress = StudyProgress(budget=10, max_attempts=2, clock=clock, terminal=True)
    assert progress.counts(trials) == (4, 2, 4)
    clock.now = 100.0  # 4 trials in 100 s; 4 left and 2 running: 6 x 25 s
    assert progress.line(trials) == (
        "progress: 4 done, 2 running, 4 left of 10 trials; ETA 2m30s (from 4 trials finished in 1m40s)"
    )


def test_a_resumed_study_estimates_only_from_the_trials_finished_since() -> None:
    trials = trials_in(optuna.create_study(), complete=5, pruned=0, running=0)
    clock = FakeClock()
    progress = StudyProgress(budget=8, max_attempts=2, done_before=4, clock=clock, terminal=True)
    clock.now = 30.0
    assert progress.line(trials) == (
        "progress: 5 done, 0 running, 3 left of 8 trials; ETA 1m30s (from 1 trial finished in 30.0s)"
    )
    assert StudyProgress(budget=5, max_attempts=2, done_before=5, clock=clock).line(trials) == (
        "progress: 5 done, 0 running, 0 left of 5 trials"
    )


def test_away_from_a_terminal_the_progress_line_comes_at_most_once_per_interval() -> None:
    clock = FakeClock()
    progress = StudyProgress(budget=4, max_attempts=2, throttle=Throttle(30.0, clock), terminal=False)
    due = []
    for now in (0.0, 10.0, 29.9, 30.0, 45.0, 61.0):
        clock.now = now
        due.append(progress.due())
    assert due == [True, False, False, True, False, True]
    assert StudyProgress(budget=4, max_attempts=2, terminal=True).due()


def test_a_default_bar_needs_many_units_a_terminal_and_no_enclosing_phase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert default_bar(11, 10) and not default_bar(10, 10)
    with no_inner_bars():
        assert not default_bar(11, 10)
    assert default_bar(11, 10)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not default_bar(11, 10)


def test_a_study_piped_to_a_file_prints_plain_lines_and_no_bar(tmp_path: Path) -> None:
    """Evaluation bars start above ``PROGRESS_MIN_USERS`` validation users: lowered here, every validation
    step of every trial (and the test) is over it, so before bars were kept to a terminal this output held
    the carriage returns of redrawn ``evaluate`` bars."""
    code = (
        "import sys, core.evaluate as e; e.PROGRESS_MIN_USERS = 10; "
        "from search.run import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["--model", "als", "--space", tiny_space(tmp_path), "--no-report"]
    args += [
        "--storage",
        f"sqlite:///{tmp_path}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,  # bytes: text mode would turn a carriage return into a newline
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"\r" not in done.stdout + done.stderr and b"evaluate" not in done.stderr
    lines = done.stdout.decode().split("\n")[:-1]
    assert lines[-1].startswith("  artifacts written: ") and lines[-1].endswith(" MB (--keep-factors)")
    assert lines[-2].startswith("  total ")
    table = lines[lines.index("where the time went (wall seconds):") + 1 : -2]
    assert [row.split()[0] for row in table] == STUDY_PHASES
    total = float(lines[-2].split()[1])
    assert abs(sum(float(row.split()[1]) for row in table) - total) < 0.05
    assert lines[lines.index(next(x for x in lines if x.startswith("trial    0"))) + 1].startswith(
        "progress: 1 done, "
    )  # the first progress line comes at once, later ones at most one per interval
