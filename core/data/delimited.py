"""Delimited text (comma, semicolon, tab or pipe; gzip or not): the shared reader, and the ``csv`` format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.common import infer_compression

from core.data.columns import ALIASES, OPTIONAL, select
from core.data.files import first_line, open_counted, reading, strip_gz
from core.data.table import ReadOptions, Table
from core.errors import ConfigError, DataError

#: Field separators sniffed from a ``csv`` file's header line, in the order that breaks ties.
SNIFFED = (",", ";", "\t", "|")


def read_delimited(
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
    with reading(source), open_counted(file, progress) as fh:
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


def fixed_fields(raw: pd.DataFrame, names: list[str], source: str, what: str) -> pd.DataFrame:
    """Name the columns of a header-less file, insisting on the number of fields its format has."""
    n = raw.shape[1] - 1
    if n != len(names):
        raise DataError(
            f"expected {len(names)} tab-separated fields ({what}), found {n}",
            source=source,
            row=int(raw["_line"].iat[0]) if len(raw) else None,
        )
    return raw.set_axis([*names, "_line"], axis=1)


def read_csv(file: Path, source: str, options: ReadOptions) -> Table:
    """Format ``csv``: a header line, columns by alias; fields separated by ``sep``, else by tab for
    ``.tsv`` / ``.tab``, else by whichever of ``,`` ``;`` tab ``|`` the header line holds most of."""
    sep = options.sep
    if sep is None:
        tabs = strip_gz(file.name).lower().endswith((".tsv", ".tab"))
        sep = "\t" if tabs else sniff_sep(first_line(file))
    raw = read_delimited(file, source, sep=sep, header=True, progress=options.progress)
    table = select(raw, options.columns, source, OPTIONAL, ALIASES)
    table.text_ids = True
    return table


def parse_sep(text: str) -> str:
    """``--sep`` as typed: one character, or ``tab`` / ``\\t`` for a tab (a shell passes ``'\\t'`` as two)."""
    sep = "\t" if text in ("tab", "\\t") else text
    if len(sep) != 1 or sep in '"\r\n':
        raise ConfigError(
            f"--sep (sep=) must be one character or 'tab', not a quote or a line break, but got {text!r}"
        )
    return sep


def sniff_sep(header: str) -> str:
    """The separator of :data:`SNIFFED` that occurs most often in ``header`` outside quoted names (ties: the
    first in :data:`SNIFFED`); "," when none occurs, so a one-column file reads as before."""
    bare = re.sub(r'"[^"]*"', "", header)
    counts = [bare.count(c) for c in SNIFFED]
    best = counts.index(max(counts))
    return SNIFFED[best] if counts[best] else ","
