"""JSON lines (gzip or not): the shared reader, and the generic ``jsonl`` format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.columns import ALIASES, OPTIONAL, select
from core.data.files import open_text, reading
from core.data.table import ReadOptions, Table
from core.errors import DataError


def read_json_lines(file: Path, source: str) -> pd.DataFrame:
    """One JSON object per line (gzip or not); an unparseable line is reported by its number."""
    with reading(source), open_text(file) as fh:
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
        records = _records_line_by_line(body, numbers, source)
    raw = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    raw["_line"] = numbers
    return raw


def _records_line_by_line(body: list[str], numbers: np.ndarray, source: str) -> list[dict[str, object]]:
    """Parse each line on its own, raising on the first that is not a JSON object."""
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
    return records


def read_jsonl(file: Path, source: str, options: ReadOptions) -> Table:
    """Format ``jsonl``: one record per line, columns by alias."""
    raw = read_json_lines(file, source)
    return select(raw, options.columns, source, OPTIONAL, ALIASES)
