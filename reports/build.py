"""``python -m reports.build --study NAME``: one finished study as a page someone who did not run it can read
in a glance, plus the same numbers as Markdown (printed, and saved beside the HTML).

Reads only: the study record (:mod:`search.record`, ``summary.json`` on the study's parent MLflow run, or a
file given with ``--record``), the MLflow store the record names (the final run's ``run/`` folder, whose
stored factors are evaluated again with the one evaluator for per-user values) and the Optuna study's trials
for the figures. Nothing is trained; EASE's numbers are taken from the record.

``--study NAME`` looks the study's parent run up in ``--tracking-uri`` (default: ``MLFLOW_TRACKING_URI``, or
SQLite under ``$CFTUNE_HOME``); ``--record PATH`` is self-contained: the record names its tracking store and
parent run (``search.run`` builds its report that way). The trials come from ``--storage`` (default:
``$CFTUNE_STORAGE``, or SQLite under ``$CFTUNE_HOME``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import scipy.sparse as sp

from core.artifacts import RunArtifacts, atomic_write_bytes, load_run
from core.baselines import PopularityScorer
from core.errors import CftuneError, ConfigError
from core.evaluate import Comparison, EvalResult, Interval, ScoreRange, evaluate, evaluate_scorer
from core.home import PROJECT_ROOT, home
from reports import figures
from reports.html import Card, Section, render_page, table
from search.record import FILE_NAME, RegistryDecision, SegmentCounts, StudyRecord

#: Where reports go by default: the project's ``reports/out``, whatever the current folder.
OUT_DIR = PROJECT_ROOT / "reports" / "out"
KS = (10, 20)
TABLE_METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")
SCORE_SAMPLE_USERS = 500


class ReportError(CftuneError):
    """The study or one of its runs cannot be read; the message says which and what to do."""


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path


# ---------------------------------------------------------------------------------------------- reading
# The default stores follow search.settings' rule (reports import search.record only): $CFTUNE_STORAGE and
# MLFLOW_TRACKING_URI, else SQLite under core.home.
def default_storage() -> str:
    return os.environ.get("CFTUNE_STORAGE") or f"sqlite:///{home() / 'optuna.db'}"


def resolve_tracking_uri(uri: str | None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home() / 'mlflow.db'}"


def tracking_client(uri: str) -> Any:
    """An MLflow client on ``uri``; a SQLite store must exist (a typo must not create an empty one)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReportError(f"no MLflow tracking store at {uri} (pass --tracking-uri)")
    # mlflow takes ~3-5 s to import (measured): only commands that talk to a store pay for it
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def open_study(study_name: str, storage: str) -> Any:
    """The study, or a clear error listing the studies that do exist (a typo must not create an empty DB)."""
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise ReportError(f"no Optuna storage at {storage} (pass --storage)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise ReportError(
            f"no study {study_name!r} in {storage}; known: {', '.join(names) or 'none'}"
        ) from None


def download_run_folder(client: Any, run_id: str, artifact_path: str = "run") -> RunArtifacts:
    """A run folder logged as artifacts, read into memory (the download is temporary)."""
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, artifact_path, tmp)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise ReportError(f"run {run_id} has no {artifact_path}/ artifacts: {exc}") from None
        return load_run(local)


def read_text_artifact(client: Any, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # absent: the caller says what that means
            return None
        return Path(local).read_text()


def read_record(client: Any, parent_run_id: str, study_name: str) -> StudyRecord:
    """The study record on the parent run (a :class:`~search.record.RecordError` names a schema mismatch)."""
    text = read_text_artifact(client, parent_run_id, FILE_NAME)
    if text is None:
        raise ReportError(f"study {study_name!r} has no {FILE_NAME} yet: it is running or was never finished")
    return StudyRecord.from_json(text, parent_run_id=parent_run_id)


def read_record_file(path: str | Path) -> StudyRecord:
    try:
        return StudyRecord.from_json(Path(path).read_bytes())
    except OSError as exc:
        raise ReportError(f"cannot read the study record {path}: {exc}") from None


def find_record(study_name: str, tracking_uri: str | None = None) -> StudyRecord:
    """The record of ``study_name`` on its parent run (tagged ``kind=study``) in the tracking store; an
    unknown name lists the studies the store does hold."""
    uri = resolve_tracking_uri(tracking_uri)
    client = tracking_client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if "'" in study_name:
        raise ConfigError(f"a study name holds no quote, but got {study_name!r}")
    found = (
        client.search_runs(
            experiments,
            f"tags.kind = 'study' and tags.study_name = '{study_name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiments
        else []
    )
    if not found:
        runs = client.search_runs(experiments, "tags.kind = 'study'") if experiments else []
        known = sorted({r.data.tags.get("study_name", "") for r in runs} - {""})
        raise ReportError(
            f"no study {study_name!r} in the tracking store {uri}; known: {', '.join(known) or 'none'} "
            "(pass --tracking-uri)"
        )
    return read_record(client, found[0].info.run_id, study_name)


@dataclass(frozen=True)
class FolderEval:
    """A run folder evaluated on its own test split: per-user values and top items kept."""

    result: EvalResult
    history: sp.csr_matrix  # train + validation: excluded from test ranking
    truth: sp.csr_matrix


def evaluate_folder(run: RunArtifacts, ks: Sequence[int] = KS) -> FolderEval:
    """Test metrics from the stored factors alone, exactly as the study computed them."""
    if not len(run.test):
        raise ReportError(f"{run.path} holds no test split (a trial folder?); use the final run's folder")
    history = run.matrix("train", "valid")
    truth = run.matrix("test")
    result = evaluate(run.user_factors, run.item_factors, truth, history, ks=ks, keep_top_items=True)
    return FolderEval(result, history, truth)


def score_sample(
    run: RunArtifacts, history: sp.csr_matrix, *, max_users: int = SCORE_SAMPLE_USERS
) -> np.ndarray:
    """Scores of validation users' unseen items (a seeded sample of users), as ``score_range`` sees them."""
    valid = run.matrix("valid")
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if len(users) == 0:
        users = np.arange(run.user_factors.shape[0])
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, size=max_users, replace=False))
    scores = np.asarray(run.user_factors[users] @ run.item_factors.T, dtype=np.float32)
    seen = history[users].toarray() > 0
    return scores[~seen]


