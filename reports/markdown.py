"""The report's numbers as Markdown: printed by ``reports.build`` and saved beside the HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reports.analysis import StudyReport
from reports.summary import (
    PHASE_HEADER,
    TEST_HEADER,
    format_value,
    phase_rows,
    registry_line,
    selection_note,
    test_rows,
    trial_counts,
    verdict,
)


def markdown(report: StudyReport, html_path: Path | None = None) -> str:
    """The page's numbers as plain text (tables readable in a terminal too)."""
    r = report.record
    lines = [f"# Study {r.study_name} ({r.model.upper()})", ""]
    if r.synthetic:
        lines += ["**SYNTHETIC data**: the embedded demo dataset, not real users.", ""]
    lines += [verdict(r), ""]
    lines.append(f"- data: {r.data_source} (data_version_hash {r.data_version_hash})")
    lines.append(
        f"- trials: {trial_counts(r)}; steps computed {r.steps_computed} of {r.steps_unpruned} unpruned; "
        f"wall time {r.wall_seconds:.1f} s; status {r.status}"
    )
    lines.append(f"- sampler {r.sampler}, pruner {r.pruner}")
    for g in r.given_up:
        params = ", ".join(f"{k}={format_value(v)}" for k, v in g.params.items())
        lines.append(f"- given up: {params} ({g.reason}; trials {', '.join(map(str, g.trials))})")
    best = r.best_trial
    if best is not None:
        note = selection_note(r)
        label = "selected trial" if note else "best trial"
        lines.append(f"- {label} {best.number}: validation {r.metric} {best.value:.4f}")
        if note:
            lines.append(f"- {note}")
        lines.append("- params: " + ", ".join(f"{k}={format_value(v)}" for k, v in best.params.items()))
    rows = test_rows(r)
    if rows:
        lines += ["", "## Test (95% paired bootstrap CI over users)", "", _md_table(TEST_HEADER, rows)]
        note = None if r.baselines is None else r.baselines.note
        if note:
            lines += ["", note]
    seg = r.segmentation
    if seg:
        lines += [
            "",
            "## Users",
            "",
            _md_table(
                ["users", "trainable", "cold-start"],
                [[str(seg.users_total), str(seg.users_trainable), str(seg.users_cold_start)]],
            ),
        ]
    if report.evaluation is not None:
        m = r.metric if r.metric in report.evaluation.result.per_user else "ndcg@10"
        zero = float(np.mean(report.evaluation.result.per_user[m] == 0))
        lines += ["", f"- test users with {m} = 0: {100 * zero:.1f}%"]
    sr = r.score_range
    if sr:
        lines.append(
            f"- score range ({sr.method}): p01 {sr.p01:.4g}, mean {sr.mean:.4g}, "
            f"p99 {sr.p99:.4g}, min {sr.min:.4g}, max {sr.max:.4g}"
        )
    if r.registry is not None:
        lines.append(f"- registry: {registry_line(r.registry)} ({r.registry.reason})")
    phases = phase_rows(r)
    if phases:
        lines += ["", "## Where the time went", "", _md_table(PHASE_HEADER, phases)]
    if html_path is not None:
        lines += ["", f"report: {html_path}"]
    return "\n".join(lines) + "\n"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)
