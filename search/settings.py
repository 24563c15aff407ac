"""What a study run depends on, and where the stores live. Imported by every other module of ``search/`` (and
by ``reports/``); it imports nothing heavy.

Stores resolve from one place, never from the current folder: ``$CFTUNE_HOME`` (default: the project's
``mlruns/``) holds ``optuna.db``, ``mlflow.db``, ``artifacts/`` and the reference cache ``baselines/``, so
``search.promote`` or ``reports.build`` run from another folder find the same studies and champions. Stores
given elsewhere (``--storage``, ``--tracking-uri``) take their files with them: artifacts beside the tracking
store (or on its server), the EASE cache beside the Optuna storage.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.home import HOME_ENV, PROJECT_ROOT, default_storage, home, resolve_tracking_uri, with_driver
from core.names import DEFAULT_KS, DEFAULT_METRIC, check_study_name
from core.prepare import DataOptions
from search.locks import sqlite_path

if TYPE_CHECKING:
    from search.validation_sample import ValidationSample

__all__ = ["HOME_ENV", "PROJECT_ROOT", "default_storage", "home", "resolve_tracking_uri"]
#: Datasets known by name under the shared data folder (``$CFTUNE_DATA_DIR``, default ``../shared/data``).
DATASETS = ("ml-100k", "lastfm-2k", "amazon-beauty")
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 6
#: Attempts a point gets when it fails with an error or its worker dies; then it is recorded as given up.
MAX_ATTEMPTS = 3


def artifact_root(tracking_uri: str, asked: str | None = None) -> Path | None:
    """Where a new experiment keeps its artifacts, so that they follow the tracking store: ``asked``
    (``--artifact-root``); else ``artifacts/`` beside a SQLite tracking file; else None for a tracking server
    (``http(s)://``: the server's own artifact root). A database reached directly (``postgresql://``) has no
    folder beside it: the home's ``artifacts/``. A study prints the one it uses."""
    if asked:
        return Path(asked).expanduser().resolve()
    db = sqlite_path(tracking_uri)
    if db is not None:
        return db.resolve().parent / "artifacts"
    if urlsplit(tracking_uri).scheme in ("http", "https", "databricks", "file", ""):
        return None
    return home() / "artifacts"


def reference_cache(storage_url: str) -> Path:
    """Where the EASE references are cached, beside the Optuna storage they serve: ``baselines/`` beside a
    SQLite file; for a database server, one folder per server and database under the home (nothing is ours to
    write beside a remote database). The password never enters the folder's name."""
    db = sqlite_path(storage_url)
    if db is not None:
        return db.resolve().parent / "baselines"
    url = urlsplit(storage_url)
    where = f"{url.scheme}://{url.hostname}:{url.port}{url.path}?{url.query}"
    return home() / "baselines" / hashlib.sha256(where.encode()).hexdigest()[:16]


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
    artifact_root: str | None = None  # None: follow the tracking store (search.settings.artifact_root)
    eval_every: int | None = None
    # users a new study evaluates at intermediate steps: None the rule (search.validation_sample, or
    # $CFTUNE_VALID_SAMPLE), 0 all of them; a study keeps the sample it was created with
    valid_sample_size: int | None = None
    validation_sample: ValidationSample | None = None  # the study's own, set when the study is opened
    # evaluations without improvement before a trial stops (search.pruning): None the study's, or
    # search.pruning.default_patience for a new one (3 on large logs); 0 never; set to the study's on opening
    patience: int | None = None
    register: bool = True
    popularity_blend: bool = True  # choose each trial's popularity weight on validation (core.blend)
    report: bool = True
    quiet: bool = False
    ks: tuple[int, ...] = DEFAULT_KS
    grace_period: int = GRACE_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    workers: int | None = None  # None: search.parallelism.default_workers, set when the data is prepared
    threads: int | None = None  # None: this machine's cores shared evenly by its --workers
    keep_factors: str = "best:3"  # which trials keep their factor files: search.keep (best:K, all, none)

    def __post_init__(self) -> None:
        if self.study_name is not None:
            check_study_name(self.study_name)

    @property
    def seed(self) -> int:
        return self.data.seed

    @property
    def storage_url(self) -> str:
        return with_driver(self.storage) if self.storage else default_storage()

    @property
    def evaluate_every(self) -> int:
        """Steps between validations (pruning checks): ``--eval-every``, else the study's cadence, chosen from
        the data when it was created (:mod:`search.validation_sample`: every ALS iteration and every 5th BPR
        epoch, ALS less often on logs whose validation users are sampled)."""
        if self.eval_every:
            return self.eval_every
        if self.validation_sample is not None:
            return self.validation_sample.every
        return 1 if self.model == "als" else 5

    @property
    def trial_threads(self) -> int:
        """Threads each trial's training uses: ``--threads``, else the cores divided among the local workers
        (two workers on two cores train on one thread each instead of fighting over both)."""
        if self.threads:
            return self.threads
        return max(1, (os.cpu_count() or 1) // max(1, self.workers or 1))

    @property
    def helper(self) -> bool:
        """A worker that only runs trials: no refit, references, registration or report."""
        return not self.register