@dataclass
class StudyResults:
    """Everything a finished study left behind, read back."""

    study: Any  # the Optuna study (its trials draw the figures)
    record: StudyRecord  # summary.json on the parent run
    client: Any  # an MLflow client on the study's tracking store
    tracking_uri: str
    final: RunArtifacts | None
    final_note: str


def find_final_run(client: Any, record: StudyRecord) -> str | None:
    if record.registry is not None and record.registry.run_id:
        return record.registry.run_id
    parent = client.get_run(record.parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.kind = 'final' and tags.`mlflow.parentRunId` = '{record.parent_run_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def load_results(
    record: StudyRecord, storage: str | None = None, tracking_uri: str | None = None
) -> StudyResults:
    """The study's trials and final run folder; the MLflow store is the record's unless ``tracking_uri``."""
    study = open_study(record.study_name, storage or default_storage())
    uri = tracking_uri or record.tracking_uri
    client = tracking_client(uri)
    parent = record.parent_run_id
    try:
        client.get_run(parent)
    except Exception:  # MlflowException for an id unknown to this store
        raise ReportError(
            f"parent run {parent} of study {record.study_name!r} is not in {uri} (pass --tracking-uri)"
        ) from None
    final_id = find_final_run(client, record)
    final, note = None, ""
    if final_id is None:
        note = "no final run (the study was run with --no-register, or did not finish)"
    else:
        try:
            final = download_run_folder(client, final_id)
        except CftuneError as err:
            note = str(err)
    return StudyResults(study, record, client, uri, final, note)


# ---------------------------------------------------------------------------------------------- numbers
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


def _trial_counts(record: StudyRecord) -> str:
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
    out.append(Card("trials", f"{sum(record.trials.values())}", _trial_counts(record)))
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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def data_rows(record: StudyRecord) -> list[list[str]]:
    rows = [["source", record.data_source + (" (SYNTHETIC)" if record.synthetic else "")]]
    rows.append(["data_version_hash", record.data_version_hash])
    for key, value in record.data_description.items():
        if key != "source":
            rows.append([f"data: {key}", _fmt(value)])
    for key, value in record.split_description.items():
        rows.append([f"split: {key}", _fmt(value)])
    return rows


def given_up_rows(record: StudyRecord) -> list[list[str]]:
    return [
        [", ".join(f"{k}={_fmt(v)}" for k, v in g.params.items()), g.reason, ", ".join(map(str, g.trials))]
        for g in record.given_up
    ]


GIVEN_UP_HEADER = ("configuration given up", "reason", "trials")


# ---------------------------------------------------------------------------------------------- the page
@dataclass
class StudyReport:
    """The figures' inputs, computed once, turned into both the HTML and the Markdown."""

    results: StudyResults
    evaluation: FolderEval | None
    popularity: EvalResult | None
    scores: np.ndarray | None

    @property
    def record(self) -> StudyRecord:
        return self.results.record

    def recomputed_matches(self) -> bool | None:
        """Whether the stored factors give back the test numbers in summary.json (they must)."""
        test = self.record.test
        if self.evaluation is None or test is None:
            return None
        got = self.evaluation.result.metrics
        return all(abs(got[m] - v) < 1e-6 for m, v in test.items() if m in got)


