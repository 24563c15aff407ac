"""The HTML page's sections, in order: test against the references, the trials' figures, per-user values,
the score range, user segments, and the data and configuration.
"""

from __future__ import annotations

from html import escape

import numpy as np

from core.evaluate import Interval, ScoreRange
from reports import figures
from reports.analysis import StudyReport
from reports.html import Section, table
from reports.summary import (
    GIVEN_UP_HEADER,
    PHASE_HEADER,
    TABLE_METRICS,
    TEST_HEADER,
    data_rows,
    format_value,
    given_up_rows,
    phase_rows,
    registry_line,
    test_rows,
)
from search.record import SegmentCounts, StudyRecord


def _test_section(report: StudyReport) -> Section:
    r = report.record
    section = Section(
        "Test: best model vs popularity and EASE",
        "The best configuration refit on train + validation and tested once; whiskers are 95% bootstrap CIs "
        "over test users. A tuned model should clear popularity by far and at least match EASE.",
    )
    pop_vs, ease_vs = r.vs.get("popularity"), r.vs.get("ease")
    if r.test is None or pop_vs is None:
        section.missing = "no test result: the study did not finish or was run without the final refit"
        return section
    model = r.model.upper()
    groups: dict[str, dict[str, Interval]] = {model: {}, "popularity": {}}
    if ease_vs is not None:
        groups["EASE"] = {}
    for m in [m for m in TABLE_METRICS if m in pop_vs]:
        groups[model][m] = pop_vs[m].model
        groups["popularity"][m] = pop_vs[m].reference
        if ease_vs is not None and m in ease_vs:
            groups["EASE"][m] = ease_vs[m].reference
    section.figures.append(figures.metric_bars(groups, "Test metrics with 95% CIs"))
    note = "" if r.baselines is None else r.baselines.note
    section.html = table(TEST_HEADER, test_rows(r)) + f"<p>{note}</p>"
    match = report.recomputed_matches()
    if match is not None:
        section.html += (
            "<p>Recomputed from the stored factors: matches summary.json.</p>"
            if match
            else "<p><b>Warning: the stored factors do not reproduce summary.json's test numbers.</b></p>"
        )
    return section


#: The figures drawn from the Optuna study's trials: (title, why, builder).
TRIAL_FIGURES = (
    (
        "Optimization history",
        "Each dot a completed trial; the line is the best found so far. A line still climbing at the end "
        "means more trials would likely help.",
        figures.optimization_history,
    ),
    (
        "Validation curves per trial",
        "Validation metric after each training step. Red dotted curves were pruned: stopped early "
        "because they trailed the median of earlier trials at the same step.",
        figures.intermediate_curves,
    ),
    (
        "Parallel coordinates",
        "Which parameter combinations the good trials (dark) share.",
        figures.parallel_coordinates,
    ),
    (
        "Hyperparameter importances",
        "How much of the variation in the validation metric each parameter explains.",
        figures.param_importances,
    ),
    (
        "Slice plots",
        "The validation metric against each parameter on its own; later trials are darker.",
        figures.slices,
    ),
)


def _trial_sections(report: StudyReport) -> list[Section]:
    out = []
    for title, why, builder in TRIAL_FIGURES:
        fig, reason = builder(report.results.study, report.record.metric)
        out.append(Section(title, why, [fig] if fig is not None else [], missing=reason))
    return out


def _per_user_section(report: StudyReport) -> Section:
    r, ev = report.record, report.evaluation
    k_metric = r.metric if ev is not None and r.metric in ev.result.per_user else "ndcg@10"
    section = Section(
        f"Per-user {k_metric} on test",
        "The average hides the spread: most users get either a hit near the top or nothing. "
        "Popularity for scale.",
    )
    if ev is None or report.popularity is None:
        section.missing = report.results.final_note
        return section
    section.figures.append(
        figures.binned_histogram(
            {
                r.model.upper(): ev.result.per_user[k_metric],
                "popularity": report.popularity.per_user[k_metric],
            },
            title=f"Distribution of per-user test {k_metric}",
            xaxis=k_metric,
            value_range=(0.0, 1.0),
        )
    )
    zero = float(np.mean(ev.result.per_user[k_metric] == 0))
    k = k_metric.split("@")[1]
    section.html = f"<p>{100 * zero:.1f}% of test users get no relevant item in the top {k}.</p>"
    return section


def _score_range(report: StudyReport) -> ScoreRange | None:
    """The record's score range; for a record without one, the final run folder's."""
    final = report.results.final
    stored = final.metadata.get("score_range") if final is not None else None
    return report.record.score_range or (ScoreRange(**stored) if stored else None)


def _score_section(report: StudyReport) -> Section:
    section = Section(
        "Score range",
        "Raw scores of validation users' unseen items; downstream blending normalises with p01 and p99.",
    )
    if report.scores is None or not report.scores.size:
        section.missing = report.results.final_note or "no scores"
        return section
    sr = _score_range(report)
    marks = {} if sr is None else {"p01": float(sr.p01), "p99": float(sr.p99)}
    section.figures.append(
        figures.binned_histogram(
            {"scores": report.scores}, title="Score distribution", xaxis="score", bins=60, marks=marks
        )
    )
    if sr is not None:
        stats = (sr.min, sr.p01, sr.mean, sr.p99, sr.max, sr.std)
        section.html = table(
            ["method", "min", "p01", "mean", "p99", "max", "std", "samples"],
            [[sr.method, *(f"{float(v):.4g}" for v in stats), f"{int(sr.num_samples):,}"]],
        )
    return section


def _users_section(seg: SegmentCounts | None) -> Section:
    return Section(
        "Users: trainable vs cold-start",
        "Only trainable users get factors; cold-start users are served the popularity list.",
        [figures.segment_counts(seg)] if seg else [],
        missing="" if seg else "no segmentation (the split was given as files)",
    )


def _config_section(r: StudyRecord) -> Section:
    params = r.final_params or (r.best_trial.params if r.best_trial is not None else {})
    study_rows = [
        ["sampler", r.sampler],
        ["pruner", r.pruner],
        ["objective", f"maximise validation {r.metric}"],
        ["MLflow parent run", r.parent_run_id],
        ["tracking store", r.tracking_uri],
    ]
    if r.registry is not None:
        study_rows.append(["registry", registry_line(r.registry)])
        study_rows.append(["registry decision", r.registry.reason])
    tables = table(GIVEN_UP_HEADER, given_up_rows(r)) if r.given_up else ""
    phases = phase_rows(r)
    if phases:
        note = "" if r.phases is None else r.phases.note
        tables += "<h3>Where the time went</h3>" + table(PHASE_HEADER, phases) + f"<p>{escape(note)}</p>"
    return Section(
        "Data and configuration",
        "What the numbers above were measured on, the configuration that won, and where the time went.",
        html='<div class="grid2"><div>'
        + table(["data", ""], data_rows(r))
        + "</div><div>"
        + table(["parameter", "value"], [[k, format_value(v)] for k, v in params.items()])
        + table(["study", ""], study_rows)
        + "</div></div>"
        + tables,
    )


def sections(report: StudyReport) -> list[Section]:
    """The page's sections, in order."""
    return [
        _test_section(report),
        *_trial_sections(report),
        _per_user_section(report),
        _score_section(report),
        _users_section(report.record.segmentation),
        _config_section(report.record),
    ]
