"""``python -m reports.build --study NAME``: one finished study as a page someone who did not run it can read
in a glance, plus the same numbers as Markdown (printed, and saved beside the HTML).

Reads only: the Optuna study (trials, intermediate values), the parent MLflow run (``summary.json``,
``split/data.json``) and the final run's ``run/`` folder, whose stored factors are evaluated again with the
one evaluator for per-user values. Nothing is trained; EASE's numbers are taken from ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.artifacts import RunArtifacts, load_run
from core.errors import CftuneError, ConfigError
from core.evaluate import EvalResult, evaluate, evaluate_scorer
from reports import figures
from reports.html import Card, Section, render_page, table
from search.run import DEFAULT_STORAGE

OUT_DIR = Path("reports") / "out"
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


def download_run_folder(client: Any, run_id: str, artifact_path: str = "run") -> RunArtifacts:
    """A run folder logged as artifacts, read into memory (the download is temporary)."""
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, artifact_path, tmp)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise ReportError(f"run {run_id} has no {artifact_path}/ artifacts: {exc}") from None
        return load_run(local)


def read_json_artifact(client: Any, run_id: str, path: str) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # absent: the caller says what that means
            return None
        return dict(json.loads(Path(local).read_text()))


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
class StudyRecord:
    """Everything a finished study left behind, read back."""

    study: Any
    summary: dict[str, Any]
    data: dict[str, Any]
    parent_run_id: str
    final: RunArtifacts | None
    final_note: str


def find_final_run(client: Any, parent_run_id: str, summary: dict[str, Any]) -> str | None:
    run_id = (summary.get("registry") or {}).get("run_id")
    if run_id:
        return str(run_id)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.kind = 'final' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def load_record(study_name: str, storage: str, tracker: Any) -> StudyRecord:
    study = open_study(study_name, storage)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if not parent:
        raise ReportError(f"study {study_name!r} has no MLflow parent run (was it run by search.run?)")
    client = tracker.client
    try:
        client.get_run(parent)
    except Exception:  # MlflowException for an id unknown to this store
        raise ReportError(
            f"parent run {parent} of study {study_name!r} is not in {tracker.uri} (pass --tracking-uri)"
        ) from None
    summary = read_json_artifact(client, parent, "summary.json")
    if summary is None:
        raise ReportError(
            f"study {study_name!r} has no summary.json yet: it is running or was never finished"
        )
    data = read_json_artifact(client, parent, "split/data.json") or {}
    final_id = find_final_run(client, parent, summary)
    final, note = None, ""
    if final_id is None:
        note = "no final run (the study was run with --no-register, or did not finish)"
    else:
        try:
            final = download_run_folder(client, final_id)
        except CftuneError as err:
            note = str(err)
    return StudyRecord(study, summary, data, parent, final, note)


# ---------------------------------------------------------------------------------------------- numbers
def _pct(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    p = c["improvement_pct"]
    return f"{p['value']:+.1f}% [{p['low']:+.1f}, {p['high']:+.1f}]"


def _sig(c: dict[str, Any] | None) -> str:
    if c is None:
        return ""
    d = c["difference"]
    return "significant" if d["low"] > 0 or d["high"] < 0 else "not significant"


def test_rows(summary: dict[str, Any]) -> list[list[str]]:
    """The test table: model with CI, popularity, EASE, relative differences with CIs."""
    test, vs = summary.get("test") or {}, summary.get("vs") or {}
    base = summary.get("baselines") or {}
    rows = []
    for m in [m for m in TABLE_METRICS if m in test]:
        pop, ease = vs.get("popularity", {}).get(m), vs.get("ease", {}).get(m)
        ci = pop["model"] if pop else None
        ease_value = (base.get("ease") or {}).get("test", {}).get(m)
        pop_value = (base.get("popularity") or {}).get("test", {}).get(m)
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


def verdict(summary: dict[str, Any]) -> str:
    """One sentence: what was found, how sure, against what."""
    model = str(summary.get("model", "")).upper()
    t = summary.get("trials", {})
    n = sum(t.values())
    best = summary.get("best_trial")
    if best is None:
        return f"{model}: {n} trials, none completed; no result yet."
    metric = summary["metric"]
    if "test" not in summary:
        return (
            f"{model}: best of {n} trials reaches validation {metric} {best['value']:.4f} (not tested yet)."
        )
    vs = summary.get("vs", {})
    pop, ease = vs.get("popularity", {}).get(metric), vs.get("ease", {}).get(metric)
    ci = (
        pop["model"] if pop else {"value": summary["test"][metric], "low": float("nan"), "high": float("nan")}
    )
    text = (
        f"{model}, best of {n} trials (trial {best['number']}), reaches test {metric} {ci['value']:.4f} "
        f"(95% CI {ci['low']:.4f}–{ci['high']:.4f})"
    )
    parts = [
        f"{c['improvement_pct']['value']:+.0f}% vs {name} ({_sig(c)})"
        for name, c in (("popularity", pop), ("EASE", ease))
        if c is not None
    ]
    return text + (": " + ", ".join(parts) if parts else "") + "."


def cards(summary: dict[str, Any]) -> list[Card]:
    metric = summary["metric"]
    t = summary.get("trials", {})
    out = []
    best = summary.get("best_trial")
    if best is not None:
        out.append(Card(f"best validation {metric}", f"{best['value']:.4f}", f"trial {best['number']}"))
    pop = (summary.get("vs") or {}).get("popularity", {}).get(metric)
    if pop is not None:
        ci = pop["model"]
        out.append(
            Card(f"test {metric}", f"{ci['value']:.4f}", f"95% CI [{ci['low']:.4f}, {ci['high']:.4f}]")
        )
    for name in ("popularity", "ease"):
        c = (summary.get("vs") or {}).get(name, {}).get(metric)
        if c is not None:
            p = c["improvement_pct"]
            label = "EASE" if name == "ease" else name
            out.append(
                Card(f"vs {label}", f"{p['value']:+.1f}%", f"[{p['low']:+.1f}, {p['high']:+.1f}] {_sig(c)}")
            )
    out.append(
        Card(
            "trials",
            f"{sum(t.values())}",
            f"{t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('fail', 0)} failed",
        )
    )
    computed, full = summary.get("steps_computed", 0), summary.get("steps_unpruned", 0)
    if full:
        out.append(
            Card(
                "compute saved by pruning",
                f"{100 * (1 - computed / full):.0f}%",
                f"{computed} of {full} steps",
            )
        )
    out.append(
        Card("wall time", _duration(float(summary.get("wall_seconds", 0.0))), summary.get("status", ""))
    )
    if "registry" in summary:
        r = summary["registry"]
        out.append(Card("registry", f"v{r['version']} @{r['alias']}", r["name"]))
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


def data_rows(summary: dict[str, Any], data: dict[str, Any]) -> list[list[str]]:
    rows = [
        ["source", str(summary.get("data_source", "")) + (" (SYNTHETIC)" if summary.get("synthetic") else "")]
    ]
    rows.append(["data_version_hash", str(summary.get("data_version_hash", ""))])
    for key, value in (data.get("data") or {}).items():
        if key != "source":
            rows.append([f"data: {key}", _fmt(value)])
    for key, value in (data.get("split") or {}).items():
        rows.append([f"split: {key}", _fmt(value)])
    return rows


# ---------------------------------------------------------------------------------------------- the page
@dataclass
class StudyReport:
    """The figures' inputs, computed once, turned into both the HTML and the Markdown."""

    record: StudyRecord
    evaluation: FolderEval | None
    popularity: EvalResult | None
    scores: np.ndarray | None

    @property
    def summary(self) -> dict[str, Any]:
        return self.record.summary

    def recomputed_matches(self) -> bool | None:
        """Whether the stored factors give back the test numbers in summary.json (they must)."""
        if self.evaluation is None or "test" not in self.summary:
            return None
        got = self.evaluation.result.metrics
        return all(abs(got[m] - v) < 1e-6 for m, v in self.summary["test"].items() if m in got)


