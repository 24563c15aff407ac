"""``python -m reports.build --study NAME``: one finished study as a page someone who did not run it can read
in a glance, plus the same numbers as Markdown (printed, and saved beside the HTML).

Reads only: the Optuna study (trials, intermediate values), the parent MLflow run (the study record
``summary.json``, see :mod:`search.record`, and ``split/data.json``) and the final run's ``run/`` folder,
whose stored factors are evaluated again with the one evaluator for per-user values. Nothing is trained;
EASE's numbers are taken from the record.

The MLflow store is the study's own (``search.run`` records it on the study) unless ``--tracking-uri`` is
given, so ``--study NAME --storage URL`` is enough, from any folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from core.artifacts import RunArtifacts, load_run
from core.errors import CftuneError, ConfigError
from core.evaluate import EvalResult, evaluate, evaluate_scorer
from reports import figures
from reports.html import Card, Section, render_page, table
from search.record import FILE_NAME, RegistryDecision, StudyRecord
from search.settings import PROJECT_ROOT, default_storage

if TYPE_CHECKING:
    from search.tracking import Tracker

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
def open_study(study_name: str, storage: str) -> Any:
    """The study, or a clear error listing the studies that do exist (a typo must not create an empty DB)."""
    import optuna

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


def study_tracker(study: Any, tracking_uri: str | None = None) -> Tracker:
    """The MLflow store of ``study``: ``tracking_uri`` if given, else the one the study recorded (its
    ``tracking_uri`` user attribute, set by ``search.run``), else ``MLFLOW_TRACKING_URI`` or the default."""
    from search.tracking import Tracker

    recorded = study.user_attrs.get("tracking_uri")
    return Tracker(tracking_uri or (str(recorded) if recorded else None))


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


def read_json_artifact(client: Any, run_id: str, path: str) -> dict[str, Any] | None:
    text = read_text_artifact(client, run_id, path)
    return None if text is None else dict(json.loads(text))


def read_record(client: Any, parent_run_id: str, study_name: str) -> StudyRecord:
    """The study record on the parent run (a :class:`~search.record.RecordError` names a schema mismatch)."""
    text = read_text_artifact(client, parent_run_id, FILE_NAME)
    if text is None:
        raise ReportError(f"study {study_name!r} has no {FILE_NAME} yet: it is running or was never finished")
    return StudyRecord.from_json(text)


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

    study: Any  # the Optuna study
    record: StudyRecord  # summary.json on the parent run
    data: dict[str, Any]  # split/data.json on the parent run
    parent_run_id: str
    tracker: Tracker  # the study's MLflow store
    final: RunArtifacts | None
    final_note: str


def find_final_run(client: Any, parent_run_id: str, record: StudyRecord) -> str | None:
    if record.registry is not None and record.registry.run_id:
        return record.registry.run_id
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.kind = 'final' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def load_results(
    study_name: str, storage: str | None = None, tracking_uri: str | None = None
) -> StudyResults:
    """The study, its record and its final run folder; the MLflow store as :func:`study_tracker` finds it."""
    storage = storage or default_storage()
    study = open_study(study_name, storage)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if not parent:
        raise ReportError(f"study {study_name!r} has no MLflow parent run (was it run by search.run?)")
    tracker = study_tracker(study, tracking_uri)
    client = tracker.client
    try:
        client.get_run(parent)
    except Exception:  # MlflowException for an id unknown to this store
        raise ReportError(
            f"parent run {parent} of study {study_name!r} is not in {tracker.uri} (pass --tracking-uri)"
        ) from None
    record = read_record(client, parent, study_name)
    data = read_json_artifact(client, parent, "split/data.json") or {}
    final_id = find_final_run(client, parent, record)
    final, note = None, ""
    if final_id is None:
        note = "no final run (the study was run with --no-register, or did not finish)"
    else:
        try:
            final = download_run_folder(client, final_id)
        except CftuneError as err:
            note = str(err)
    return StudyResults(study, record, data, str(parent), tracker, final, note)


# ---------------------------------------------------------------------------------------------- numbers
RefComparison = dict[str, Any]  # one reference comparison on one metric, as search.record's ``vs`` holds it


def _vs(record: StudyRecord, reference: str, metric: str) -> RefComparison | None:
    """The comparison with ``reference`` ("popularity" or "ease") on ``metric``, if the study made it."""
    return record.vs.get(reference, {}).get(metric)


def _baseline_test(record: StudyRecord, reference: str, metric: str) -> float | None:
    """A reference model's test ``metric`` from the record's ``baselines`` (EASE is None when skipped)."""
    ref = (record.baselines or {}).get(reference)
    if not ref:
        return None
    value = ref["test"].get(metric)
    return None if value is None else float(value)


def _pct(c: RefComparison | None) -> str:
    if c is None:
        return "-"
    p = c["improvement_pct"]
    return f"{p['value']:+.1f}% [{p['low']:+.1f}, {p['high']:+.1f}]"


def _sig(c: RefComparison | None) -> str:
    if c is None:
        return ""
    d = c["difference"]
    return "significant" if d["low"] > 0 or d["high"] < 0 else "not significant"


def test_rows(record: StudyRecord) -> list[list[str]]:
    """The test table: model with CI, popularity, EASE, relative differences with CIs."""
    test = record.test or {}
    rows = []
    for m in [m for m in TABLE_METRICS if m in test]:
        pop, ease = _vs(record, "popularity", m), _vs(record, "ease", m)
        ci = pop["model"] if pop else None
        pop_value = _baseline_test(record, "popularity", m)
        ease_value = _baseline_test(record, "ease", m)
        rows.append(
            [
                m,
                f"{test[m]:.4f}",
                f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci else "-",
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
    ci = pop["model"] if pop else {"value": record.test[metric], "low": nan, "high": nan}
    text = (
        f"{model}, {chosen} of {n} trials (trial {best.number}), reaches test {metric} {ci['value']:.4f} "
        f"(95% CI {ci['low']:.4f}–{ci['high']:.4f})"
    )
    parts = [
        f"{c['improvement_pct']['value']:+.0f}% vs {name} ({_sig(c)})"
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
    return (record.selection or {}).get("note")


def cards(record: StudyRecord) -> list[Card]:
    metric = record.metric
    out = []
    best = record.best_trial
    if best is not None:
        label = "selected trial's validation" if selection_note(record) else "best validation"
        out.append(Card(f"{label} {metric}", f"{best.value:.4f}", f"trial {best.number}"))
    pop = _vs(record, "popularity", metric)
    if pop is not None:
        ci = pop["model"]
        out.append(
            Card(f"test {metric}", f"{ci['value']:.4f}", f"95% CI [{ci['low']:.4f}, {ci['high']:.4f}]")
        )
    for name in ("popularity", "ease"):
        c = _vs(record, name, metric)
        if c is not None:
            p = c["improvement_pct"]
            label = "EASE" if name == "ease" else name
            out.append(
                Card(f"vs {label}", f"{p['value']:+.1f}%", f"[{p['low']:+.1f}, {p['high']:+.1f}] {_sig(c)}")
            )
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


def data_rows(record: StudyRecord, data: dict[str, Any]) -> list[list[str]]:
    rows = [["source", record.data_source + (" (SYNTHETIC)" if record.synthetic else "")]]
    rows.append(["data_version_hash", record.data_version_hash])
    for key, value in (data.get("data") or {}).items():
        if key != "source":
            rows.append([f"data: {key}", _fmt(value)])
    for key, value in (data.get("split") or {}).items():
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
    from core.baselines import PopularityScorer

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
    groups: dict[str, dict[str, dict[str, float]]] = {model: {}, "popularity": {}}
    if ease_vs is not None:
        groups["EASE"] = {}
    for m in [m for m in TABLE_METRICS if m in pop_vs]:
        groups[model][m] = pop_vs[m]["model"]
        groups["popularity"][m] = pop_vs[m]["reference"]
        if ease_vs is not None and m in ease_vs:
            groups["EASE"][m] = ease_vs[m]["reference"]
    section.figures.append(figures.metric_bars(groups, "Test metrics with 95% CIs"))
    note = (r.baselines or {}).get("note", "")
    section.html = table(TEST_HEADER, test_rows(r)) + f"<p>{note}</p>"
    match = report.recomputed_matches()
    if match is not None:
        section.html += (
            "<p>Recomputed from the stored factors: matches summary.json.</p>"
            if match
            else "<p><b>Warning: the stored factors do not reproduce summary.json's test numbers.</b></p>"
        )
    return section


def _score_range(report: StudyReport) -> dict[str, Any] | None:
    final = report.results.final
    return report.record.score_range or (final.metadata.get("score_range") if final else None)


def sections(report: StudyReport) -> list[Section]:
    r, study = report.record, report.results.study
    metric = r.metric
    out: list[Section] = [_test_section(report)]
    for title, why, builder in (
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
    ):
        fig, reason = builder(study, metric)
        out.append(Section(title, why, [fig] if fig is not None else [], missing=reason))
    k_metric = (
        metric if report.evaluation is not None and metric in report.evaluation.result.per_user else "ndcg@10"
    )
    per_user = Section(
        f"Per-user {k_metric} on test",
        "The average hides the spread: most users get either a hit near the top or nothing. "
        "Popularity for scale.",
    )
    scores = Section(
        "Score range",
        "Raw scores of validation users' unseen items; downstream blending normalises with p01 and p99.",
    )
    if report.evaluation is not None and report.popularity is not None:
        per_user.figures.append(
            figures.binned_histogram(
                {
                    r.model.upper(): report.evaluation.result.per_user[k_metric],
                    "popularity": report.popularity.per_user[k_metric],
                },
                title=f"Distribution of per-user test {k_metric}",
                xaxis=k_metric,
                value_range=(0.0, 1.0),
            )
        )
        zero = float(np.mean(report.evaluation.result.per_user[k_metric] == 0))
        k = k_metric.split("@")[1]
        per_user.html = f"<p>{100 * zero:.1f}% of test users get no relevant item in the top {k}.</p>"
    else:
        per_user.missing = report.results.final_note
    sr = _score_range(report)
    if report.scores is not None and report.scores.size:
        marks = {k: float(sr[k]) for k in ("p01", "p99") if sr and sr.get(k) is not None}
        scores.figures.append(
            figures.binned_histogram(
                {"scores": report.scores}, title="Score distribution", xaxis="score", bins=60, marks=marks
            )
        )
        if sr:
            scores.html = table(
                ["method", "min", "p01", "mean", "p99", "max", "std", "samples"],
                [
                    [
                        sr["method"],
                        *(f"{float(sr[k]):.4g}" for k in ("min", "p01", "mean", "p99", "max", "std")),
                        f"{int(sr['num_samples']):,}",
                    ]
                ],
            )
    else:
        scores.missing = report.results.final_note or "no scores"
    out += [per_user, scores]
    seg = r.segmentation or report.results.data.get("segmentation")
    out.append(
        Section(
            "Users: trainable vs cold-start",
            "Only trainable users get factors; cold-start users are served the popularity list.",
            [figures.segment_counts(seg)] if seg else [],
            missing="" if seg else "no segmentation (the split was given as files)",
        )
    )
    params = r.final_params or (r.best_trial.params if r.best_trial is not None else {})
    study_rows = [
        ["sampler", r.sampler],
        ["pruner", r.pruner],
        ["objective", f"maximise validation {metric}"],
        ["MLflow parent run", report.results.parent_run_id],
        ["tracking store", r.tracking_uri],
    ]
    if r.registry is not None:
        study_rows.append(["registry", registry_line(r.registry)])
        study_rows.append(["registry decision", r.registry.reason])
    given_up = table(GIVEN_UP_HEADER, given_up_rows(r)) if r.given_up else ""
    out.append(
        Section(
            "Data and configuration",
            "What the numbers above were measured on, and the configuration that won.",
            html='<div class="grid2"><div>'
            + table(["data", ""], data_rows(r, report.results.data))
            + "</div><div>"
            + table(["parameter", "value"], [[k, _fmt(v)] for k, v in params.items()])
            + table(["study", ""], study_rows)
            + "</div></div>"
            + given_up,
        )
    )
    return out


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
        note = (r.baselines or {}).get("note")
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
                [[str(seg["users_total"]), str(seg["users_trainable"]), str(seg["users_cold_start"])]],
            ),
        ]
    if report.evaluation is not None:
        m = r.metric if r.metric in report.evaluation.result.per_user else "ndcg@10"
        zero = float(np.mean(report.evaluation.result.per_user[m] == 0))
        lines += ["", f"- test users with {m} = 0: {100 * zero:.1f}%"]
    sr = r.score_range
    if sr:
        lines.append(
            f"- score range ({sr['method']}): p01 {sr['p01']:.4g}, mean {sr['mean']:.4g}, "
            f"p99 {sr['p99']:.4g}, min {sr['min']:.4g}, max {sr['max']:.4g}"
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


def build_report(
    study_name: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    log_to_mlflow: bool = True,
) -> ReportPaths:
    """Write ``<out>.html`` and ``<out>.md`` for a finished study; log both to its parent run.

    ``storage`` defaults to :func:`search.settings.default_storage`; ``tracking_uri`` to the study's own
    (see :func:`study_tracker`); ``out`` to ``reports/out/<study>.html`` in the project."""
    html_path = Path(out) if out is not None else OUT_DIR / f"{study_name}.html"
    if html_path.suffix != ".html":
        raise ConfigError(f"--out must end in .html, but got {str(html_path)!r}")
    storage = storage or default_storage()
    results = load_results(study_name, storage, tracking_uri)
    report = analyse(results)
    md_path = html_path.with_suffix(".md")
    r = results.record
    page = render_page(
        title=f"Study {r.study_name}: {r.model.upper()}",
        subtitle=f"{r.data_source} · objective validation {r.metric} · {r.status} · "
        f"data {r.data_version_hash}",
        verdict=verdict(r),
        cards=cards(r),
        sections=sections(report),
        synthetic=r.synthetic,
        footer=f"cftune report · study {study_name} · storage {storage} · tracking {results.tracker.uri}",
    )
    text = markdown(report, html_path)
    from core.artifacts import atomic_write_bytes

    for path, content in ((html_path, page), (md_path, text)):
        atomic_write_bytes(path, content.encode())
    if log_to_mlflow:
        results.tracker.log_files(
            results.parent_run_id, {"report.html": page.encode(), "report.md": text.encode()}, "report"
        )
    return ReportPaths(html_path, md_path)


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True, help="the study name (search.run prints it)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite under $CFTUNE_HOME)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="default: the study's own (recorded by search.run), MLFLOW_TRACKING_URI, or sqlite under "
        "$CFTUNE_HOME",
    )
    p.add_argument(
        "--out",
        default=None,
        help="HTML path (default: the project's reports/out/<study>.html); .md beside it",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to the study's MLflow run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = build_report(
            args.study,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            out=args.out,
            log_to_mlflow=not args.no_log,
        )
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths.markdown.read_text(), end="")
    print(f"markdown: {paths.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