def analyse(results: StudyResults) -> StudyReport:
    if results.final is None:
        return StudyReport(results, None, None, None)
    ev = evaluate_folder(results.final)
    pop = evaluate_scorer(
        PopularityScorer.fit(ev.history), ev.truth, ev.history, ks=KS, users=ev.result.users
    )
    return StudyReport(results, ev, pop, score_sample(results.final, ev.history))


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
    given_up = table(GIVEN_UP_HEADER, given_up_rows(r)) if r.given_up else ""
    return Section(
        "Data and configuration",
        "What the numbers above were measured on, and the configuration that won.",
        html='<div class="grid2"><div>'
        + table(["data", ""], data_rows(r))
        + "</div><div>"
        + table(["parameter", "value"], [[k, _fmt(v)] for k, v in params.items()])
        + table(["study", ""], study_rows)
        + "</div></div>"
        + given_up,
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


def markdown(report: StudyReport, html_path: Path | None = None) -> str:
    """The page's numbers as plain text (tables readable in a terminal too)."""
    r = report.record
    lines = [f"# Study {r.study_name} ({r.model.upper()})", ""]
    if r.synthetic:
        lines += ["**SYNTHETIC data**: the embedded demo dataset, not real users.", ""]
    lines += [verdict(r), ""]
    lines.append(f"- data: {r.data_source} (data_version_hash {r.data_version_hash})")
    lines.append(
        f"- trials: {_trial_counts(r)}; steps computed {r.steps_computed} of {r.steps_unpruned} unpruned; "
        f"wall time {r.wall_seconds:.1f} s; status {r.status}"
    )
    lines.append(f"- sampler {r.sampler}, pruner {r.pruner}")
    for g in r.given_up:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in g.params.items())
        lines.append(f"- given up: {params} ({g.reason}; trials {', '.join(map(str, g.trials))})")
    best = r.best_trial
    if best is not None:
        note = selection_note(r)
        label = "selected trial" if note else "best trial"
        lines.append(f"- {label} {best.number}: validation {r.metric} {best.value:.4f}")
        if note:
            lines.append(f"- {note}")
        lines.append("- params: " + ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
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
    if html_path is not None:
        lines += ["", f"report: {html_path}"]
    return "\n".join(lines) + "\n"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def log_report(client: Any, run_id: str, files: dict[str, bytes]) -> None:
    """The report's files as artifacts ``report/`` of the study's parent run."""
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        client.log_artifacts(run_id, tmp, "report")


def build_report(
    record: StudyRecord,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    log_to_mlflow: bool = True,
) -> ReportPaths:
    """Write ``<out>.html`` and ``<out>.md`` for the study of ``record``; log both to its parent run.

    ``storage`` (the trials) defaults to :func:`default_storage`; ``tracking_uri`` to the record's;
    ``out`` to ``reports/out/<study>.html`` in the project."""
    html_path = Path(out) if out is not None else OUT_DIR / f"{record.study_name}.html"
    if html_path.suffix != ".html":
        raise ConfigError(f"--out must end in .html, but got {str(html_path)!r}")
    storage = storage or default_storage()
    results = load_results(record, storage, tracking_uri)
    report = analyse(results)
    md_path = html_path.with_suffix(".md")
    r = record
    page = render_page(
        title=f"Study {r.study_name}: {r.model.upper()}",
        subtitle=f"{r.data_source} · objective validation {r.metric} · {r.status} · "
        f"data {r.data_version_hash}",
        verdict=verdict(r),
        cards=cards(r),
        sections=sections(report),
        synthetic=r.synthetic,
        footer=f"cftune report · study {r.study_name} · storage {storage} · tracking {results.tracking_uri}",
    )
    text = markdown(report, html_path)
    for path, content in ((html_path, page), (md_path, text)):
        atomic_write_bytes(path, content.encode())
    if log_to_mlflow:
        log_report(
            results.client, r.parent_run_id, {"report.html": page.encode(), "report.md": text.encode()}
        )
    return ReportPaths(html_path, md_path)


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="the study name (search.run prints it): its record on its parent run")
    which.add_argument("--record", help=f"a study record file ({FILE_NAME}); it names its tracking store")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL of the trials (default: sqlite under $CFTUNE_HOME)",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="default: the record's own with --record; with --study, MLFLOW_TRACKING_URI or sqlite under "
        "$CFTUNE_HOME",
    )
    p.add_argument(
        "--out",
        default=None,
        help="HTML path (default: the project's reports/out/<study>.html); .md beside it",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to the study's MLflow run")
    p.add_argument(
        "--brief",
        action="store_true",
        help="print only where the report went (the line search.run shows), not the Markdown",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        record = read_record_file(args.record) if args.record else find_record(args.study, args.tracking_uri)
        paths = build_report(
            record,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            out=args.out,
            log_to_mlflow=not args.no_log,
        )
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.brief:
        print(f"report: {paths.html}  (summary: {paths.markdown})")
        return 0
    print(paths.markdown.read_text(), end="")
    print(f"markdown: {paths.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