def analyse(record: StudyRecord) -> StudyReport:
    from core.baselines import PopularityScorer

    if record.final is None:
        return StudyReport(record, None, None, None)
    ev = evaluate_folder(record.final)
    pop = evaluate_scorer(
        PopularityScorer.fit(ev.history), ev.truth, ev.history, ks=KS, users=ev.result.users
    )
    return StudyReport(record, ev, pop, score_sample(record.final, ev.history))


def sections(report: StudyReport) -> list[Section]:
    s, study = report.summary, report.record.study
    metric = s["metric"]
    out: list[Section] = []
    test_section = Section(
        "Test: best model vs popularity and EASE",
        "The best configuration refit on train + validation and tested once; whiskers are 95% bootstrap CIs "
        "over test users. A tuned model should clear popularity by far and at least match EASE.",
    )
    vs = s.get("vs") or {}
    if "test" in s and "popularity" in vs:
        groups: dict[str, dict[str, dict[str, float]]] = {str(s["model"]).upper(): {}, "popularity": {}}
        if "ease" in vs:
            groups["EASE"] = {}
        for m in [m for m in TABLE_METRICS if m in vs["popularity"]]:
            groups[str(s["model"]).upper()][m] = vs["popularity"][m]["model"]
            groups["popularity"][m] = vs["popularity"][m]["reference"]
            if "ease" in vs and m in vs["ease"]:
                groups["EASE"][m] = vs["ease"][m]["reference"]
        test_section.figures.append(figures.metric_bars(groups, "Test metrics with 95% CIs"))
        test_section.html = (
            table(TEST_HEADER, test_rows(s)) + f"<p>{(s.get('baselines') or {}).get('note', '')}</p>"
        )
        match = report.recomputed_matches()
        if match is not None:
            test_section.html += (
                "<p>Recomputed from the stored factors: matches summary.json.</p>"
                if match
                else "<p><b>Warning: the stored factors do not reproduce summary.json's test numbers.</b></p>"
            )
    else:
        test_section.missing = "no test result: the study did not finish or was run without the final refit"
    out.append(test_section)
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
                    str(s["model"]).upper(): report.evaluation.result.per_user[k_metric],
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
        per_user.missing = report.record.final_note
    sr = s.get("score_range") or (
        report.record.final.metadata.get("score_range") if report.record.final else None
    )
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
        scores.missing = report.record.final_note or "no scores"
    out += [per_user, scores]
    seg = s.get("segmentation") or report.record.data.get("segmentation")
    out.append(
        Section(
            "Users: trainable vs cold-start",
            "Only trainable users get factors; cold-start users are served the popularity list.",
            [figures.segment_counts(seg)] if seg else [],
            missing="" if seg else "no segmentation (the split was given as files)",
        )
    )
    best = s.get("best_trial") or {}
    params = s.get("final_params") or best.get("params") or {}
    out.append(
        Section(
            "Data and configuration",
            "What the numbers above were measured on, and the configuration that won.",
            html='<div class="grid2"><div>'
            + table(["data", ""], data_rows(s, report.record.data))
            + "</div><div>"
            + table(["parameter", "value"], [[k, _fmt(v)] for k, v in params.items()])
            + table(
                ["study", ""],
                [
                    ["sampler", str(study.user_attrs.get("sampler", ""))],
                    ["pruner", str(study.user_attrs.get("pruner", ""))],
                    ["objective", f"maximise validation {metric}"],
                    ["MLflow parent run", report.record.parent_run_id],
                ],
            )
            + "</div></div>",
        )
    )
    return out


