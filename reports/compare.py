"""``python -m reports.compare``: registered models side by side on the same test split.

Each version's final run folder is evaluated again with the one evaluator; the versions must share a
``data_version_hash`` (same data AND split), otherwise their test sets differ and nothing is comparable.
Per metric: means with bootstrap CIs, the paired difference with its CI, a paired t-test and a Wilcoxon
signed-rank test over users. Per pair: how much their top-10 lists overlap. Per model: catalogue coverage.

By default each model's ``@champion`` is compared. Each model's ``champion`` may sit on different data (see
:mod:`search.registry`); ``--alias champion-<first 8 characters of data_version_hash>`` then picks each
model's best version on that one data + split.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from scipy import stats

from core.artifacts import RunArtifacts, atomic_write_bytes
from core.errors import CftuneError, ConfigError
from core.evaluate import EvalResult, Interval, bootstrap_ci, compare
from core.home import resolve_tracking_uri
from reports import figures
from reports.analysis import evaluate_folder
from reports.html import OUT_DIR, Card, Section, render_page, table
from reports.sources import ReportError, download_run_folder, tracking_client

DEFAULT_MODELS = ("als-recommender", "bpr-recommender")
METRICS = ("ndcg@10", "recall@10", "hitrate@10", "ndcg@20", "recall@20")
OVERLAP_K = 10


class NotComparable(ReportError):
    """The versions were trained on different data or splits."""


@dataclass(frozen=True)
class Candidate:
    """One registered model version and its run folder."""

    name: str
    version: str
    alias: str  # the alias it was resolved by ("" for NAME:VERSION)
    run_id: str
    data_version_hash: str
    tags: dict[str, str]
    run: RunArtifacts
    aliases: tuple[str, ...] = ()  # every alias it holds now

    @property
    def decision(self) -> str:
        """The registry's ``decision`` tag: "champion", "data-champion" or "challenger" ("" if untagged)."""
        return self.tags.get("decision", "")

    @property
    def registry(self) -> str:
        """Its standing in the registry, for the versions table: decision and aliases."""
        aliases = " ".join(f"@{a}" for a in self.aliases)
        return " ".join(part for part in (self.decision, f"({aliases})" if aliases else "") if part) or "-"

    @property
    def label(self) -> str:
        short = self.name.removesuffix("-recommender").upper()
        return f"{short} v{self.version}" + (f" @{self.alias}" if self.alias else "")


@dataclass(frozen=True)
class PairTest:
    """Paired tests of ``a`` against ``b`` on one metric over the same users."""

    a: str
    b: str
    metric: str
    difference: Interval  # mean(a - b) with a paired bootstrap CI
    t_pvalue: float
    wilcoxon_pvalue: float


@dataclass(frozen=True)
class Overlap:
    a: str
    b: str
    k: int
    jaccard: float  # mean over users of |A ∩ B| / |A ∪ B|
    shared: float  # mean over users of |A ∩ B|
    shared_per_user: np.ndarray


@dataclass
class Comparison:
    candidates: list[Candidate]
    results: dict[str, EvalResult]  # by label, aligned on the same users in the same order
    user_ids: np.ndarray
    intervals: dict[str, dict[str, Interval]]  # label -> metric -> CI
    coverage: dict[str, dict[str, float]]  # label -> coverage@k
    tests: list[PairTest]
    overlaps: list[Overlap]


# ---------------------------------------------------------------------------------------------- reading
def parse_version(text: str) -> tuple[str, str]:
    name, sep, version = text.rpartition(":")
    if not sep or not name or not version.isdigit():
        raise ConfigError(f"--versions takes NAME:VERSION (als-recommender:3), but got {text!r}")
    return name, version


def resolve(client: Any, models: Sequence[str], versions: Sequence[str], alias: str) -> list[tuple[Any, str]]:
    """(model version, alias shown) for each model's alias and each NAME:VERSION, duplicates dropped."""
    found: list[tuple[Any, str]] = []
    for name in models:
        try:
            found.append((client.get_model_version_by_alias(name, alias), alias))
        except MlflowException:
            raise ReportError(
                f"{name} has no @{alias} version in this tracking store; run a study for it first, "
                "or pass --models / --versions"
            ) from None
    for text in versions:
        name, version = parse_version(text)
        try:
            found.append((client.get_model_version(name, version), ""))
        except MlflowException:
            raise ReportError(f"no registered version {name}:{version}") from None
    unique: dict[tuple[str, str], tuple[Any, str]] = {}
    for mv, shown in found:
        unique.setdefault((mv.name, str(mv.version)), (mv, shown))
    if len(unique) < 2:
        raise ReportError(f"need at least two distinct versions to compare, got {len(unique)}")
    return list(unique.values())


