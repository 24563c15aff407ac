"""Locks and leases that live beside a store, so that workers of one study agree without sleeps or guesses.

- :func:`store_lock` serialises a critical section across every process using the same store: creating a
  store's schema, claiming the next trial, choosing the parent run, registering the study's model.
- :class:`Lease` is held by a worker for its whole life; another worker can ask whether it is still held.
  A trial whose worker's lease is free belongs to a dead worker and is failed at once (no grace period).

SQLite stores live on one machine: both are ``flock`` locks on files beside the database (the kernel drops
them when the process dies, ``kill -9`` included). PostgreSQL stores may be shared by many machines: both are
advisory locks on a connection of their own (the server drops them when that connection closes). Any other
URL gets no-op locks, and dead workers are then found only by the storage heartbeat.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _key(name: str) -> int:
    """A signed 64-bit key (what ``pg_advisory_lock`` takes) for a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for anything else, or an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def use_wal(url: str) -> None:
    """Put a SQLite store in write-ahead-log mode (it stays so: the mode is kept in the file). A study commits
    a few times per trial and step (reports, attributes, runs); with WAL a commit appends to one log instead
    of rewriting the journal, readers never block the writer, and concurrent local workers wait less. Call
    it under the store's schema lock: switching the mode needs a moment without other connections."""

    db = sqlite_path(url)
    if db is None or not db.is_file():
        return
    locked = contextlib.suppress(sqlite3.OperationalError)
    with locked, contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # "locked" (an old worker mid-write): it stays as it was


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


def _lock_file(db: Path, name: str) -> Path:
    folder = db.parent / f".{db.name}.locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{hashlib.sha256(name.encode()).hexdigest()[:24]}.lock"


def _pg_connection(url: str) -> Any:
    """A connection outside any pool, in autocommit: advisory locks must not hold a transaction open."""
    # lazy: sqlalchemy costs ~0.5 s to import: only for PostgreSQL storages
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    return engine.connect()


@contextlib.contextmanager
def store_lock(url: str, name: str) -> Iterator[None]:
    """Hold the lock ``name`` of the store at ``url`` for the ``with`` block (blocking until it is free)."""
    db = sqlite_path(url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(_lock_file(db, name), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock
        return
    if is_postgres(url):
        from sqlalchemy import text

        conn = _pg_connection(url)
        try:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _key(name)})
            yield
        finally:
            conn.close()  # closing the session drops its advisory locks
        return
    yield


class Lease:
    """A lock a worker holds for as long as it lives; :meth:`is_held` tells another worker whether it does."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self._fd: int | None = None
        self._conn: Any = None
        db = sqlite_path(url)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(_lock_file(db, name), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                raise RuntimeError(f"lease {name!r} is already held by a live worker") from None
        elif is_postgres(url):
            from sqlalchemy import text

            self._conn = _pg_connection(url)
            if not self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar():
                self._conn.close()
                raise RuntimeError(f"lease {name!r} is already held by a live worker")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def is_held(url: str, name: str) -> bool | None:
        """Whether a live process holds lease ``name``; None where the store offers no way to tell.

        Never ask about a lease this process holds through PostgreSQL: advisory locks are re-entrant
        within a session, so the answer would be "free"."""
        db = sqlite_path(url)
        if db is not None:
            path = _lock_file(db, name)
            if not path.exists():
                return False
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
            return False
        if is_postgres(url):
            from sqlalchemy import text

            with contextlib.closing(_pg_connection(url)) as conn:
                k = {"k": _key(name)}
                if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), k).scalar():
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), k)
                    return False
                return True
        return None
