"""A storage fault in one line, whatever library raised it.

A full disk reaches the user as Optuna's "exceeding max length", a read-only folder as an ``OSError`` from
deep inside MLflow, an unreachable server as a SQLAlchemy ``OperationalError``. :func:`fault_cause` reads an
exception down its cause chain (``__cause__``, then ``__context__``) and returns the storage cause it finds,
or None for anything else (a bug keeps its traceback). No library is imported here: causes are recognised by
errno and by the wording sqlite, PostgreSQL, Optuna and MLflow use."""

from __future__ import annotations

import errno
from collections.abc import Iterator

_ERRNO = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ECONNREFUSED: "unreachable (connection refused)",
    errno.EHOSTUNREACH: "unreachable (no route to host)",
    errno.EIO: "input/output error",
}
#: (lower-case wording, cause, whether to append the message's first sentence)
_WORDING = (
    ("database or disk is full", "no space left on device", False),
    ("no space left on device", "no space left on device", False),
    ("readonly database", "read-only file system", False),
    ("read-only file system", "read-only file system", False),
    ("unable to open database file", "cannot open the database file", False),
    ("disk i/o error", "input/output error", False),
    ("connection refused", "unreachable (connection refused)", False),
    ("could not translate host name", "unreachable (unknown host)", False),
    ("max retries exceeded", "unreachable", False),
    ("no longer compatible with the table schema", "its schema belongs to another Optuna version", True),
    ("out-of-date database schema", "its schema belongs to another MLflow version", True),
    ("can't locate revision", "its schema belongs to a newer MLflow version", True),
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it, down the chain (each exception once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def fault_cause(exc: BaseException) -> str | None:
    """The storage cause behind ``exc`` in a few words (with the file the system names), else None."""
    for e in causes(exc):
        if isinstance(e, OSError) and e.errno in _ERRNO:
            return _ERRNO[e.errno] + (f" ({e.filename})" if e.filename else "")
        text = str(e)
        lowered = text.lower()
        for wording, cause, detailed in _WORDING:
            if wording in lowered:
                return f"{cause}: {first_sentence(text)}" if detailed else cause
    return None


def first_sentence(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.split(". ")[0].rstrip(".")[:300]
