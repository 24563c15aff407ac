"""Folders that fail like real disks, for the storage-fault tests.

``tmpfs``: a small tmpfs mounted on the folder (needs root and permission to mount; the test skips otherwise).
Read-only is a read-only mount; full is filled with a filler file until the kernel says ENOSPC.

``shim``: where mounting is not allowed, the same faults injected in this process: writes under the folder
(``open`` for writing, ``os.open`` with a write flag, ``mkdir``, ``rename``) raise the errno a real disk
would, and SQLite databases in it cannot grow (``PRAGMA max_page_count`` at their current size), which makes
SQLite say "database or disk is full" exactly as it does on a full disk."""

from __future__ import annotations

import builtins
import errno
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

KINDS = ("tmpfs", "shim")


def can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


class FaultyFolder:
    """A folder that can be made read-only or full, and healed again."""

    def __init__(self, path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path, self.kind, self.monkeypatch = path, kind, monkeypatch
        self.undo: list[Callable[[], None]] = []
        path.mkdir(parents=True, exist_ok=True)
        if kind == "tmpfs":
            mount = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)]
            done = subprocess.run(mount, capture_output=True)
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def read_only(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
            writable = ["mount", "-o", "remount,rw", str(self.path)]
            self.undo.append(lambda: subprocess.run(writable, check=True) and None)
        else:
            self._shim(errno.EROFS)

    def full(self) -> None:
        if self.kind == "tmpfs":
            filler = self.path / "filler"
            with filler.open("wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            self.undo.append(filler.unlink)
        else:
            self._shim(errno.ENOSPC)

    def heal(self) -> None:
        while self.undo:
            self.undo.pop()()

    def unmount(self) -> None:
        self.heal()
        if self.kind == "tmpfs":
            subprocess.run(["umount", "-l", str(self.path)], check=False)

    # ------------------------------------------------------------------------------------------- the shim
    def _inside(self, target: Any) -> bool:
        try:
            return Path(os.fsdecode(target)).resolve().is_relative_to(self.path.resolve())
        except (TypeError, ValueError):
            return False  # a file descriptor, not a path

    def _shim(self, code: int) -> None:
        def refuse(target: Any) -> None:
            if self._inside(target):
                raise OSError(code, os.strerror(code), os.fsdecode(target))

        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
        real_rename, real_replace, real_connect = os.rename, os.replace, sqlite3.connect
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def shim_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(c in mode for c in "wax+"):
                refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def shim_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & writing and not os.fsdecode(path).endswith(".lock"):  # locks hold no data
                refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def shim_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            refuse(path)
            real_mkdir(path, *args, **kwargs)

        def shim_rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            refuse(dst)
            real_rename(src, dst, *args, **kwargs)

        def shim_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            refuse(dst)
            real_replace(src, dst, *args, **kwargs)

        def shim_connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
            connection = real_connect(database, *args, **kwargs)
            if isinstance(database, str | os.PathLike) and self._inside(database):
                if code == errno.EROFS:
                    connection.execute("PRAGMA query_only = ON")
                else:  # the database cannot grow by a page: "database or disk is full"
                    pages = connection.execute("PRAGMA page_count").fetchone()[0]
                    connection.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
            return connection

        patches = [
            (builtins, "open", shim_open),
            (os, "open", shim_os_open),
            (os, "mkdir", shim_mkdir),
            (os, "rename", shim_rename),
            (os, "replace", shim_replace),
            (sqlite3, "connect", shim_connect),
        ]
        for owner, name, replacement in patches:
            self.monkeypatch.setattr(owner, name, replacement)
        reals = (real_open, real_os_open, real_mkdir, real_rename, real_replace, real_connect)
        self.undo.append(lambda: self._restore(patches, *reals))

    def _restore(self, patches: list[Any], *reals: Any) -> None:
        for (owner, name, _), real in zip(patches, reals, strict=True):
            self.monkeypatch.setattr(owner, name, real)


@contextmanager
def faulty_folder(path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyFolder]:
    folder = FaultyFolder(path, kind, monkeypatch)
    try:
        yield folder
    finally:
        folder.unmount()
