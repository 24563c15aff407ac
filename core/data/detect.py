"""Which format a path holds, and which file inside a folder: by file name, extension, then first line."""

from __future__ import annotations

import json
from pathlib import Path

from core.data.files import first_line, strip_gz
from core.data.values import is_number
from core.errors import DataError

#: Names ``format=`` accepts.
FORMATS = ("movielens", "movielens-csv", "movielens-dat", "amazon", "lastfm", "csv", "parquet", "jsonl")
#: Formats of generic tables (the ones ``columns=`` applies to; always a file, never a folder).
GENERIC = ("csv", "parquet", "jsonl")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
#: The data file a folder of each dataset holds.
_KNOWN_FILES = {
    "movielens": "u.data",
    "movielens-csv": "ratings.csv",
    "movielens-dat": "ratings.dat",
    "lastfm": "user_artists.dat",
}


def detect_format(path: str | Path) -> str:
    """The format name :func:`core.data.load` would use for ``path`` (a file or a folder holding a known
    file)."""
    return locate(path, None)[0]


def locate(path: str | Path, fmt: str | None) -> tuple[str, Path]:
    """Format and data file for a path: by file name, then extension; a folder by the known files inside."""
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", source=str(path))
    if p.is_dir():
        return _locate_in_folder(p, fmt)
    return (fmt or _detect_file(p)), p


def _locate_in_folder(folder: Path, fmt: str | None) -> tuple[str, Path]:
    if fmt in GENERIC:
        raise DataError(f"format {fmt!r} needs a file, not a folder", source=str(folder))
    for name, file_name in _KNOWN_FILES.items():
        if fmt in (None, name) and (folder / file_name).is_file():
            return name, folder / file_name
    if fmt in (None, "amazon"):
        for file in sorted(folder.iterdir()):
            if file.is_file() and strip_gz(file.name).endswith(_JSON_SUFFIXES) and _is_amazon(file):
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
        header = first_line(file).split(",")
        return "movielens-csv" if {"userId", "movieId"} <= {h.strip() for h in header} else "csv"
    stem = strip_gz(name).lower()
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


def _is_amazon(file: Path) -> bool:
    """Amazon review dumps are JSON lines whose records carry ``reviewerID``."""
    try:
        record = json.loads(first_line(file))
    except ValueError:
        return False
    return isinstance(record, dict) and "reviewerID" in record


def _is_double_colon(file: Path) -> bool:
    """MovieLens-1M / -10M ``ratings.dat``: the first line is 3 or 4 numbers joined by "::"."""
    fields = first_line(file).strip().split("::")
    return len(fields) in (3, 4) and all(is_number(f) for f in fields)
