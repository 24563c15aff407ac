"""The command line of ``python -m search.run``: its options, and the parsed options as a study's settings.

Kept apart from the study runner so the runner stays readable; ``search.run`` passes its own docstring as the
help's description.
"""

from __future__ import annotations

import argparse

from core.errors import ConfigError
from core.names import DEFAULT_METRIC
from core.prepare import DataOptions, add_data_arguments
from search.keep import DEFAULT_KEEP, KeepFactors
from search.selection import SELECTION_RULES
from search.settings import DATASETS, GRACE_SECONDS, MAX_ATTEMPTS, StudySettings


def build_parser(description: str) -> argparse.ArgumentParser:
    """Every option of ``python -m search.run``; ``description`` heads its help."""
    p = argparse.ArgumentParser(prog="python -m search.run", description=description)
    p.add_argument("--model", choices=("als", "bpr"), required=True)
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help="the study's budget (default: the whole grid, or 100 with TPE)",
    )
    p.add_argument("--sampler", choices=("grid", "tpe"), default=None)
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    p.add_argument(
        "--select",
        choices=SELECTION_RULES,
        default="one-se",
        help="the trial to refit and register: the most regularized within one standard error of the best "
        "validation value (one-se), or the best value itself (best)",
    )
    p.add_argument("--dataset", default=None, help=f"synthetic, {', '.join(DATASETS)} (instead of --data)")
    add_data_arguments(p)
    p.add_argument("--metric", default=DEFAULT_METRIC)
    add_store_arguments(p)
    p.add_argument("--space", default=None, help="your own search-space YAML")
    p.add_argument("--eval-every", type=int, default=None, help="validation every N steps (ALS 1, BPR 5)")
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop a trial after this many validations without a better value (0: never; default 3 for a "
        "new study on 500,000 training interactions or more, else 0; a study keeps its own)",
    )
    add_worker_arguments(p)
    p.add_argument(
        "--no-register",
        action="store_true",
        help="a helper worker: runs trials only (no refit, references, registration or report)",
    )
    p.add_argument(
        "--keep-factors",
        default=DEFAULT_KEEP,
        type=_keep_factors,
        help="trials whose runs keep their factor matrices: the best K by value and those --select may "
        f"pick (best:K), every trial (all), or only those --select may pick (none); default {DEFAULT_KEEP}",
    )
    p.add_argument(
        "--no-popularity-blend",
        action="store_true",
        help="serve the model alone: no popularity weight chosen on validation (core.blend)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--quiet", action="store_true")
    return p


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    """Where the study, its runs and their artifacts are kept."""
    p.add_argument("--study-name", default=None)
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite under $CFTUNE_HOME)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="default: the study's, MLFLOW_TRACKING_URI, or sqlite under $CFTUNE_HOME",
    )
    p.add_argument(
        "--artifact-root",
        default=None,
        help="folder for new experiments' artifacts (default: beside a SQLite tracking file; a server's own)",
    )


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    """How a study's trials share this machine and survive the loss of a worker."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes on this machine (one study; default 1, or one per core for BPR on a large "
        "log, as memory allows: search.parallelism)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per trial (default: this machine's cores divided by --workers)",
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=GRACE_SECONDS,
        help="seconds without a heartbeat after which a trial on another machine counts as dead",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=MAX_ATTEMPTS,
        help="attempts a point gets when it errors or its worker dies, before it is given up",
    )


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    """The parsed options as the study's settings."""
    return StudySettings(
        model=args.model,
        data=DataOptions.from_args(args),
        dataset=args.dataset,
        trials=args.trials,
        sampler=args.sampler,
        pruner=args.pruner,
        select=args.select,
        metric=args.metric,
        study_name=args.study_name,
        storage=args.storage,
        space=args.space,
        tracking_uri=args.tracking_uri,
        artifact_root=args.artifact_root,
        eval_every=args.eval_every,
        patience=args.patience,
        register=not args.no_register,
        report=not args.no_report,
        popularity_blend=not args.no_popularity_blend,
        quiet=args.quiet,
        grace_period=args.grace_period,
        max_attempts=args.max_attempts,
        workers=args.workers,
        threads=args.threads,
        keep_factors=args.keep_factors,
    )


def _keep_factors(text: str) -> str:
    """``--keep-factors`` checked as it is parsed (argparse turns the error into a usage line)."""
    try:
        KeepFactors.parse(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
