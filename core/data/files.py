"""Opening data files: gzip or not, a byte progress bar for big files, and I/O failures as :class:`DataError`.

Why here: every reader opens its file through these, so gzip sniffing, the 50 MB progress threshold and the
wording of "cannot read the file" are decided once.
"""

from __future__ import annotations

import contextlib
import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pandas as pd
from tqdm.auto import tqdm
from tqdm.utils import CallbackIOWrapper

from core.errors import DataError

#: Files larger than this show a progress bar while the delimited readers read them (read at call time, so
#: tests may patch it here).
_PROGRESS_BYTES = 50 << 20


def gzipped(file: Path) -> bool:
    with open(file, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def open_text(file: Path, encoding: str = "utf-8-sig") -> IO[str]:
    if gzipped(file):
        return gzip.open(file, "rt", encoding=encoding, newline="")
    return open(file, encoding=encoding, newline="")


def first_line(file: Path) -> str:
    """First non-blank line, gzip or not; "" when unreadable (detection then falls back to the extension)."""
    return first_data_line(file)[1]


def first_data_line(file: Path) -> tuple[int, str]:
    """The first non-blank line and its 1-based number; (0, "") when there is none or it cannot be read."""
    try:
        with open_text(file) as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    return number, line
    except (OSError, UnicodeDecodeError, EOFError):
        return 0, ""
    return 0, ""


@contextlib.contextmanager
def open_counted(file: Path, progress: bool | None) -> Iterator[IO[bytes]]:
    """``file`` opened for binary reading; over ``_PROGRESS_BYTES`` its reads move a byte progress bar
    (tqdm.auto, on stderr; ``progress`` None: only where stderr is a terminal, False: never)."""
    size = file.stat().st_size
    show = progress is not False and size > _PROGRESS_BYTES
    disable = (None if progress is None else False) if show else True
    with (
        open(file, "rb") as fh,
        tqdm(
            total=size,
            desc=f"reading {file.name}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
            disable=disable,
        ) as bar,
    ):
        yield CallbackIOWrapper(bar.update, fh, "read") if show else fh


@contextlib.contextmanager
def reading(source: str) -> Iterator[None]:
    """Turn parser and I/O failures into DataError naming the file (and the line when the parser knows it)."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError("file not found", source=source) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError("the file is empty", source=source) from exc
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))
        row = int(found.group(1)) if found else None
        detail = str(exc).split("C error: ")[-1]
        raise DataError(f"cannot parse the file: {detail}", source=source, row=row) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid {exc.encoding} text ({exc.reason})", source=source) from exc
    except (OSError, EOFError, ValueError, TypeError) as exc:  # gzip, pyarrow and pandas failures
        raise DataError(f"cannot read the file: {exc}", source=source) from exc
