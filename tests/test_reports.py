"""Reports from real (tiny, synthetic) studies: every section present, no network needed, the Markdown numbers
are the study record's (summary.json), and the comparison of two champions gives sane tests and overlaps."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import pytest

from core.evaluate import Interval
from core.home import default_storage, resolve_tracking_uri
from reports import figures
from reports.analysis import analyse
from reports.build import build_report, main
from reports.compare import (
    NotComparable,
    build_comparison,
    check_same_data,
    load_candidates,
    overlap,
    paired_pvalues,
    parse_version,
    resolve,
)
from reports.html import OUT_DIR
from reports.sources import ReportError, find_record, load_results
from search.record import FILE_NAME, StudyRecord
from search.settings import HOME_ENV, PROJECT_ROOT
from search.tracking import Tracker

#: Section ids of a study report (slugs of their titles), in page order.
STUDY_SECTIONS = (
    "test-best-model-vs-popularity-and-ease",
    "optimization-history",
    "validation-curves-per-trial",
    "parallel-coordinates",
    "hyperparameter-importances",
    "slice-plots",
    "per-user-ndcg-10-on-test",
    "score-range",
    "users-trainable-vs-cold-start",
    "data-and-configuration",
)


@dataclass(frozen=True)
class Studies:
    """An ALS and a BPR study on the synthetic data, in one Optuna storage and one MLflow store."""

    root: Path
    storage: str
    tracking_uri: str
    als: str
    bpr: str


def make_studies(root: Path) -> Studies:
    """Run both studies once per test session (the browser test reuses them through the marker file)."""
    from search.run import run_study
    from search.settings import StudySettings

    marker = root / "studies.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        return Studies(root, info["storage"], info["tracking_uri"], info["als"], info["bpr"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    storage, tracking = f"sqlite:///{root}/optuna.db", f"sqlite:///{root}/mlflow.db"
    common = {"sampler": "tpe", "dataset": "synthetic", "storage": storage, "tracking_uri": tracking}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            HOME_ENV, str(root)
        )  # the reference cache goes under $CFTUNE_HOME, not the project's mlruns
        mp.chdir(root)
        als = run_study(StudySettings(model="als", trials=6, quiet=True, report=False, **common))  # type: ignore[arg-type]
        bpr = run_study(StudySettings(model="bpr", trials=4, quiet=True, report=False, **common))  # type: ignore[arg-type]
    info = {"storage": storage, "tracking_uri": tracking, "als": als.study_name, "bpr": bpr.study_name}
    marker.write_text(json.dumps(info))
    return Studies(root, storage, tracking, info["als"], info["bpr"])


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Studies:
    return make_studies(tmp_path_factory.getbasetemp() / "report-studies")


@pytest.fixture(scope="session")
def record(studies: Studies, tmp_path_factory: pytest.TempPathFactory) -> StudyRecord:
    """The ALS study's record (summary.json) as logged to MLflow (what the report must agree with)."""
    tracker = Tracker(studies.tracking_uri)
    study = optuna.load_study(study_name=studies.als, storage=studies.storage)
    path = tracker.client.download_artifacts(
        study.user_attrs["mlflow_parent_run_id"], FILE_NAME, str(tmp_path_factory.mktemp("record"))
    )
    return StudyRecord.from_json(Path(path).read_text())


@pytest.fixture(scope="session")
def report(studies: Studies) -> tuple[str, str, Path]:
    out = studies.root / "out" / "als.html"
    paths = build_report(find_record(studies.als, studies.tracking_uri), storage=studies.storage, out=out)
    assert paths.html == out and paths.markdown == out.with_suffix(".md")
    return paths.html.read_text(), paths.markdown.read_text(), out


