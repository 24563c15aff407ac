"""The one entry point, :func:`load`: checks the arguments, finds the reader, validates and dedupes its rows.

See the :mod:`core.data` docstring for the formats and the rules.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from core.data.amazon import read_amazon
from core.data.delimited import parse_sep, read_csv
from core.data.detect import FORMATS, GENERIC, locate
from core.data.duplicates import dedupe
from core.data.jsonl import read_jsonl
from core.data.lastfm import read_lastfm
from core.data.movielens import read_movielens
from core.data.movielens_csv import read_movielens_csv
from core.data.movielens_dat import read_movielens_dat
from core.data.parquet import read_parquet
from core.data.table import Reader, ReadOptions
from core.data.validate import clean
from core.errors import ConfigError
from core.interactions import CANONICAL_COLUMNS, Interactions, Kind

_READERS: dict[str, Reader] = {
    "movielens": read_movielens,
    "movielens-csv": read_movielens_csv,
    "movielens-dat": read_movielens_dat,
    "amazon": read_amazon,
    "lastfm": read_lastfm,
    "csv": read_csv,
    "parquet": read_parquet,
    "jsonl": read_jsonl,
}


def load(
    path: str | Path,
    *,
    format: str | None = None,
    columns: dict[str, str] | None = None,
    rating_scale: tuple[float, float] | None = None,
    kind: Kind | None = None,
    on_duplicate: Literal["aggregate", "error"] = "aggregate",
    show_progress: bool | None = None,
    sep: str | None = None,
    drop_missing_ids: bool = False,
) -> Interactions:
    """Read an interaction file (or a folder holding a known one) into a validated :class:`Interactions`.

    ``format`` overrides detection; ``rating_scale`` and ``kind`` override the format's defaults (``kind``
    is "count" for lastfm, "rating" otherwise). ``show_progress``: a byte progress bar on stderr for files
    over 50 MB; None shows it where stderr is a terminal, False never, True always. ``sep``: the field
    separator of a ``csv`` file (default: tab for ``.tsv``, else sniffed from the header line).
    ``drop_missing_ids``: rows without a user or item id are dropped (``meta["missing_ids_dropped"]`` counts
    them, a warning names the first) instead of failing the file. See the :mod:`core.data` docstring for
    formats and rules.
    """
    _check_arguments(format, on_duplicate, kind, show_progress)
    scale = _check_scale(rating_scale)
    fmt, file = locate(path, format)
    _check_columns(columns, fmt)
    sep = _check_sep(sep, fmt)

    source = str(file) if Path(path).is_dir() else str(path)  # the path as given, or the file inside it
    table = _READERS[fmt](file, source, ReadOptions(columns or {}, sep, show_progress))
    if kind is not None:
        table.kind = kind
    if scale is not None:
        table.rating_scale = scale
    frame, n_dup = dedupe(clean(table, drop_missing_ids), table, on_duplicate)
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
    meta: dict[str, object] = {"format": fmt, "duplicates": n_dup, "dataset": dataset_name(file, fmt)}
    if drop_missing_ids:  # absent otherwise, so that the meta of data read without it stays as it was
        meta["missing_ids_dropped"] = table.missing_ids_dropped
    return replace(out, meta=meta)


def dataset_name(file: str | Path, fmt: str) -> str:
    """A short name for the data behind ``file``: the folder of a known dataset's file (``ml-100k`` for
    ``ml-100k/u.data``, ``amazon-beauty`` for its review dump), else the file name without suffixes."""
    p = Path(file).resolve()
    if fmt in GENERIC:
        return p.name.split(".")[0] or p.name
    return p.parent.name or p.name.split(".")[0]


def _check_arguments(
    format: str | None, on_duplicate: str, kind: str | None, show_progress: bool | None
) -> None:
    if format is not None and format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if on_duplicate not in ("aggregate", "error"):
        raise ConfigError(f"on_duplicate must be 'aggregate' or 'error', but got {on_duplicate=}")
    if kind is not None and kind not in ("rating", "count"):
        raise ConfigError(f"kind must be 'rating' or 'count', but got {kind=}")
    if show_progress not in (None, True, False):
        raise ConfigError(f"show_progress must be None, True or False, but got {show_progress=}")


def _check_columns(columns: dict[str, str] | None, fmt: str) -> None:
    if columns is None:
        return
    if fmt not in GENERIC:
        raise ConfigError(f"columns= (--columns) applies to the generic formats {GENERIC}, not to {fmt!r}")
    unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
    if unknown:
        raise ConfigError(f"columns= keys must be canonical names {CANONICAL_COLUMNS}, but got {unknown}")


def _check_sep(sep: str | None, fmt: str) -> str | None:
    if sep is None:
        return None
    if fmt != "csv":
        raise ConfigError(f"--sep (sep=) applies to the delimited format 'csv', not to {fmt!r}")
    return parse_sep(sep)


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
