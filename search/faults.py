"""Which store a storage fault hit, named in the one line the user sees.

:func:`core.faults.fault_cause` says what went wrong (read-only, full, unreachable, another version's
schema); :func:`store_fault` adds where: the Optuna storage, the MLflow tracking store or its artifact store,
told apart by the file the system names or else by the library the failing call was inside."""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import StoreFault
from core.faults import causes, fault_cause
from search.locks import sqlite_path
from search.settings import StudySettings, artifact_root, resolve_tracking_uri


def shown_url(url: str) -> str:
    """``url`` without its password, fit for a message or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def cause_at(exc: BaseException, url: str) -> str | None:
    """:func:`~core.faults.fault_cause` of ``exc`` on the store at ``url``: SQLite reports a full disk under
    its write-ahead log as a "disk I/O error", so that one is checked against the space left on the disk."""
    cause = fault_cause(exc)
    folder = _folder(url)
    if cause == "input/output error" and folder is not None:
        try:
            if shutil.disk_usage(folder).free < 1 << 20:
                return "no space left on device (SQLite says: disk I/O error)"
        except OSError:
            pass
    return cause


def _inside(path: str | None, folder: Path | None) -> bool:
    if path is None or folder is None:
        return False
    return Path(path).resolve().is_relative_to(folder.resolve())


def store_fault(exc: BaseException, settings: StudySettings) -> StoreFault | None:
    """A :class:`StoreFault` naming the store ``exc`` failed on and why; None for anything but a fault."""
    cause = fault_cause(exc)
    if cause is None:
        return None
    tracking = resolve_tracking_uri(settings.tracking_uri)
    artifacts = artifact_root(tracking, settings.artifact_root)
    stores = {
        "MLflow artifact store": (str(artifacts) if artifacts else "(the tracking server's)", artifacts),
        "Optuna storage": (shown_url(settings.storage_url), _folder(settings.storage_url)),
        "MLflow tracking store": (shown_url(tracking), _folder(tracking)),
    }
    named = [getattr(e, "filename", None) for e in causes(exc)]
    by_file = [kind for kind, (_, folder) in stores.items() if any(_inside(f, folder) for f in named)]
    chosen = by_file[0] if by_file else _library_of(exc)
    if chosen is None:
        return StoreFault(f"a store could not be written: {cause}")
    url = {"Optuna storage": settings.storage_url, "MLflow tracking store": tracking}.get(chosen)
    return StoreFault(f"{chosen} {stores[chosen][0]}: {cause_at(exc, url) if url else cause}")


def _folder(url: str) -> Path | None:
    db = sqlite_path(url)
    return None if db is None else db.resolve().parent


def _library_of(exc: BaseException) -> str | None:
    """The store whose library the deepest failing frame of the chain was in."""
    for e in causes(exc):
        for frame in reversed(traceback.extract_tb(e.__traceback__)):
            name = frame.filename.replace("\\", "/")
            if "/mlflow/store/artifact/" in name or "/mlflow/utils/file_utils" in name:
                return "MLflow artifact store"
            if "/mlflow/" in name:
                return "MLflow tracking store"
            if "/optuna/" in name:
                return "Optuna storage"
    return None