def markdown(report: StudyReport, html_path: Path | None = None) -> str:
    """The page's numbers as plain text (tables readable in a terminal too)."""
    s = report.summary
    t = s.get("trials", {})
    lines = [f"# Study {s['study_name']} ({str(s['model']).upper()})", ""]
    if s.get("synthetic"):
        lines += ["**SYNTHETIC data**: the embedded demo dataset, not real users.", ""]
    lines += [verdict(s), ""]
    lines.append(f"- data: {s.get('data_source', '')} (data_version_hash {s.get('data_version_hash', '')})")
    lines.append(
        f"- trials: {t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('fail', 0)} failed; "
        f"steps computed {s.get('steps_computed', 0)} of {s.get('steps_unpruned', 0)} unpruned; "
        f"wall time {float(s.get('wall_seconds', 0.0)):.1f} s; status {s.get('status', '')}"
    )
    best = s.get("best_trial")
    if best is not None:
        lines.append(f"- best trial {best['number']}: validation {s['metric']} {best['value']:.4f}")
        lines.append("- params: " + ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items()))
    rows = test_rows(s)
    if rows:
        lines += ["", "## Test (95% paired bootstrap CI over users)", "", _md_table(TEST_HEADER, rows)]
        note = (s.get("baselines") or {}).get("note")
        if note:
            lines += ["", note]
    seg = s.get("segmentation")
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
        m = s["metric"] if s["metric"] in report.evaluation.result.per_user else "ndcg@10"
        zero = float(np.mean(report.evaluation.result.per_user[m] == 0))
        lines += ["", f"- test users with {m} = 0: {100 * zero:.1f}%"]
    sr = s.get("score_range")
    if sr:
        lines.append(
            f"- score range ({sr['method']}): p01 {sr['p01']:.4g}, mean {sr['mean']:.4g}, "
            f"p99 {sr['p99']:.4g}, min {sr['min']:.4g}, max {sr['max']:.4g}"
        )
    if "registry" in s:
        r = s["registry"]
        lines.append(f"- registry: {r['name']} v{r['version']} -> @{r['alias']} ({r['reason']})")
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
    storage: str = DEFAULT_STORAGE,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    log_to_mlflow: bool = True,
) -> ReportPaths:
    """Write ``<out>.html`` and ``<out>.md`` for a finished study; log both to its parent run."""
    from search.tracking import Tracker

    tracker = Tracker(tracking_uri)
    record = load_record(study_name, storage, tracker)
    report = analyse(record)
    html_path = Path(out) if out is not None else OUT_DIR / f"{study_name}.html"
    if html_path.suffix != ".html":
        raise ConfigError(f"--out must end in .html, but got {str(html_path)!r}")
    md_path = html_path.with_suffix(".md")
    s = record.summary
    page = render_page(
        title=f"Study {s['study_name']}: {str(s['model']).upper()}",
        subtitle=f"{s.get('data_source', '')} · objective validation {s['metric']} · "
        f"{s.get('status', '')} · data {s.get('data_version_hash', '')}",
        verdict=verdict(s),
        cards=cards(s),
        sections=sections(report),
        synthetic=bool(s.get("synthetic")),
        footer=f"cftune report · study {study_name} · storage {storage} · tracking {tracker.uri}",
    )
    text = markdown(report, html_path)
    from core.artifacts import atomic_write_bytes

    for path, content in ((html_path, page), (md_path, text)):
        atomic_write_bytes(path, content.encode())
    if log_to_mlflow:
        tracker.log_files(
            record.parent_run_id, {"report.html": page.encode(), "report.md": text.encode()}, "report"
        )
    return ReportPaths(html_path, md_path)


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True, help="the study name (search.run prints it)")
    p.add_argument("--storage", default=DEFAULT_STORAGE)
    p.add_argument(
        "--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db"
    )
    p.add_argument("--out", default=None, help="HTML path (default reports/out/<study>.html); .md beside it")
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
