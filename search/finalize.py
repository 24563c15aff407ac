"""The end of a study, done once: refit the best configuration on train + validation, test it once against
popularity and EASE, register it and settle the aliases. Workers that only help (``--no-register``) never
get here; a registering worker gets here when the study is complete (no trial left to claim or running).

It can be resumed at any point. Its steps are refit and test, references, the ``final`` run (model logged,
version registered, run ended), aliases, record. A run killed before the version exists leaves a final run
that the next run closes as FAILED (:meth:`~search.tracking.StudyTracking.repair_final_runs`) before doing
the phase again; a version that exists is never registered twice (:func:`~search.registry.find_registered`);
a study whose record already names its registered version is not refit at all, only its aliases settled."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from core.blend import describe
from core.errors import StoreFault
from core.evaluate import compare
from core.final import final_test
from core.names import metric_names
from core.params import stopped_at
from core.prepare import Prepared
from search.faults import store_fault
from search.phases import PhaseClock
from search.record import Baselines, StudyRecord
from search.references import compute_references
from search.registry import decision_of, find_registered, register_final, registered_name, settle
from search.settings import StudySettings, reference_cache
from search.tracking import StudyTracking
from search.validation_sample import sample_users


def finalize(
    settings: StudySettings,
    prepared: Prepared,
    record: StudyRecord,
    tracking: StudyTracking,
    say: Callable[..., None],
    clock: PhaseClock | None = None,
) -> None:
    """Fill ``record``'s test, references and registry fields (the best trial must exist). ``clock``: laps
    ``refit``, ``test``, ``references`` and ``registration`` (the resume checks before them: ``setup``)."""
    clock = clock or PhaseClock()
    best = record.best_trial
    assert best is not None
    closed = tracking.repair_final_runs()
    if closed:
        say(f"closed {closed} final run(s) an interrupted final phase left behind (now FAILED)")
    if _resume_finished(settings, record, tracking, say):
        return
    params: dict[str, Any] = {**best.params_full, "random_state": settings.seed}
    if best.best_step:  # the trial ended on its best step: the refit trains that long
        params = stopped_at(settings.model, params, int(best.best_step))
    clock.lap("setup")
    say(f"refitting trial {best.number} on train + validation and testing once ...")
    bars = not settings.quiet and sys.stderr.isatty()  # progress bars on a terminal; a quiet study shows none
    weight = best.popularity_weight if settings.popularity_blend else 0.0
    if weight:
        say(f"  with the popularity blend chosen on validation: {describe(weight)} (core.blend)")
    final = final_test(
        prepared, settings.model, params, ks=settings.ks, show_progress=bars, popularity_weight=weight
    )
    clock.lap("test", parts={"refit": final.refit_seconds})
    say("references: popularity and EASE on the same split ...")
    refs, cached = compute_references(
        prepared,
        ks=settings.ks,
        cache_dir=reference_cache(settings.storage_url),
        show_progress=bars,
        sample=sample_users(prepared, settings.validation_sample),
    )
    clock.lap("references")
    reported = metric_names(settings.ks, ("ndcg", "recall"))
    record.vs = {"popularity": {k: c for k, c in final.comparison.items() if k in reported}}
    if refs.ease_test is not None:
        record.vs["ease"] = compare(final.test, refs.ease_test, reported)
    record.test = dict(final.test.metrics)
    record.baselines = Baselines.of(refs)
    record.baselines_cached = cached
    record.score_range = final.score_range
    record.final_params = params
    record.registry = register_final(
        tracking,
        settings.model,
        prepared,
        params,
        final,
        best_value=best.value,
        study=record.study_name,
        trial_number=best.number,
        valid_metrics=best.valid,
        metric=settings.metric,
    )


def _resume_finished(
    settings: StudySettings,
    record: StudyRecord,
    tracking: StudyTracking,
    say: Callable[..., None],
) -> bool:
    """A study run again after its final phase completed: take the test, references and parameters from its
    record instead of refitting, and settle the aliases anew. False when there is nothing to resume from."""
    best = record.best_trial
    assert best is not None
    before = tracking.previous_record()
    if before is None or before.registry is None or before.best_trial is None:
        return False
    if before.best_trial.number != best.number or before.data_version_hash != record.data_version_hash:
        return False
    client = tracking.tracker.client
    name = registered_name(settings.model)
    version = find_registered(client, name, record.study_name, best.number, record.data_version_hash)
    if version is None or str(version.version) != before.registry.version:
        return False
    say(f"trial {best.number} is already refit, tested and registered (version {version.version}): not refit")
    for part in ("test", "vs", "baselines", "baselines_cached", "score_range", "final_params"):
        setattr(record, part, getattr(before, part))
    record.registry = decision_of(client, name, version, settle(client, name))
    return True


def final_phase(
    settings: StudySettings,
    prepared: Prepared,
    record: StudyRecord,
    tracking: StudyTracking,
    say: Callable[..., None],
    *,
    status: str,
    ending: bool,
    clock: PhaseClock | None = None,
) -> None:
    """A finished study's :func:`~search.finalize.finalize`, then (when ``ending``) the parent run closed with
    ``status`` and the record, which carries ``clock``'s phases so far and their sum as its wall time.
    Interrupted (Ctrl-C, SIGTERM), it says so, closes the final run as FAILED and the parent run as KILLED
    and re-raises: the same command then finishes the phase exactly once."""
    try:
        if status == "FINISHED" and record.best_trial is not None:
            finalize(settings, prepared, record, tracking, say, clock)
        if clock is not None:
            clock.lap("registration")
            record.phases = clock.times()
            record.wall_seconds = round(clock.wall(), 2)
        if ending:
            tracking.finish(status, record)
    except KeyboardInterrupt:
        if status != "FINISHED":
            raise
        print(
            "\ninterrupted during the final phase (refit, test, register): every trial is done; "
            "the same command finishes the final phase",
            file=sys.stderr,
            flush=True,
        )
        tracking.repair_final_runs()
        tracking.finish("KILLED", None)
        raise


def closed_after_fault(exc: Exception, settings: StudySettings, tracking: StudyTracking) -> StoreFault | None:
    """For a storage fault ``exc`` escaping a study, the one-line :class:`~core.errors.StoreFault` naming the
    store to raise instead, once this study's open final runs are closed FAILED and its parent run FAILED
    (each as far as the broken store allows; the next run repairs the rest). None for anything else."""
    fault = store_fault(exc, settings)
    if fault is None:
        return None
    with contextlib.suppress(Exception):
        tracking.repair_final_runs()
    with contextlib.suppress(Exception):
        tracking.finish("FAILED", None)
    return fault
