"""The end of a study, done once: refit the best configuration on train + validation, test it once against
popularity and EASE, register it and settle the aliases. Workers that only help (``--no-register``) never
get here; a registering worker gets here when the study is complete (no trial left to claim or running)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from core.evaluate import compare
from core.final import final_test
from core.names import metric_names
from core.params import stopped_at
from core.prepare import Prepared
from search.record import Baselines, StudyRecord
from search.references import compute_references
from search.registry import register_final
from search.settings import StudySettings, reference_cache
from search.tracking import StudyTracking


def finalize(
    settings: StudySettings,
    prepared: Prepared,
    record: StudyRecord,
    tracking: StudyTracking,
    say: Callable[..., None],
) -> None:
    """Fill ``record``'s test, references and registry fields (the best trial must exist)."""
    best = record.best_trial
    assert best is not None
    params: dict[str, Any] = {**best.params_full, "random_state": settings.seed}
    if best.best_step:  # the trial ended on its best step: the refit trains that long
        params = stopped_at(settings.model, params, int(best.best_step))
    say(f"refitting trial {best.number} on train + validation and testing once ...")
    bars = not settings.quiet and sys.stderr.isatty()  # progress bars on a terminal; a quiet study shows none
    final = final_test(prepared, settings.model, params, ks=settings.ks, show_progress=bars)
    refs, cached = compute_references(
        prepared, ks=settings.ks, cache_dir=reference_cache(), show_progress=bars
    )
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
