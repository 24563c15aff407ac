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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.artifacts import atomic_write_bytes
from core.errors import CftuneError, ConfigError
from core.home import default_storage
from core.names import file_in, study_name_from
from reports.analysis import analyse
from reports.html import OUT_DIR, render_page
from reports.markdown import markdown
from reports.sections import sections
from reports.sources import find_record, load_results, log_report, read_record_file
from reports.summary import cards, verdict
from search.record import FILE_NAME, StudyRecord


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path


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
    default = f"{study_name_from(record.study_name)}.html"  # a name from an older record may hold anything
    html_path = Path(out) if out is not None else file_in(OUT_DIR, default)
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
