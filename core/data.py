"""Load interaction logs from files: the one entry point, :func:`load`, and :func:`detect_format`.

Why one entry point: every later step trusts that ids are present, ratings are finite numbers inside the
declared scale and each (user, item) pair occurs once. Checking that here, with errors that name the file,
the line and the column, keeps the rest of the library free of input checks.

Formats (the names ``format=`` takes):

- ``movielens``: ``u.data`` (``user \\t item \\t rating \\t unix_time``, no header), or a folder holding it.
  Titles with genres ("Toy Story (1995) | Animation|Children's|Comedy") come from ``u.item`` beside it
  (Latin-1, ``|``-separated, 19 genre flags named by ``u.genre``). Default rating scale (1, 5).
- ``movielens-csv``: ``ratings.csv`` (``userId,movieId,rating,timestamp``); titles and genres from
  ``movies.csv`` beside it. Default rating scale (0.5, 5), the half-star scale of the newer MovieLens sets.
- ``movielens-dat``: ``ratings.dat`` of MovieLens-1M / -10M (``user::item::rating::unix_time``, no header; a
  first line of 3 or 4 numbers joined by ``::`` is how it is recognised), or a folder holding it. Titles with
  genres from ``movies.dat`` beside it (``item::title::genres``, UTF-8, or Latin-1 as in ML-1M). Default
  rating scale (0.5, 5): ML-10M has half stars, ML-1M's whole stars fit. Read in chunks of
  ``_CHUNK_BYTES`` by pandas' C parser after turning ``::`` into one byte.
- ``amazon``: JSON lines, optionally gzipped (``reviewerID``, ``asin``, ``overall``, ``reviewText``,
  ``summary``, ``unixReviewTime``, ``image``). Text is "summary. reviewText"; ``has_image`` is True where
  ``image`` is a non-empty list. Default rating scale (1, 5).
- ``lastfm``: ``user_artists.dat`` (``userID \\t artistID \\t weight``; a header line is tolerated), or a
  folder holding it. ``kind="count"``; artist names from ``artists.dat`` beside it.
- ``csv`` (``.tsv`` is tab-separated), ``parquet``, ``jsonl``: generic tables. ``columns`` maps canonical
  names to the file's columns; unmapped columns are found by their canonical name or a common alias.

Files over 50 MB read by the delimited readers show a byte progress bar (tqdm, on stderr); ``show_progress``
of :func:`load` turns it off (False), or on where stderr is not a terminal (True).

Row convention: ``DataError.row`` (and the line named in warnings) is the 1-based LINE number in the file for
text formats, counting a header line as line 1: the first data row of a CSV with a header is line 2, the
first line of ``u.data`` is line 1, and a JSON-lines record is on its own physical line. Blank lines are
skipped but still counted (so are rows whose fields are all empty). A quoted CSV field that spans lines shifts
the count. For Parquet it is the 1-based record number.

Validation: missing columns, missing ids, missing / non-numeric / non-finite ratings, negative ratings or
counts, ratings outside the rating scale and unparseable timestamps each raise :class:`DataError` naming the
first bad row. Timestamps may be unix seconds or ISO-8601 strings; they are stored as int64 unix seconds.
Zero counts (``kind="count"``) carry no signal and are dropped with a warning. Ids read from text files are
stripped, and become int64 when every one is a plain integer ("007" keeps the column text). Bad arguments
(unknown format, a bad ``rating_scale``, ``columns`` keys that are not canonical names) raise ConfigError.

Duplicate (user, item) rows, ``on_duplicate="aggregate"`` (default): ratings keep the LAST interaction by
timestamp (file order breaks ties, and decides alone when there are no timestamps); counts are SUMMED (the
row stays where the pair first occurs, with the latest timestamp). A ``UserWarning`` names the file, the
number of duplicate rows, the first one's line and the rule. ``on_duplicate="error"`` raises instead.
Rows otherwise stay in file order.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.io.common import infer_compression
from tqdm.auto import tqdm
from tqdm.utils import CallbackIOWrapper

from core.errors import ConfigError, DataError
from core.interactions import CANONICAL_COLUMNS, Interactions, Kind

__all__ = ["FORMATS", "detect_format", "load"]

#: Names ``format=`` accepts.
FORMATS = ("movielens", "movielens-csv", "movielens-dat", "amazon", "lastfm", "csv", "parquet", "jsonl")
_GENERIC = ("csv", "parquet", "jsonl")
_REQUIRED = ("user_id", "item_id", "rating")
#: Column names tried, in order, when ``columns`` does not map a canonical column (generic formats).
_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userId", "userID", "user", "customer_id", "reviewerID"),
    "item_id": ("item_id", "itemId", "itemID", "item", "movieId", "product_id", "productId", "asin"),
    "rating": ("rating", "score", "overall", "stars"),
    "timestamp": ("timestamp", "unixReviewTime", "time", "ts", "date"),
    "text": ("text", "reviewText", "review", "comment"),
    "has_image": ("has_image",),
}
_ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_INT_ID = r"-?(?:0|[1-9][0-9]{0,17})"  # ids that survive a round trip through int64 unchanged
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})
#: Bytes per read of the ``::`` reader (``ratings.dat``); each chunk then ends at a line break.
_CHUNK_BYTES = 16 << 20
#: Files larger than this show a progress bar while the delimited readers read them.
_PROGRESS_BYTES = 50 << 20
_DAT_SEP = b"\x1f"  # what "::" becomes before pandas parses a chunk (ASCII unit separator: never in the data)
_DAT_NAMES = ("user_id", "item_id", "rating", "timestamp")
_DAT_PLAIN = b"0123456789.-\r\n" + _DAT_SEP  # a chunk of only these bytes may take the numeric fast path
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)  # 10 .. 1e18: digit counts of int64 ids


@dataclass
class _Table:
    """What a format reader hands to the common checks: raw canonical columns and where each row came from."""

    frame: pd.DataFrame  # canonical columns, raw values, and "_line"
    names: dict[str, str]  # canonical column -> the file's own name for it, for messages
    source: str
    kind: Kind
    rating_scale: tuple[float, float] | None
    item_titles: dict[object, str] | None = None
    text_ids: bool = False  # ids were read as text: canonical integers become int64
    unit: str = "line"  # what "_line" counts: "line", or "record" for Parquet
    notes: list[str] = field(default_factory=list)  # warnings to emit once loading succeeds


# ---------------------------------------------------------------------------------------------- public API
def load(
    path: str | Path,
    *,
    format: str | None = None,
    columns: dict[str, str] | None = None,
    rating_scale: tuple[float, float] | None = None,
    kind: Kind | None = None,
    on_duplicate: Literal["aggregate", "error"] = "aggregate",
    show_progress: bool | None = None,
) -> Interactions:
    """Read an interaction file (or a folder holding a known one) into a validated :class:`Interactions`.

    ``format`` overrides detection; ``rating_scale`` and ``kind`` override the format's defaults (``kind``
    is "count" for lastfm, "rating" otherwise). ``show_progress``: a byte progress bar on stderr for files
    over 50 MB; None shows it where stderr is a terminal, False never, True always. See the module docstring
    for formats and rules.
    """
    if format is not None and format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if on_duplicate not in ("aggregate", "error"):
        raise ConfigError(f"on_duplicate must be 'aggregate' or 'error', but got {on_duplicate=}")
    if kind is not None and kind not in ("rating", "count"):
        raise ConfigError(f"kind must be 'rating' or 'count', but got {kind=}")
    if show_progress not in (None, True, False):
        raise ConfigError(f"show_progress must be None, True or False, but got {show_progress=}")
    scale = _check_scale(rating_scale)
    fmt, file = _locate(path, format)
    if columns is not None:
        if fmt not in _GENERIC:
            raise ConfigError(f"columns= applies to the generic formats {_GENERIC}, not to {fmt!r}")
        unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ConfigError(f"columns= keys must be canonical names {CANONICAL_COLUMNS}, but got {unknown}")

    source = str(file) if Path(path).is_dir() else str(path)  # the path as given, or the file inside it
    table = _READERS[fmt](file, source, columns or {}, show_progress)
    if kind is not None:
        table.kind = kind
    if scale is not None:
        table.rating_scale = scale
    frame, n_dup = _clean(table, on_duplicate)
    for note in table.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    out = Interactions.from_frame(
        frame[[c for c in CANONICAL_COLUMNS if c in frame.columns]],
        kind=table.kind,
        source=table.source,
        rating_scale=table.rating_scale,
        item_titles=table.item_titles,
        line=frame["_line"].to_numpy(),
        line_unit=table.unit,
    )
    return replace(out, meta={"format": fmt, "duplicates": n_dup, "dataset": dataset_name(file, fmt)})


def dataset_name(file: str | Path, fmt: str) -> str:
    """A short name for the data behind ``file``: the folder of a known dataset's file (``ml-100k`` for
    ``ml-100k/u.data``, ``amazon-beauty`` for its review dump), else the file name without suffixes."""
    p = Path(file).resolve()
    if fmt in _GENERIC:
        return p.name.split(".")[0] or p.name
    return p.parent.name or p.name.split(".")[0]


def detect_format(path: str | Path) -> str:
    """The format name :func:`load` would use for ``path`` (a file or a folder holding a known file)."""
    return _locate(path, None)[0]


# ---------------------------------------------------------------------------------------------- locating
def _locate(path: str | Path, fmt: str | None) -> tuple[str, Path]:
    """Format and data file for a path: by file name, then extension; a folder by the known files inside."""
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", source=str(path))
    if p.is_dir():
        return _locate_in_folder(p, fmt)
    return (fmt or _detect_file(p)), p


def _locate_in_folder(folder: Path, fmt: str | None) -> tuple[str, Path]:
    known = {
        "movielens": "u.data",
        "movielens-csv": "ratings.csv",
        "movielens-dat": "ratings.dat",
        "lastfm": "user_artists.dat",
    }
    if fmt in _GENERIC:
        raise DataError(f"format {fmt!r} needs a file, not a folder", source=str(folder))
    for name, file_name in known.items():
        if fmt in (None, name) and (folder / file_name).is_file():
            return name, folder / file_name
    if fmt in (None, "amazon"):
        for file in sorted(folder.iterdir()):
            if file.is_file() and _strip_gz(file.name).endswith(_JSON_SUFFIXES) and _is_amazon(file):
                return "amazon", file
    wanted = (
        f"{fmt} data file"
        if fmt
        else "known data file (u.data, ratings.csv, ratings.dat, user_artists.dat, *.json.gz)"
    )
    found = sorted(f.name for f in folder.iterdir())
    raise DataError(f"no {wanted} in this folder; found: {found}", source=str(folder))


def _detect_file(file: Path) -> str:
    name = file.name
    if name == "u.data":
        return "movielens"
    if name == "user_artists.dat":
        return "lastfm"
    if name == "ratings.csv":
        header = _first_line(file).split(",")
        return "movielens-csv" if {"userId", "movieId"} <= {h.strip() for h in header} else "csv"
    stem = _strip_gz(name).lower()
    if stem.endswith(_JSON_SUFFIXES):
        return "amazon" if _is_amazon(file) else "jsonl"
    if stem.endswith((".csv", ".tsv", ".tab")):
        return "csv"
    if stem.endswith((".parquet", ".pq")):
        return "parquet"
    if _is_double_colon(file):  # ratings.dat of MovieLens-1M / -10M, or any file shaped like it
        return "movielens-dat"
    raise DataError(
        "cannot tell the format from the file name; pass --format (format= in Python), "
        f"one of {', '.join(FORMATS)}",
        source=str(file),
    )


def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _is_amazon(file: Path) -> bool:
    """Amazon review dumps are JSON lines whose records carry ``reviewerID``."""
    try:
        record = json.loads(_first_line(file))
    except ValueError:
        return False
    return isinstance(record, dict) and "reviewerID" in record


def _is_double_colon(file: Path) -> bool:
    """MovieLens-1M / -10M ``ratings.dat``: the first line is 3 or 4 numbers joined by "::"."""
    fields = _first_line(file).strip().split("::")
    return len(fields) in (3, 4) and all(_is_number(f) for f in fields)


def _first_line(file: Path) -> str:
    """First non-blank line, gzip or not; "" when unreadable (detection then falls back to the extension)."""
    return _first_data_line(file)[1]


def _first_data_line(file: Path) -> tuple[int, str]:
    """The first non-blank line and its 1-based number; (0, "") when there is none or it cannot be read."""
    try:
        with _open_text(file) as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    return number, line
    except (OSError, UnicodeDecodeError, EOFError):
        return 0, ""
    return 0, ""


def _gzipped(file: Path) -> bool:
    with open(file, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_text(file: Path, encoding: str = "utf-8-sig") -> IO[str]:
    if _gzipped(file):
        return gzip.open(file, "rt", encoding=encoding, newline="")
    return open(file, encoding=encoding, newline="")


@contextlib.contextmanager
def _open_counted(file: Path, progress: bool | None) -> Iterator[IO[bytes]]:
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


# ---------------------------------------------------------------------------------------------- reading
@contextlib.contextmanager
def _reading(source: str) -> Iterator[None]:
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


def _read_delimited(
    file: Path,
    source: str,
    *,
    sep: str,
    header: bool,
    skip: int = 0,
    encoding: str = "utf-8",
    progress: bool | None = None,
) -> pd.DataFrame:
    """All fields as text (ids keep leading zeros; bad values stay visible for messages), plus "_line"."""
    with _reading(source), _open_counted(file, progress) as fh:
        raw = pd.read_csv(
            fh,
            compression=infer_compression(str(file), "infer"),  # as pandas does for a path
            sep=sep,
            header=0 if header else None,
            skiprows=skip,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding=encoding,
        )
    raw["_line"] = np.arange(len(raw), dtype=np.int64) + 1 + skip + int(header)
    blank = raw.drop(columns="_line").isna().all(axis=1)
    return raw[~blank].reset_index(drop=True)


def _fixed_fields(raw: pd.DataFrame, names: list[str], source: str, what: str) -> pd.DataFrame:
    """Name the columns of a header-less file, insisting on the number of fields its format has."""
    n = raw.shape[1] - 1
    if n != len(names):
        raise DataError(
            f"expected {len(names)} tab-separated fields ({what}), found {n}",
            source=source,
            row=int(raw["_line"].iat[0]) if len(raw) else None,
        )
    return raw.set_axis([*names, "_line"], axis=1)


def _read_movielens(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    raw = _read_delimited(file, source, sep="\t", header=False, progress=progress)
    names = ["user_id", "item_id", "rating", "timestamp"]
    frame = _fixed_fields(raw, names, source, "user, item, rating, unix time")
    titles = _movielens_titles(file.parent / "u.item", file.parent / "u.genre")
    return _Table(frame, {n: n for n in names}, source, "rating", (1.0, 5.0), titles, text_ids=True)


def _movielens_titles(item_file: Path, genre_file: Path) -> dict[object, str] | None:
    """u.item titles with genre names appended, so text features see the genres too."""
    if not item_file.is_file():
        return None
    genres = list(_ML_GENRES)
    if genre_file.is_file():
        with _reading(str(genre_file)):
            g = pd.read_csv(genre_file, sep="|", header=None, dtype=str, encoding="latin-1")
        if g.shape[1] >= 2 and len(g):
            genres = g.sort_values(1, key=lambda s: pd.to_numeric(s, errors="coerce"))[0].tolist()
    with _reading(str(item_file)):
        items = pd.read_csv(
            item_file, sep="|", header=None, dtype=str, encoding="latin-1", keep_default_na=False, quoting=3
        )
    if items.shape[1] < 2:
        raise DataError(f"expected '|'-separated fields, found {items.shape[1]}", source=str(item_file))
    flags = items.iloc[:, 5:].to_numpy() == "1"
    names = np.array([f"{g}|" for g in genres[: flags.shape[1]]], dtype=object)
    names = np.pad(names, (0, flags.shape[1] - len(names)), constant_values="")
    joined = pd.Series(np.where(flags, names, "").sum(axis=1) if flags.size else "", index=items.index)
    joined = joined.astype(str).str.rstrip("|")
    text = items[1].where(joined == "", items[1] + " | " + joined)
    return dict(zip(_int_ids(items[0]), text, strict=True))


def _read_movielens_csv(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    raw = _read_delimited(file, source, sep=",", header=True, progress=progress)
    table = _select(
        raw, {"user_id": "userId", "item_id": "movieId", "rating": "rating"}, source, ("timestamp",)
    )
    table.text_ids = True
    table.rating_scale = (0.5, 5.0)
    movies = file.parent / "movies.csv"
    if movies.is_file():
        with _reading(str(movies)):
            m = pd.read_csv(movies, dtype=str, keep_default_na=False)
        if {"movieId", "title"} <= set(m.columns):
            genres = m["genres"] if "genres" in m.columns else pd.Series("", index=m.index)
            genres = genres.where(genres != "(no genres listed)", "")
            text = m["title"].where(genres == "", m["title"] + " | " + genres)
            table.item_titles = dict(zip(_int_ids(m["movieId"]), text, strict=True))
    return table


def _read_movielens_dat(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    row, first = _first_data_line(file)
    n = len(first.split("::")) if first else len(_DAT_NAMES)
    if n not in (3, 4):
        raise DataError(
            f"expected 3 or 4 '::'-separated fields (user, item, rating[, unix time]), found {n}",
            source=source,
            row=row,
        )
    names = list(_DAT_NAMES[:n])
    with _reading(source):
        frame = _read_dat(file, source, names, progress, numeric=True)
        if frame is None:  # some value is not a plain number: read again as text, for exact ids and messages
            frame = _read_dat(file, source, names, progress, numeric=False)
    titles = _movielens_dat_titles(file.parent / "movies.dat")
    return _Table(frame, {c: c for c in names}, source, "rating", (0.5, 5.0), titles, text_ids=True)


def _dat_chunks(file: Path, progress: bool | None) -> Iterator[bytes]:
    """The file's bytes (gunzipped) in pieces of about ``_CHUNK_BYTES`` that end at a line break (the last
    one may not), with every "::" turned into ``_DAT_SEP`` and a leading UTF-8 byte-order mark dropped."""
    with _open_counted(file, progress) as fh:
        stream: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=fh) if _gzipped(file) else fh
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
    ``numeric=False`` keeps every field as text, as :func:`_read_delimited` does.
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


def _movielens_dat_titles(movies: Path) -> dict[object, str] | None:
    """movies.dat (``item::title::genres``) titles with their genres, as for ``movies.csv``; UTF-8 (ML-10M)
    or, failing that, Latin-1 (ML-1M)."""
    if not movies.is_file():
        return None
    with _reading(str(movies)):
        data = movies.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        m = pd.read_csv(
            io.StringIO(text.replace("::", "\x1f")),
            sep="\x1f",
            header=None,
            names=["item", "title", "genres"],
            index_col=False,
            quoting=3,
            dtype=str,
            keep_default_na=False,
        )
    genres = m["genres"].fillna("").replace("(no genres listed)", "")
    text_ = m["title"].where(genres == "", m["title"] + " | " + genres)
    return dict(zip(_int_ids(m["item"]), text_, strict=True))


def _read_lastfm(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    fields = _first_line(file).strip().split("\t")
    header = len(fields) == 3 and not _is_number(fields[2])  # "userID \t artistID \t weight"
    raw = _read_delimited(file, source, sep="\t", header=False, skip=int(header), progress=progress)
    names = ["user_id", "item_id", "rating"]
    frame = _fixed_fields(raw, names, source, "user, artist, play count")
    titles = None
    artists = file.parent / "artists.dat"
    if artists.is_file():
        with _reading(str(artists)):
            a = pd.read_csv(artists, sep="\t", dtype=str, keep_default_na=False, quoting=3)
        if {"id", "name"} <= set(a.columns):
            titles = dict(zip(_int_ids(a["id"]), a["name"], strict=True))
    labels = {"user_id": "userID", "item_id": "artistID", "rating": "weight"}
    return _Table(frame, labels, source, "count", None, titles, text_ids=True)


def _read_json_lines(file: Path, source: str) -> pd.DataFrame:
    """One JSON object per line (gzip or not); an unparseable line is reported by its number."""
    with _reading(source), _open_text(file) as fh:
        text = fh.read()
    lines = pd.Series(text.split("\n"), dtype=object)
    keep = lines.str.strip().ne("").to_numpy()
    body = lines[keep].tolist()
    numbers = np.flatnonzero(keep) + 1
    if not body:
        raise DataError("the file is empty (no JSON lines)", source=source)
    try:
        records = json.loads("[" + ",".join(body) + "]")
        ok = len(records) == len(body) and all(isinstance(r, dict) for r in records)
    except ValueError:
        ok = False
    if not ok:  # find the first bad line; only reached for a broken file
        records = []
        for number, line in zip(numbers, body, strict=True):
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DataError(f"invalid JSON: {exc}", source=source, row=int(number)) from None
            if not isinstance(record, dict):
                raise DataError(
                    f"expected a JSON object, got {line.strip()[:40]!r}", source=source, row=int(number)
                )
            records.append(record)
    raw = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    raw["_line"] = numbers
    return raw


def _read_amazon(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    raw = _read_json_lines(file, source)
    mapping = {"user_id": "reviewerID", "item_id": "asin", "rating": "overall", "timestamp": "unixReviewTime"}
    table = _select(raw, mapping, source, ("timestamp",))
    review = raw["reviewText"] if "reviewText" in raw.columns else pd.Series("", index=raw.index)
    summary = raw["summary"] if "summary" in raw.columns else pd.Series("", index=raw.index)
    review = review.fillna("").astype(str).str.strip()
    summary = summary.fillna("").astype(str).str.strip()
    joiner = pd.Series(". ", index=raw.index).where(~summary.str.contains(r"[.!?]$", regex=True), " ")
    text = (summary + joiner + review).where(summary != "", review).where(review != "", summary)
    table.frame["text"] = text.to_numpy(dtype=object)
    table.names["text"] = "reviewText"
    image = raw["image"] if "image" in raw.columns else pd.Series(np.nan, index=raw.index, dtype=object)
    table.frame["has_image"] = image.astype(object).str.len().fillna(0).gt(0).to_numpy()
    table.rating_scale = (1.0, 5.0)
    return table


def _read_csv(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    sep = "\t" if _strip_gz(file.name).lower().endswith((".tsv", ".tab")) else ","
    raw = _read_delimited(file, source, sep=sep, header=True, progress=progress)
    table = _select(raw, columns, source, tuple(c for c in CANONICAL_COLUMNS if c not in _REQUIRED), _ALIASES)
    table.text_ids = True
    return table


def _read_jsonl(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    raw = _read_json_lines(file, source)
    return _select(raw, columns, source, tuple(c for c in CANONICAL_COLUMNS if c not in _REQUIRED), _ALIASES)


def _read_parquet(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> _Table:
    with _reading(source):
        raw = pd.read_parquet(file)
    raw = raw.reset_index(drop=True)
    raw["_line"] = np.arange(1, len(raw) + 1, dtype=np.int64)
    table = _select(raw, columns, source, tuple(c for c in CANONICAL_COLUMNS if c not in _REQUIRED), _ALIASES)
    table.unit = "record"
    return table


def _select(
    raw: pd.DataFrame,
    columns: dict[str, str],
    source: str,
    optional: tuple[str, ...],
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> _Table:
    """Pick the canonical columns: mapped names must exist; unmapped ones are looked up by alias."""
    found = [c for c in raw.columns if c != "_line"]
    names: dict[str, str] = {}
    for canon in (*_REQUIRED, *optional):
        if canon in columns:
            if columns[canon] not in found:
                raise DataError(
                    f"missing column {columns[canon]!r} (for {canon}); columns found: {found}",
                    source=source,
                    column=columns[canon],
                )
            names[canon] = columns[canon]
            continue
        tried = (aliases or {}).get(canon, (canon,))
        hit = next((a for a in tried if a in found), None)
        if hit is not None:
            names[canon] = hit
        elif canon in _REQUIRED:
            also = f" (or {', '.join(repr(a) for a in tried if a != canon)})" if len(tried) > 1 else ""
            raise DataError(
                f"missing required column {canon!r}{also}; columns found: {found}",
                source=source,
                column=canon,
            )
    frame = pd.DataFrame({canon: raw[name] for canon, name in names.items()}, index=raw.index)
    frame["_line"] = raw["_line"].to_numpy()
    return _Table(frame, names, source, "rating", None)


_READERS: dict[str, Callable[[Path, str, dict[str, str], bool | None], _Table]] = {
    "movielens": _read_movielens,
    "movielens-csv": _read_movielens_csv,
    "movielens-dat": _read_movielens_dat,
    "amazon": _read_amazon,
    "lastfm": _read_lastfm,
    "csv": _read_csv,
    "parquet": _read_parquet,
    "jsonl": _read_jsonl,
}


# ---------------------------------------------------------------------------------------------- checks
_Problem = tuple[np.ndarray, str, Callable[[int], str]]  # (bad-row mask, canonical column, message for a row)


def _clean(table: _Table, on_duplicate: str) -> tuple[pd.DataFrame, int]:
    """Coerce the canonical columns, raise on the first bad row in file order, drop zero counts, dedupe."""
    frame = table.frame
    if len(frame) == 0:
        raise DataError("no interactions: the file has no data rows", source=table.source)
    problems: list[_Problem] = []
    out = pd.DataFrame(index=frame.index)
    for col in ("user_id", "item_id"):
        out[col] = _check_ids(frame[col], col, table.text_ids, problems)
    out["rating"] = _check_rating(frame["rating"], table.kind, table.rating_scale, problems)
    if "timestamp" in frame.columns:
        out["timestamp"] = _check_timestamp(frame["timestamp"], problems)
    if "text" in frame.columns:
        out["text"] = frame["text"].fillna("").astype(str).to_numpy(dtype=object)
    if "has_image" in frame.columns:
        out["has_image"] = _check_flag(frame["has_image"], problems)
    out["_line"] = frame["_line"].to_numpy()

    if problems:
        first = [int(np.argmax(mask)) if mask.any() else len(frame) for mask, _, _ in problems]
        k = int(np.argmin(first))
        if first[k] < len(frame):
            _, col, describe = problems[k]
            pos = first[k]
            raise DataError(
                describe(pos),
                source=table.source,
                row=int(out["_line"].iat[pos]),
                column=table.names.get(col, col),
                unit=table.unit,
            )

    if table.kind == "count":
        zero = out["rating"].to_numpy() == 0
        if zero.any():
            line = int(out["_line"].to_numpy()[zero][0])
            n_zero = int(zero.sum())
            table.notes.append(
                f"{table.source}: dropped {n_zero} rows with a zero count (first at {table.unit} {line})"
            )
            out = out[~zero].reset_index(drop=True)
            if len(out) == 0:
                raise DataError("no interactions left after dropping zero counts", source=table.source)
    return _dedupe(out, table, on_duplicate)


def _text(s: pd.Series) -> pd.Series:
    """Text view of a column (str dtype, NaN kept) without a trip through Python objects when already text."""
    return s if isinstance(s.dtype, pd.StringDtype) else s.astype("str")


def _blank(s: pd.Series) -> np.ndarray:
    """Missing values: NaN / None, or text that is empty once stripped."""
    missing = s.isna().to_numpy()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        empty = _text(s).str.strip().eq("").to_numpy(dtype=bool, na_value=False)
        missing = missing | empty
    return missing


def _numbers(s: pd.Series) -> np.ndarray:
    """Float64 values of a column; NaN where a value is missing or not a number."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    text = _text(s).str.strip()
    try:  # fast path: Arrow parses a clean column in one cast
        return pa.array(text.array).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _int_ids(s: pd.Series) -> pd.Series:
    """Strip text ids (real files have stray spaces: "65  " in Last.fm); plain integers become int64.

    Integer ids let ``user_index(196)`` work; ids such as "007" stay text so that no two ids merge.
    """
    if not (len(s) and pd.api.types.is_string_dtype(s.dtype)):
        return s
    s = _text(s).str.strip()
    if not s.str.fullmatch(_INT_ID).fillna(False).all():
        return s
    return pd.Series(pa.array(s.array).cast(pa.int64()).to_numpy(), index=s.index)


