"""The study record's numbers as text: the verdict, the cards and the tables, shared by the HTML page and
the Markdown so that both say the same thing.
"""

from __future__ import annotations

from typing import Any

from core.evaluate import Comparison, Interval
from reports.html import Card
from search.record import RegistryDecision, StudyRecord

TABLE_METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")


def _vs(record: StudyRecord, reference: str, metric: str) -> Comparison | None:
    """The comparison with ``reference`` ("popularity" or "ease") on ``metric``, if the study made it."""
    return record.vs.get(reference, {}).get(metric)


def _baseline_test(record: StudyRecord, reference: str, metric: str) -> float | None:
    """A reference model's test ``metric`` from the record's ``baselines`` (EASE is None when skipped)."""
    baselines = record.baselines
    if baselines is None:
        return None
    ref = baselines.popularity if reference == "popularity" else baselines.ease
    value = None if ref is None else ref.test.get(metric)
    return None if value is None else float(value)


def _pct(c: Comparison | None) -> str:
    if c is None:
        return "-"
    p = c.improvement_pct
    return f"{p.value:+.1f}% [{p.low:+.1f}, {p.high:+.1f}]"


def _sig(c: Comparison | None) -> str:
    if c is None:
        return ""
    return "significant" if c.difference.excludes_zero() else "not significant"


def test_rows(record: StudyRecord) -> list[list[str]]:
    """The test table: model with CI, popularity, EASE, relative differences with CIs."""
    test = record.test or {}
    rows = []
    for m in [m for m in TABLE_METRICS if m in test]:
        pop, ease = _vs(record, "popularity", m), _vs(record, "ease", m)
        ci = pop.model if pop else None
        pop_value = _baseline_test(record, "popularity", m)
        ease_value = _baseline_test(record, "ease", m)
        rows.append(
            [
                m,
                f"{test[m]:.4f}",
                f"[{ci.low:.4f}, {ci.high:.4f}]" if ci else "-",
                "-" if pop_value is None else f"{pop_value:.4f}",
                "-" if ease_value is None else f"{ease_value:.4f}",
                _pct(pop),
                _pct(ease),
            ]
        )
    return rows


TEST_HEADER = ("metric", "model", "model 95% CI", "popularity", "EASE", "vs popularity", "vs EASE")


def trial_counts(record: StudyRecord) -> str:
    t = record.trials
    return f"{t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('fail', 0)} failed"


def verdict(record: StudyRecord) -> str:
    """One sentence: what was found, how sure, against what."""
    model = record.model.upper()
    n = sum(record.trials.values())
    best = record.best_trial
    if best is None:
        return f"{model}: {n} trials, none completed; no result yet."
    metric = record.metric
    chosen = "selected" if selection_note(record) else "best"
    if record.test is None:
        value = f"{best.value:.4f}"
        return f"{model}: {chosen} of {n} trials reaches validation {metric} {value} (not tested yet)."
    pop, ease = _vs(record, "popularity", metric), _vs(record, "ease", metric)
    nan = float("nan")
    ci = pop.model if pop else Interval(record.test[metric], nan, nan)
    text = (
        f"{model}, {chosen} of {n} trials (trial {best.number}), reaches test {metric} {ci.value:.4f} "
        f"(95% CI {ci.low:.4f}–{ci.high:.4f})"
    )
    parts = [
        f"{c.improvement_pct.value:+.0f}% vs {name} ({_sig(c)})"
        for name, c in (("popularity", pop), ("EASE", ease))
        if c is not None
    ]
    return text + (": " + ", ".join(parts) if parts else "") + "."


def registry_aliases(r: RegistryDecision) -> list[str]:
    """The aliases the version held when the study ended: ``champion`` also holds its data's alias."""
    if r.decision == "champion":
        return ["champion", r.data_alias]
    if r.decision == "data-champion":
        return [r.data_alias]
    return []