def load_candidates(client: Any, versions: Sequence[tuple[Any, str]]) -> list[Candidate]:
    out = []
    for mv, shown in versions:
        run = download_run_folder(client, mv.run_id)
        data_hash = mv.tags.get("data_version_hash") or str(run.metadata.get("data_version_hash", ""))
        aliases = tuple(sorted(getattr(mv, "aliases", None) or ()))
        out.append(
            Candidate(mv.name, str(mv.version), shown, mv.run_id, data_hash, dict(mv.tags), run, aliases)
        )
    check_same_data(out)
    return out


def check_same_data(candidates: Sequence[Candidate]) -> None:
    hashes = {c.data_version_hash for c in candidates}
    if len(hashes) > 1:
        listing = ", ".join(f"{c.name} v{c.version}: {c.data_version_hash}" for c in candidates)
        raise NotComparable(
            f"these versions were trained and tested on different data or splits ({listing}); "
            "compare only versions with the same data_version_hash: each model's best version on one data is "
            f"@champion-<first 8 characters of its hash> (e.g. --alias {data_alias(candidates[0])}), "
            "or run both studies on the same data"
        )


def data_alias(candidate: Candidate) -> str:
    """The alias of the best version on ``candidate``'s data (the rule of :mod:`search.registry`)."""
    return f"champion-{candidate.data_version_hash[:8]}"


# ---------------------------------------------------------------------------------------------- numbers
def _aligned(
    run: RunArtifacts, result: EvalResult, order: np.ndarray, vocab: pd.Index
) -> tuple[EvalResult, np.ndarray]:
    """``result`` restricted to users ``order`` (original ids), plus their top items as positions in
    ``vocab`` (original item ids shared by every candidate; -1 where no item)."""
    ids = np.asarray(run.users.astype(str))[result.users]
    pos = dict(zip(ids.tolist(), range(len(ids)), strict=True))
    rows = np.array([pos[u] for u in order], dtype=np.int64)
    per_user = {m: v[rows] for m, v in result.per_user.items()}
    metrics = {m: float(v.mean()) for m, v in per_user.items()}
    top = result.top_items[rows] if result.top_items is not None else np.empty((len(rows), 0), dtype=np.int64)
    codes = vocab.get_indexer(run.items.astype(str))
    top_codes = np.where(top >= 0, codes[np.maximum(top, 0)], -1)
    return EvalResult(metrics, per_user, np.arange(len(rows)), result.ks), top_codes