def _check_ids(s: pd.Series, col: str, text_ids: bool, problems: list[_Problem]) -> pd.Series:
    missing = _blank(s)
    problems.append((missing, col, lambda pos: f"missing {col} (empty or NaN)"))
    if pd.api.types.infer_dtype(s, skipna=True).startswith("mixed"):  # JSON may hold lists or objects
        values = s.to_numpy(dtype=object)
        nested = s.map(lambda v: isinstance(v, list | dict | tuple | set)).to_numpy(dtype=bool)
        problems.append((nested, col, lambda pos: f"{col} {_py(values[pos])!r} is not a single value"))
    if text_ids and not missing.any():
        return _int_ids(s)
    return s


def _check_rating(
    s: pd.Series, kind: str, scale: tuple[float, float] | None, problems: list[_Problem]
) -> np.ndarray:
    noun = "count" if kind == "count" else "rating"
    missing = _blank(s)
    num = _numbers(s)
    values = s.array
    nonnum = np.isnan(num) & ~missing
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(num)
        negative = num < 0
        outside = (num < scale[0]) | (num > scale[1]) if scale is not None else np.zeros(len(s), dtype=bool)
    problems.append((missing, "rating", lambda pos: f"missing {noun} (empty or NaN)"))
    problems.append((nonnum, "rating", lambda pos: f"{noun} {_py(values[pos])!r} is not a number"))
    problems.append((infinite, "rating", lambda pos: f"{noun} {_py(values[pos])!r} is not finite"))
    problems.append((negative, "rating", lambda pos: f"negative {noun} {num[pos]:g}: {noun}s must be >= 0"))
    if scale is not None:
        lo, hi = scale
        problems.append(
            (
                outside,
                "rating",
                lambda pos: f"{noun} {num[pos]:g} is outside the rating scale [{lo:g}, {hi:g}]",
            )
        )
    return num