def test_report_has_every_section_and_needs_no_network(report: tuple[str, str, Path]) -> None:
    page = report[0]
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids == list(STUDY_SECTIONS)
    assert "SYNTHETIC DATA" in page
    from plotly.offline import get_plotlyjs

    library = get_plotlyjs()
    assert page.count(library[:200]) == 1 and len(page) < 1.5 * len(library)  # inlined once, only once
    ours = page.replace(library, "")  # the library mentions plotly.com in its own (unused) links
    assert not re.search(r"<script[^>]+src=", ours), "plotly.js must be inlined, not loaded"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", ours), "no remote resource of any kind"
    assert ours.count("Plotly.newPlot(") >= 9  # one per figure
    assert "Recomputed from the stored factors: matches summary.json." in page


def test_markdown_numbers_are_those_of_summary_json(
    report: tuple[str, str, Path], record: StudyRecord
) -> None:
    text = report[1]
    test, baselines = record.test, record.baselines
    assert test is not None and baselines is not None
    rows = {
        cells[0]: cells
        for line in text.splitlines()
        if line.startswith("| ") and "@" in (cells := [c.strip() for c in line.strip("|").split("|")])[0]
    }
    assert set(rows) == {"ndcg@10", "recall@10", "ndcg@20", "recall@20"}
    for metric, cells in rows.items():
        assert float(cells[1]) == pytest.approx(test[metric], abs=5e-5)
        assert baselines.ease is not None
        assert float(cells[3]) == pytest.approx(baselines.popularity.test[metric], abs=5e-5)
        assert float(cells[4]) == pytest.approx(baselines.ease.test[metric], abs=5e-5)
        low, high = (float(x) for x in cells[2].strip("[]").split(","))
        assert low <= float(cells[1]) <= high
    trials = record.trials
    assert f"{trials.get('complete', 0)} complete, {trials.get('pruned', 0)} pruned" in text
    assert "SYNTHETIC" in text and f"report: {report[2]}" in text
    assert f"sampler {record.sampler}, pruner {record.pruner}" in text
    registry = record.registry
    assert registry is not None and registry.decision == "champion"  # the only ALS version on this data
    assert (
        f"registry: {registry.name} v{registry.version}: champion (@champion @{registry.data_alias})" in text
    )


def test_report_recomputes_the_test_numbers_from_the_stored_factors(
    studies: Studies, record: StudyRecord
) -> None:
    assert find_record(studies.als, studies.tracking_uri) == record  # found by its study's name
    results = load_results(record, studies.storage)
    analysed = analyse(results)
    assert analysed.evaluation is not None and analysed.recomputed_matches() is True
    assert analysed.scores is not None and analysed.scores.size > 1000
    score_range = record.score_range
    assert score_range is not None
    # the sample lies within the full distribution's range
    assert score_range.min - 1e-6 <= analysed.scores.min() <= analysed.scores.max() <= score_range.max + 1e-6


def test_report_is_logged_to_the_parent_run(studies: Studies, report: tuple[str, str, Path]) -> None:
    tracker = Tracker(studies.tracking_uri)
    parent = optuna.load_study(study_name=studies.als, storage=studies.storage).user_attrs[
        "mlflow_parent_run_id"
    ]
    names = {Path(f.path).name for f in tracker.client.list_artifacts(parent, "report")}
    assert names == {"report.html", "report.md"}


