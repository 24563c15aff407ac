"""Format ``movielens-dat``: ``ratings.dat`` of MovieLens-1M / -10M (``user::item::rating::unix_time``).

Read in chunks of ``_CHUNK_BYTES`` by pandas' C parser after turning ``::`` into one byte: numbers first (the
fast path), and, where some chunk is not plain numbers, the whole file again with every field as text, so
that ids and messages come out exactly as the tab-separated readers give them.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from core.data.files import first_data_line, gzipped, open_counted, reading
from core.data.table import ReadOptions, Table
from core.data.titles import movies_dat_titles
from core.errors import DataError

#: Bytes per read of the ``::`` reader; each chunk then ends at a line break (read at call time, so tests may
#: patch it here).
_CHUNK_BYTES = 16 << 20
_DAT_SEP = b"\x1f"  # what "::" becomes before pandas parses a chunk (ASCII unit separator: never in the data)
_DAT_NAMES = ("user_id", "item_id", "rating", "timestamp")
_DAT_PLAIN = b"0123456789.-\r\n" + _DAT_SEP  # a chunk of only these bytes may take the numeric fast path
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)  # 10 .. 1e18: digit counts of int64 ids


def read_movielens_dat(file: Path, source: str, options: ReadOptions) -> Table:
    """3 or 4 fields a line, no header; titles with genres from ``movies.dat`` beside it; scale (0.5, 5)."""
    row, first = first_data_line(file)
    n = len(first.split("::")) if first else len(_DAT_NAMES)
    if n not in (3, 4):
        raise DataError(
            f"expected 3 or 4 '::'-separated fields (user, item, rating[, unix time]), found {n}",
            source=source,
            row=row,
        )
    names = list(_DAT_NAMES[:n])
    with reading(source):
        frame = _read_dat(file, source, names, options.progress, numeric=True)
        if frame is None:  # some value is not a plain number: read again as text, for exact ids and messages
            frame = _read_dat(file, source, names, options.progress, numeric=False)
    titles = movies_dat_titles(file.parent / "movies.dat")
    return Table(frame, {c: c for c in names}, source, "rating", (0.5, 5.0), titles, text_ids=True)


def _dat_chunks(file: Path, progress: bool | None) -> Iterator[bytes]:
    """The file's bytes (gunzipped) in pieces of about ``_CHUNK_BYTES`` that end at a line break (the last
    one may not), with every "::" turned into ``_DAT_SEP`` and a leading UTF-8 byte-order mark dropped."""
    with open_counted(file, progress) as fh:
        stream: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=fh) if gzipped(file) else fh
        tail = b""
        first = True
        while block := stream.read(_CHUNK_BYTES):
            data = tail + block
            if first:
                data, first = data.removeprefix(b"\xef\xbb\xbf"), False
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if cut:
                yield data[:cut].replace(b"::", _DAT_SEP)
        if tail:
            yield tail.replace(b"::", _DAT_SEP)


def _read_dat(
    file: Path, source: str, names: list[str], progress: bool | None, *, numeric: bool
) -> pd.DataFrame | None:
    """``::``-separated fields, chunk by chunk with pandas' C parser, plus "_line".

    ``numeric=True`` parses ids as int64, ratings as float64 and times as int64; it gives up (None) unless
    the result is what the text path followed by the common checks would give (see :func:`_plain_chunk`).
    ``numeric=False`` keeps every field as text, as :func:`core.data.delimited.read_delimited` does.
    """
    frames: list[pd.DataFrame] = []
    lines = 0  # lines before the current chunk
    for data in _dat_chunks(file, progress):
        found = data[: data.find(b"\n") + 1 or len(data)].count(_DAT_SEP) + 1
        if found > len(names):  # pandas would drop the extra fields of a chunk's first line, not complain
            if numeric:
                return None
            raise DataError(
                f"expected {len(names)} '::'-separated fields ({_dat_what(names)}), found {found}",
                source=source,
                row=lines + 1,
            )
        if numeric:
            part = _plain_chunk(data, names)
            if part is None:
                return None
        else:
            try:
                part = _dat_chunk(data, names, str, keep_default_na=False, na_values=[""], encoding="utf-8")
            except pd.errors.ParserError as exc:
                long = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(exc))
                if long is None:
                    raise
                what = _dat_what(names)
                raise DataError(
                    f"expected {len(names)} '::'-separated fields ({what}), found {long.group(2)}",
                    source=source,
                    row=lines + int(long.group(1)),
                ) from None
        part["_line"] = np.arange(lines + 1, lines + len(part) + 1, dtype=np.int64)
        lines += len(part)
        frames.append(part)
    if not frames:
        raise DataError("the file is empty", source=source)
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if numeric:
        return raw
    blank = raw.drop(columns="_line").isna().all(axis=1)
    return raw[~blank].reset_index(drop=True)


def _dat_chunk(data: bytes, names: list[str], dtype: Any, **options: Any) -> pd.DataFrame:
    """One chunk of ``::`` lines through pandas' C parser: one physical line is one row (QUOTE_NONE), blank
    lines kept (they are errors to name)."""
    return pd.read_csv(
        io.BytesIO(data),
        sep=_DAT_SEP.decode(),
        header=None,
        names=names,
        index_col=False,
        quoting=3,
        dtype=dtype,
        skip_blank_lines=False,
        **options,
    )


def _dat_what(names: list[str]) -> str:
    return ", ".join(("user", "item", "rating", "unix time")[: len(names)])


def _plain_chunk(data: bytes, names: list[str]) -> pd.DataFrame | None:
    """Numbers of a chunk of plain lines, or None where the text path could read it differently.

    Plain: only digits, ".", "-" and line breaks; every line has all its fields and no more (the count of
    separators), each a number; ids are written the canonical way (no leading zero, no ".0", under 1e18 in
    size): the ids the text path would turn into the same int64, which the check of where each line's
    separators fall confirms.
    """
    if data.translate(None, _DAT_PLAIN):
        return None
    dtype = dict(zip(_DAT_NAMES, ("int64", "int64", "float64", "int64"), strict=True))
    try:
        part = _dat_chunk(data, names, {c: dtype[c] for c in names})
    except (ValueError, OverflowError):  # a short or blank line (NaN ids or times), a long one (ParserError)
        return None
    if part["rating"].isna().any() or data.count(_DAT_SEP) != (len(names) - 1) * len(part):
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    starts = np.flatnonzero(buf == ord("\n")) + 1
    starts = np.concatenate(([0], starts[starts < len(buf)]))
    if len(starts) != len(part):  # a lone "\r" ends a line for pandas
        return None
    users, items = part["user_id"].to_numpy(), part["item_id"].to_numpy()
    if not (_small(users) and _small(items)):
        return None
    first = starts + _width(users)  # where each line's separators fall when its ids are canonical
    second = first + 1 + _width(items)
    if second.max() >= len(buf):
        return None
    sep = _DAT_SEP[0]
    return part if bool((buf[first] == sep).all() and (buf[second] == sep).all()) else None


def _small(ids: np.ndarray) -> bool:
    return bool(((ids > -(10**18)) & (ids < 10**18)).all())


def _width(ids: np.ndarray) -> np.ndarray:
    """Characters of each id written in canonical form (sign included)."""
    return 1 + np.searchsorted(_POW10, np.abs(ids), side="right") + (ids < 0)