def _check_timestamp(s: pd.Series, problems: list[_Problem]) -> np.ndarray:
    """Unix seconds (int or float) or ISO-8601 strings -> int64 unix seconds."""
    missing = _blank(s)
    seconds = np.zeros(len(s), dtype=np.int64)
    bad = np.zeros(len(s), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        seconds[~missing] = _epoch_seconds(s[~missing])
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(num) & ~missing
        ok = ~missing & ~bad
        seconds[ok] = np.floor(num[ok]).astype(np.int64)
    else:
        text = _text(s).str.strip()
        num = _numbers(text)
        numeric = np.isfinite(num) & ~missing
        seconds[numeric] = np.floor(num[numeric]).astype(np.int64)
        dates = ~numeric & ~missing
        if dates.any():
            parsed = pd.to_datetime(text[dates], format="ISO8601", utc=True, errors="coerce")
            good = parsed.notna().to_numpy()
            idx = np.flatnonzero(dates)
            seconds[idx[good]] = _epoch_seconds(parsed[good])
            bad[idx[~good]] = True
    values = s.array
    problems.append((missing, "timestamp", lambda pos: "missing timestamp (empty or NaN)"))
    problems.append(
        (
            bad,
            "timestamp",
            lambda pos: f"timestamp {_py(values[pos])!r} is neither unix seconds nor an ISO-8601 date",
        )
    )
    return seconds


def _epoch_seconds(s: pd.Series) -> np.ndarray:
    dt = pd.to_datetime(s, utc=True)  # tz-naive values are taken as UTC
    return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _check_flag(s: pd.Series, problems: list[_Problem]) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return (s.fillna(0).to_numpy() != 0).astype(bool)
    text = _text(s).str.strip().str.lower().fillna("")
    flag = text.isin(_TRUE).to_numpy()
    bad = ~flag & ~text.isin(_FALSE).to_numpy()
    values = s.array
    problems.append((bad, "has_image", lambda pos: f"has_image {_py(values[pos])!r} is not true/false"))
    return flag


def _dedupe(out: pd.DataFrame, table: _Table, on_duplicate: str) -> tuple[pd.DataFrame, int]:
    """One row per (user, item): keep the last rating by timestamp, or sum counts (module docstring)."""
    users, n_users = pd.factorize(out["user_id"])[0], max(1, out["user_id"].nunique())
    key = pd.factorize(out["item_id"])[0].astype(np.int64) * n_users + users  # one int64 per pair
    repeat = pd.Series(key).duplicated(keep="first").to_numpy()
    n_dup = int(repeat.sum())
    if n_dup == 0:
        return out, 0
    pos = int(np.argmax(repeat))
    user, item = _py(out["user_id"].iat[pos]), _py(out["item_id"].iat[pos])
    lines = out["_line"].to_numpy()
    line, earlier, unit = int(lines[pos]), int(lines[np.argmax(key == key[pos])]), table.unit
    if on_duplicate == "error":
        raise DataError(
            f"duplicate (user_id, item_id) = ({user!r}, {item!r}), first seen at {unit} {earlier}; "
            f"{n_dup} duplicate rows in all (on_duplicate='aggregate' would merge them)",
            source=table.source,
            row=line,
            unit=unit,
        )
    if table.kind == "count":
        rule = "summed the counts"
        groups = out.groupby(key, sort=False)
        merged = out.assign(rating=groups["rating"].transform("sum"))
        if "timestamp" in out.columns:
            merged["timestamp"] = groups["timestamp"].transform("max")
        out = merged[~repeat]
    else:
        has_time = "timestamp" in out.columns
        rule = "kept the last rating by timestamp" if has_time else "kept the last rating in file order"
        rows = np.flatnonzero(pd.Series(key).isin(key[repeat]).to_numpy())  # the rows of repeated pairs
        sub = key[rows]
        order = np.lexsort((rows, out["timestamp"].to_numpy()[rows], sub) if has_time else (rows, sub))
        last = np.append(sub[order][1:] != sub[order][:-1], True)  # the last row of each pair's run
        keep = np.ones(len(out), dtype=bool)
        keep[rows] = False
        keep[rows[order[last]]] = True
        out = out[keep]
    table.notes.append(
        f"{table.source}: {n_dup} duplicate (user_id, item_id) rows; the first is {unit} {line} "
        f"(({user!r}, {item!r}), first seen at {unit} {earlier}); rule: {rule}"
    )
    return out.reset_index(drop=True), n_dup


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _py(value: object) -> object:
    """Plain Python scalar, so that messages read (1, 1), not (np.int64(1), np.int64(1))."""
    return value.item() if isinstance(value, np.generic) else value


def _check_scale(scale: tuple[float, float] | None) -> tuple[float, float] | None:
    if scale is None:
        return None
    try:
        lo, hi = (float(x) for x in scale)
    except (TypeError, ValueError):
        raise ConfigError(f"rating_scale must be a (low, high) pair of numbers, but got {scale=}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
        raise ConfigError(f"rating_scale must satisfy 0 <= low < high (finite), but got {scale=}")
    return (lo, hi)