def test_the_record_names_its_own_tracking_store(
    studies: Studies,
    record: StudyRecord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--record FILE --storage URL`` is enough: the MLflow store is the one the record names, not the
    default (here an empty $CFTUNE_HOME) nor the current folder's; ``--study`` looks in the default."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "empty-home"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "own.html"
    (tmp_path / FILE_NAME).write_bytes(record.to_json())
    args = ["--storage", studies.storage, "--out", str(out), "--no-log"]
    assert main(["--record", str(tmp_path / FILE_NAME), *args]) == 0
    assert f"tracking {studies.tracking_uri}" in out.read_text()
    assert f"# Study {studies.als}" in capsys.readouterr().out
    assert main(["--study", studies.als, *args]) == 2
    assert "no MLflow tracking store at sqlite:///" in capsys.readouterr().err
    assert not (tmp_path / "empty-home" / "mlflow.db").exists()


def test_default_output_is_the_projects_reports_out() -> None:
    assert OUT_DIR.is_absolute() and OUT_DIR == PROJECT_ROOT / "reports" / "out"


def test_default_stores_are_the_environments_else_sqlite_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one rule (core.home) that reports and search.settings both follow."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    monkeypatch.delenv("CFTUNE_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_storage() == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("CFTUNE_STORAGE", "postgresql://optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow")
    assert default_storage() == "postgresql+psycopg2://optuna"  # the driver cftune installs
    assert resolve_tracking_uri(None) == "http://mlflow"
    assert resolve_tracking_uri("sqlite:///given.db") == "sqlite:///given.db"


def test_cli_modules_run_without_a_runtime_warning(tmp_path: Path) -> None:
    """``reports/__init__`` imports neither CLI module, so ``python -m`` does not run one twice."""
    for module in ("reports.build", "reports.compare"):
        done = subprocess.run(
            [sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--help"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and "RuntimeWarning" not in done.stderr, done.stderr


def test_unknown_study_names_the_known_ones(
    studies: Studies, record: StudyRecord, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ReportError, match=f"no study 'no-such-study' .*{studies.als}.*{studies.bpr}"):
        find_record("no-such-study", studies.tracking_uri)
    (tmp_path / FILE_NAME).write_bytes(record.to_json())
    args = ["--record", str(tmp_path / FILE_NAME), "--storage", f"sqlite:///{studies.root}/absent.db"]
    assert main(args) == 2
    assert "no Optuna storage" in capsys.readouterr().err
    assert not (studies.root / "absent.db").exists()


def test_search_run_reports_by_its_own_command_and_a_failure_only_warns(
    studies: Studies, record: StudyRecord, capfd: pytest.CaptureFixture[str]
) -> None:
    """``search.run`` runs ``python -m reports.build --record`` (search/ imports nothing of reports/) and
    prints where the report went; a report that cannot be built is a warning, never an error."""
    from search.run import report

    report(record, studies.storage)
    out, _ = capfd.readouterr()
    html = OUT_DIR / f"{record.study_name}.html"
    assert out == f"report: {html}  (summary: {html.with_suffix('.md')})\n" and html.is_file()
    report(record, f"sqlite:///{studies.root}/absent.db")
    out, err = capfd.readouterr()
    assert out == "" and err.startswith("warning: report not built: error: no Optuna storage at sqlite:///")
    assert not (studies.root / "absent.db").exists()


# ---------------------------------------------------------------------------------------------- compare
@pytest.fixture(scope="session")
def comparison(studies: Studies) -> object:
    return build_comparison(tracking_uri=studies.tracking_uri, out=studies.root / "out" / "compare.html")


def test_compare_champions_on_the_same_users(comparison: object, record: StudyRecord) -> None:
    out = comparison
    c = out.comparison  # type: ignore[attr-defined]
    assert [cand.name for cand in c.candidates] == ["als-recommender", "bpr-recommender"]
    for cand in c.candidates:  # both studies ran on the same data: each is its model's champion there
        assert cand.decision == "champion"
        assert set(cand.aliases) == {"champion", f"champion-{cand.data_version_hash[:8]}"}
    als = next(iter(c.intervals))
    assert record.test is not None
    assert c.intervals[als]["ndcg@10"].value == pytest.approx(record.test["ndcg@10"], abs=1e-9)
    for t in c.tests:
        assert 0.0 <= t.t_pvalue <= 1.0 and 0.0 <= t.wilcoxon_pvalue <= 1.0
        assert t.difference.low <= t.difference.value <= t.difference.high
    (o,) = c.overlaps
    assert 0.0 <= o.jaccard <= 1.0 and 0.0 <= o.shared <= 10.0
    assert len(o.shared_per_user) == len(c.user_ids)
    for cov in c.coverage.values():
        assert 0.0 < cov["coverage@10"] <= cov["coverage@20"] <= 1.0
    text = out.markdown.read_text()  # type: ignore[attr-defined]
    assert "Wilcoxon" in text and "mean Jaccard" in text and "coverage@10" in text
    page = out.html.read_text()  # type: ignore[attr-defined]
    assert not re.search(r"<script[^>]+src=", page)


def test_compare_refuses_versions_trained_on_other_data(studies: Studies) -> None:
    client = Tracker(studies.tracking_uri).client
    candidates = load_candidates(
        client, resolve(client, ["als-recommender", "bpr-recommender"], [], "champion")
    )
    check_same_data(candidates)
    other = [candidates[0], replace(candidates[1], data_version_hash="0123456789abcdef")]
    alias = f"champion-{candidates[0].data_version_hash[:8]}"
    with pytest.raises(NotComparable, match="0123456789abcdef") as raised:
        check_same_data(other)
    assert f"--alias {alias}" in str(raised.value)  # the way out it names: each model's best on one data
    by_data = load_candidates(client, resolve(client, ["als-recommender", "bpr-recommender"], [], alias))
    assert [(c.name, c.version) for c in by_data] == [(c.name, c.version) for c in candidates]


def test_compare_needs_two_distinct_versions(studies: Studies) -> None:
    client = Tracker(studies.tracking_uri).client
    with pytest.raises(ReportError, match="two distinct"):
        resolve(client, ["als-recommender"], ["als-recommender:1"], "champion")
    with pytest.raises(ReportError, match="no @nightly"):
        resolve(client, ["als-recommender"], [], "nightly")


@pytest.mark.parametrize("text", ["als-recommender", "als-recommender:", ":3", "als-recommender:v3"])
def test_version_arguments_are_name_colon_number(text: str) -> None:
    with pytest.raises(ValueError, match="NAME:VERSION"):
        parse_version(text)
    assert parse_version("als-recommender:12") == ("als-recommender", "12")


def test_overlap_of_top_lists_by_hand() -> None:
    a = np.array([[1, 2, 3], [4, 5, 6], [7, -1, -1]])
    b = np.array([[3, 9, 1], [4, 5, 6], [8, -1, -1]])
    jaccard, shared, per_user = overlap(a, b, 3)
    assert per_user.tolist() == [2, 3, 0]
    assert shared == pytest.approx(5 / 3)
    assert jaccard == pytest.approx((2 / 4 + 1 + 0) / 3)


def test_paired_pvalues_match_scipy_and_are_one_without_differences() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200) * 0.9
    t, w = paired_pvalues(a, b)
    assert t == pytest.approx(stats.ttest_rel(a, b).pvalue) and w == pytest.approx(
        stats.wilcoxon(a, b).pvalue
    )
    assert paired_pvalues(a, a.copy()) == (1.0, 1.0)


# ---------------------------------------------------------------------------------------------- figures
def _study(values: list[float | None], pruned_at: dict[int, int] | None = None) -> optuna.Study:
    """An in-memory study: completed trials with ``values``, ``None`` for a pruned one."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for n, value in enumerate(values):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        steps = (pruned_at or {}).get(n, 4)
        for step in range(1, steps + 1):
            trial.report(step * 0.01 + (value or 0.0), step)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def test_importances_need_two_completed_trials() -> None:
    fig, reason = figures.param_importances(_study([0.3, None]), "ndcg@10")
    assert fig is None and "at least 2 completed" in reason
    fig, reason = figures.param_importances(_study([0.3, 0.5, 0.4]), "ndcg@10")
    assert fig is not None and reason == ""


def test_pruned_trials_end_in_a_cross_where_they_stopped() -> None:
    fig, _ = figures.intermediate_curves(_study([0.3, None, 0.5], pruned_at={1: 2}), "ndcg@10")
    assert fig is not None
    crosses = [t for t in fig.data if t.mode == "markers" and t.marker.symbol == "x"]
    assert len(crosses) == 1 and list(crosses[0].x) == [2]
    assert any(t.name == "best (trial 2)" for t in fig.data)


def test_metric_bars_whiskers_are_the_interval() -> None:
    i = Interval(0.25, 0.2, 0.32)
    fig = figures.metric_bars({"ALS": {"ndcg@10": i}}, "t")
    bar = fig.data[0]
    assert bar.error_y.array[0] == pytest.approx(0.07) and bar.error_y.arrayminus[0] == pytest.approx(0.05)