def paired_pvalues(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired t-test and Wilcoxon signed-rank p-values; 1.0 where every difference is zero."""
    d = a - b
    if not np.any(d != 0):
        return 1.0, 1.0
    t = float(stats.ttest_rel(a, b).pvalue)
    try:
        w = float(stats.wilcoxon(a, b).pvalue)
    except ValueError:  # too few non-zero differences
        w = 1.0
    return (t if np.isfinite(t) else 1.0), (w if np.isfinite(w) else 1.0)


def overlap(top_a: np.ndarray, top_b: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    """(mean Jaccard, mean shared items, shared items per user) of two top-k lists per user."""
    a, b = top_a[:, :k], top_b[:, :k]
    same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
    shared = same.any(axis=2).sum(axis=1).astype(float)
    size_a, size_b = (a >= 0).sum(axis=1), (b >= 0).sum(axis=1)
    union = size_a + size_b - shared
    jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
    return float(jaccard.mean()), float(shared.mean()), shared


def compare_candidates(candidates: Sequence[Candidate], *, n_boot: int = 1000, seed: int = 0) -> Comparison:
    """Evaluate each candidate on its (shared) test split and compare every pair over the same users."""
    raw = {c.label: (c, evaluate_folder(c.run).result) for c in candidates}
    common: set[str] | None = None
    for c, result in raw.values():
        ids = set(np.asarray(c.run.users.astype(str))[result.users].tolist())
        common = ids if common is None else common & ids
    order = np.array(sorted(common or set()), dtype=object)
    if not len(order):
        raise NotComparable("the versions have no test user in common")
    vocab = pd.Index(sorted({str(i) for c in candidates for i in c.run.items}))
    results: dict[str, EvalResult] = {}
    tops: dict[str, np.ndarray] = {}
    coverage: dict[str, dict[str, float]] = {}
    for label, (c, result) in raw.items():
        results[label], tops[label] = _aligned(c.run, result, order, vocab)
        n_items = c.run.item_factors.shape[0]
        coverage[label] = {
            f"coverage@{k}": np.count_nonzero(np.unique(tops[label][:, :k]) >= 0) / n_items for k in result.ks
        }
    metrics = [m for m in METRICS if all(m in r.per_user for r in results.values())]
    intervals = {
        label: {m: bootstrap_ci(r.per_user[m], n_boot=n_boot, seed=seed) for m in metrics}
        for label, r in results.items()
    }
    tests, overlaps = [], []
    for la, lb in itertools.combinations(results, 2):
        boot = compare(results[la], results[lb], metrics, n_boot=n_boot, seed=seed)
        for m in metrics:
            t, w = paired_pvalues(results[la].per_user[m], results[lb].per_user[m])
            tests.append(PairTest(la, lb, m, boot[m].difference, t, w))
        jac, shared, per_user = overlap(tops[la], tops[lb], OVERLAP_K)
        overlaps.append(Overlap(la, lb, OVERLAP_K, jac, shared, per_user))
    return Comparison(list(candidates), results, order, intervals, coverage, tests, overlaps)


# ---------------------------------------------------------------------------------------------- output
def _ci(i: Interval, digits: int = 4) -> str:
    return f"{i.value:.{digits}f} [{i.low:.{digits}f}, {i.high:.{digits}f}]"


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def metric_rows(c: Comparison) -> list[list[str]]:
    labels = list(c.intervals)
    metrics = list(next(iter(c.intervals.values())))
    return [[m, *(_ci(c.intervals[lab][m]) for lab in labels)] for m in metrics]


def test_rows(c: Comparison) -> list[list[str]]:
    return [
        [f"{t.a} − {t.b}", t.metric, _ci(t.difference), _p(t.t_pvalue), _p(t.wilcoxon_pvalue)]
        for t in c.tests
    ]


def overlap_rows(c: Comparison) -> list[list[str]]:
    return [[f"{o.a} / {o.b}", f"{o.jaccard:.3f}", f"{o.shared:.2f} of {o.k}"] for o in c.overlaps]


def coverage_rows(c: Comparison) -> list[list[str]]:
    return [[lab, *(f"{100 * v:.1f}%" for v in cov.values())] for lab, cov in c.coverage.items()]


def version_rows(c: Comparison) -> list[list[str]]:
    return [
        [
            cand.label,
            cand.tags.get("study_name", ""),
            cand.registry,
            cand.data_version_hash,
            cand.tags.get("valid_ndcg_at_10", "")[:8],
            cand.run_id,
        ]
        for cand in c.candidates
    ]


VERSION_HEADER = ("version", "study", "registry", "data_version_hash", "valid ndcg@10", "final run")


def verdict(c: Comparison) -> str:
    first = next((t for t in c.tests if t.metric == "ndcg@10"), c.tests[0] if c.tests else None)
    if first is None:
        return ""
    a, b = c.intervals[first.a][first.metric], c.intervals[first.b][first.metric]
    better = first.a if first.difference.value > 0 else first.b
    sig = first.difference.excludes_zero() and first.t_pvalue < 0.05 and first.wilcoxon_pvalue < 0.05
    o = c.overlaps[0]
    return (
        f"On the same {len(c.user_ids):,} test users, {first.a} scores {first.metric} {a.value:.4f} and "
        f"{first.b} {b.value:.4f}: {better} is "
        + ("ahead (significant: CI excludes 0, both tests p < 0.05)" if sig else "not significantly ahead")
        + f". Their top-{o.k} lists share {o.shared:.1f} items per user (Jaccard {o.jaccard:.2f})."
    )


def markdown(c: Comparison, html_path: Path | None = None) -> str:
    labels = list(c.intervals)
    lines = ["# Model comparison", ""]
    if any(cand.run.metadata.get("synthetic") for cand in c.candidates):
        lines += ["**SYNTHETIC data**: the embedded demo dataset, not real users.", ""]
    lines += [verdict(c), "", "## Versions", ""]
    lines.append(_md(list(VERSION_HEADER), version_rows(c)))
    lines += ["", "## Test metrics (mean [95% bootstrap CI] over users)", ""]
    lines.append(_md(["metric", *labels], metric_rows(c)))
    lines += ["", "## Paired tests over users", ""]
    lines.append(_md(["pair", "metric", "difference [95% CI]", "t-test p", "Wilcoxon p"], test_rows(c)))
    lines += ["", f"## Top-{OVERLAP_K} overlap", ""]
    lines.append(_md(["pair", "mean Jaccard", "mean shared items"], overlap_rows(c)))
    lines += ["", "## Catalogue coverage", ""]
    cov_names = list(next(iter(c.coverage.values())))
    lines.append(_md(["model", *cov_names], coverage_rows(c)))
    if html_path is not None:
        lines += ["", f"report: {html_path}"]
    return "\n".join(lines) + "\n"


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def page(c: Comparison) -> str:
    labels = list(c.intervals)
    sections = [
        Section(
            "Test metrics with 95% CIs",
            "Same test users, same ranking rule (train and validation items excluded).",
            [figures.metric_bars(c.intervals, "Test metrics, mean over users with 95% bootstrap CIs")],
            html=table(["metric", *labels], metric_rows(c)),
        ),
        Section(
            "Paired significance tests",
            "Differences are per user, so the tests are paired: a t-test on the mean difference and the "
            "Wilcoxon signed-rank test, which does not assume normality.",
            [
                figures.paired_scatter(
                    c.results[t.a].per_user[t.metric], c.results[t.b].per_user[t.metric], t.a, t.b, t.metric
                )
                for t in c.tests
                if t.metric == "ndcg@10"
            ],
            html=table(["pair", "metric", "difference [95% CI]", "t-test p", "Wilcoxon p"], test_rows(c)),
        ),
        Section(
            f"Top-{OVERLAP_K} overlap",
            "Low overlap at similar accuracy means the models find different relevant items: "
            "a blend may win.",
            [figures.overlap_histogram({f"{o.a} / {o.b}": o.shared_per_user for o in c.overlaps}, OVERLAP_K)],
            html=table(["pair", "mean Jaccard", "mean shared items"], overlap_rows(c)),
        ),
        Section(
            "Catalogue coverage",
            "Share of the catalogue that appears in at least one test user's list.",
            [
                figures.simple_bars(
                    {lab: cov[f"coverage@{OVERLAP_K}"] for lab, cov in c.coverage.items()},
                    title=f"coverage@{OVERLAP_K}",
                    yaxis="share of items (%)",
                    percent=True,
                )
            ],
            html=table(["model", *next(iter(c.coverage.values()))], coverage_rows(c)),
        ),
        Section(
            "Versions compared",
            "Each version's final run folder was evaluated again; nothing was retrained.",
            html=table(list(VERSION_HEADER), version_rows(c)),
        ),
    ]
    cards = [
        Card(f"{lab} ndcg@10", f"{i['ndcg@10'].value:.4f}", _ci(i["ndcg@10"]))
        for lab, i in c.intervals.items()
    ]
    cards += [Card(f"top-{o.k} overlap", f"{o.shared:.1f} items", f"{o.a} / {o.b}") for o in c.overlaps]
    cards.append(Card("test users", f"{len(c.user_ids):,}", c.candidates[0].data_version_hash))
    return render_page(
        title="Model comparison: " + " vs ".join(labels),
        subtitle=f"same test split (data_version_hash {c.candidates[0].data_version_hash})",
        verdict=verdict(c),
        cards=cards,
        sections=sections,
        synthetic=any(bool(cand.run.metadata.get("synthetic")) for cand in c.candidates),
        footer="cftune model comparison",
    )


@dataclass(frozen=True)
class CompareOutput:
    html: Path
    markdown: Path
    comparison: Comparison


def build_comparison(
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    versions: Sequence[str] = (),
    alias: str = "champion",
    tracking_uri: str | None = None,
    out: str | Path | None = None,
) -> CompareOutput:
    """Compare the ``alias`` version of each model and the given NAME:VERSIONs; write HTML and Markdown."""
    html_path = Path(out) if out is not None else OUT_DIR / "compare.html"
    if html_path.suffix != ".html":
        raise ConfigError(f"--out must end in .html, but got {str(html_path)!r}")
    client = tracking_client(resolve_tracking_uri(tracking_uri))
    candidates = load_candidates(client, resolve(client, models, versions, alias))
    result = compare_candidates(candidates)
    md_path = html_path.with_suffix(".md")
    atomic_write_bytes(html_path, page(result).encode())
    atomic_write_bytes(md_path, markdown(result, html_path).encode())
    return CompareOutput(html_path, md_path, result)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reports.compare", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", nargs="*", default=list(DEFAULT_MODELS), help="registered models whose --alias to compare"
    )
    p.add_argument("--versions", nargs="*", default=[], help="further versions as NAME:VERSION")
    p.add_argument(
        "--alias",
        default="champion",
        help="the alias compared for each of --models: champion (default), challenger, or champion-<first 8 "
        "characters of data_version_hash> (each model's best version on that data)",
    )
    p.add_argument(
        "--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or sqlite under $CFTUNE_HOME"
    )
    p.add_argument(
        "--out",
        default=None,
        help="HTML path (default: the project's reports/out/compare.html); .md beside it",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = build_comparison(
            models=args.models,
            versions=args.versions,
            alias=args.alias,
            tracking_uri=args.tracking_uri,
            out=args.out,
        )
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out.markdown.read_text(), end="")
    print(f"markdown: {out.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
