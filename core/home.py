"""Where the project keeps what it writes by default: one rule for every store and cache (plain strings and
paths: no store is opened here).

``$CFTUNE_HOME``, else the project's ``mlruns/`` folder, absolute either way and never the current folder, so
commands run from anywhere find the same studies, champions and caches.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project's root folder (the one holding ``core/``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The environment variable that moves the home.
HOME_ENV = "CFTUNE_HOME"


def home() -> Path:
    """``$CFTUNE_HOME``, else the project's ``mlruns/`` folder (absolute either way)."""
    return Path(os.environ.get(HOME_ENV) or PROJECT_ROOT / "mlruns").resolve()


def with_driver(url: str) -> str:
    """A ``postgresql://`` URL with the driver cftune installs (psycopg2): SQLAlchemy 2.1 would otherwise pick
    psycopg 3 and fail with "No module named 'psycopg'". Any other URL as it is."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def default_storage() -> str:
    """``$CFTUNE_STORAGE`` (e.g. the URL ``scripts/stores.sh start`` prints), else SQLite in home."""
    return with_driver(os.environ.get("CFTUNE_STORAGE") or f"sqlite:///{home() / 'optuna.db'}")


def default_tracking_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the SQLite store under :func:`home`."""
    return with_driver(uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri())
