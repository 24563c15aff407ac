"""Format ``parquet``: a generic table; rows are named by their 1-based record number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.data.columns import ALIASES, OPTIONAL, select
from core.data.files import reading
from core.data.table import ReadOptions, Table


def read_parquet(file: Path, source: str, options: ReadOptions) -> Table:
    with reading(source):
        raw = pd.read_parquet(file)
    raw = raw.reset_index(drop=True)
    raw["_line"] = np.arange(1, len(raw) + 1, dtype=np.int64)
    table = select(raw, options.columns, source, OPTIONAL, ALIASES)
    table.unit = "record"
    return table