def registry_line(r: RegistryDecision) -> str:
    aliases = " ".join(f"@{a}" for a in registry_aliases(r))
    return f"{r.name} v{r.version}: {r.decision}" + (f" ({aliases})" if aliases else "")


def selection_note(record: StudyRecord) -> str | None:
    """Why the study's trial is not its best by validation (:mod:`search.selection`), or None."""
    return None if record.selection is None else record.selection.note


def cards(record: StudyRecord) -> list[Card]:
    metric = record.metric
    out = []
    best = record.best_trial
    if best is not None:
        label = "selected trial's validation" if selection_note(record) else "best validation"
        out.append(Card(f"{label} {metric}", f"{best.value:.4f}", f"trial {best.number}"))
    pop = _vs(record, "popularity", metric)
    if pop is not None:
        ci = pop.model
        out.append(Card(f"test {metric}", f"{ci.value:.4f}", f"95% CI [{ci.low:.4f}, {ci.high:.4f}]"))
    for name in ("popularity", "ease"):
        c = _vs(record, name, metric)
        if c is not None:
            p = c.improvement_pct
            label = "EASE" if name == "ease" else name
            out.append(Card(f"vs {label}", f"{p.value:+.1f}%", f"[{p.low:+.1f}, {p.high:+.1f}] {_sig(c)}"))
    out.append(Card("trials", f"{sum(record.trials.values())}", trial_counts(record)))
    computed, full = record.steps_computed, record.steps_unpruned
    if full:
        out.append(
            Card(
                "compute saved by pruning",
                f"{100 * (1 - computed / full):.0f}%",
                f"{computed} of {full} steps",
            )
        )
    out.append(Card("wall time", _duration(record.wall_seconds), record.status))
    if record.registry is not None:
        r = record.registry
        aliases = " ".join(f"@{a}" for a in registry_aliases(r))
        out.append(Card("registry", f"v{r.version} {r.decision}", f"{r.name} {aliases}".strip()))
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {format_value(x)}" for k, x in v.items())
    return str(v)


def data_rows(record: StudyRecord) -> list[list[str]]:
    rows = [["source", record.data_source + (" (SYNTHETIC)" if record.synthetic else "")]]
    rows.append(["data_version_hash", record.data_version_hash])
    for key, value in record.data_description.items():
        if key != "source":
            rows.append([f"data: {key}", format_value(value)])
    for key, value in record.split_description.items():
        rows.append([f"split: {key}", format_value(value)])
    return rows


def given_up_rows(record: StudyRecord) -> list[list[str]]:
    return [
        [
            ", ".join(f"{k}={format_value(v)}" for k, v in g.params.items()),
            g.reason,
            ", ".join(map(str, g.trials)),
        ]
        for g in record.given_up
    ]


GIVEN_UP_HEADER = ("configuration given up", "reason", "trials")
PHASE_HEADER = ("phase", "wall seconds", "share")


def phase_rows(record: StudyRecord) -> list[list[str]]:
    """The record's phase table (where the wall time went), its total last; none for a record without one.
    The trials row says how many trials ran and their own seconds (summed over workers, mean, longest)."""
    phases = record.phases
    if phases is None:
        return []
    total = phases.total
    rows = []
    for name, seconds in phases.seconds.items():
        label = name
        own = list(phases.trial_seconds.values())
        if name == "trials" and own:
            label += (
                f" ({len(own)} trials, {sum(own):.1f} s their own; mean {sum(own) / len(own):.2f} s, "
                f"longest {max(own):.2f} s)"
            )
        share = f"{100 * seconds / total:.1f}%" if total > 0 else ""
        rows.append([label, f"{seconds:.2f}", share])
    rows.append(["total", f"{total:.2f}", ""])
    if record.artifact_bytes is not None:
        rows.append(["artifacts written", f"{record.artifact_bytes / 1e6:.1f} MB", "--keep-factors"])
    return rows
