"""What a study run depends on, and where the stores live. Imported by every other module of ``search/`` (and
by ``reports/``); it imports nothing heavy.

Stores resolve from one place, never from the current folder: ``$CFTUNE_HOME`` (default: the project's
``mlruns/``) holds ``optuna.db``, ``mlflow.db``, ``artifacts/`` and the reference cache ``baselines/``, so
``search.promote`` or ``reports.build`` run from another folder find the same studies and champions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.home import HOME_ENV, PROJECT_ROOT, default_storage, home, resolve_tracking_uri
from core.names import DEFAULT_KS, DEFAULT_METRIC, check_study_name
from core.prepare import DataOptions

__all__ = ["HOME_ENV", "PROJECT_ROOT", "default_storage", "home", "resolve_tracking_uri"]
#: Datasets known by name under the shared data folder (``$CFTUNE_DATA_DIR``, default ``../shared/data``).
DATASETS = ("ml-100k", "lastfm-2k", "amazon-beauty")
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 6
#: Attempts a point gets when it fails with an error or its worker dies; then it is recorded as given up.
MAX_ATTEMPTS = 3


def artifact_root() -> Path:
    """Where experiments on a local (SQLite) tracking store keep their artifacts."""
    return home() / "artifacts"


def reference_cache() -> Path:
    return home() / "baselines"


def data_dir() -> Path:
    """The shared real datasets: ``$CFTUNE_DATA_DIR``, else ``../shared/data`` beside the project."""
    return Path(os.environ.get("CFTUNE_DATA_DIR") or PROJECT_ROOT.parent / "shared" / "data")


@dataclass
class StudySettings:
    """Everything a study run depends on, parsed from the command line (or given by a caller)."""

    model: str
    data: DataOptions = field(default_factory=DataOptions)
    dataset: str | None = None
    trials: int | None = None
    sampler: str | None = None
    pruner: str = "median"
    select: str = "one-se"  # which finished trial is refit and registered: search.selection.SELECTION_RULES
    metric: str = DEFAULT_METRIC
    study_name: str | None = None
    storage: str | None = None  # None: default_storage()
    space: str | None = None
    tracking_uri: str | None = None
    eval_every: int | None = None
    register: bool = True
    report: bool = True
    quiet: bool = False
    ks: tuple[int, ...] = DEFAULT_KS
    grace_period: int = GRACE_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    workers: int = 1
    threads: int | None = None  # None: this machine's cores shared evenly by its --workers

    def __post_init__(self) -> None:
        if self.study_name is not None:
            check_study_name(self.study_name)

    @property
    def seed(self) -> int:
        return self.data.seed

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage()

    @property
    def evaluate_every(self) -> int:
        """Steps between validations (pruning checks): ``--eval-every``, else every ALS iteration and every
        5th BPR epoch."""
        return self.eval_every or (1 if self.model == "als" else 5)

    @property
    def trial_threads(self) -> int:
        """Threads each trial's training uses: ``--threads``, else the cores divided among the local workers
        (two workers on two cores train on one thread each instead of fighting over both)."""
        if self.threads:
            return self.threads
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))

    @property
    def helper(self) -> bool:
        """A worker that only runs trials: no refit, references, registration or report."""
        return not self.register
