"""Delimited text (tab- or comma-separated, gzip or not): the shared reader, and the ``csv`` format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.common import infer_compression

from core.data.columns import ALIASES, OPTIONAL, select
from core.data.files import open_counted, reading, strip_gz
from core.data.table import Table
from core.errors import DataError


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


def read_csv(file: Path, source: str, columns: dict[str, str], progress: bool | None) -> Table:
    """Format ``csv``: a header line, comma-separated (tab for ``.tsv`` / ``.tab``), columns by alias."""
    sep = "\t" if strip_gz(file.name).lower().endswith((".tsv", ".tab")) else ","
    raw = read_delimited(file, source, sep=sep, header=True, progress=progress)
    table = select(raw, columns, source, OPTIONAL, ALIASES)
    table.text_ids = True
    return table
