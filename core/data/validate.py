"""The common checks every format's rows go through, with errors that name the file, the line and the column.

Each check records its bad rows as a mask; :func:`clean` then raises on the first bad row in file order, so
the message names the earliest problem whatever column it is in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from core.data.table import Table
from core.data.values import as_text, blank, int_ids, missing_ids, numbers, py, unquote
from core.errors import DataError
from core.interactions import RATING_DTYPE, TIME_DTYPE, largest, overflows, rounds_to_zero

_Problem = tuple[np.ndarray, str, Callable[[int], str]]  # (bad-row mask, canonical column, message for a row)
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})
_IDS = ("user_id", "item_id")


def clean(table: Table, drop_missing_ids: bool = False) -> pd.DataFrame:
    """Coerce the canonical columns, raise on the first bad row in file order, drop zero counts (and, when
    asked, rows without a user or item id)."""
    if len(table.frame) == 0:
        raise DataError("no interactions: the file has no data rows", source=table.source)
    if table.text_ids:  # a delimited file's ids: quotes and spaces around them are not part of them
        table.frame = table.frame.assign(**{col: unquote(table.frame[col]) for col in _IDS})
    if drop_missing_ids:
        _drop_missing_ids(table)
    frame = table.frame
    problems: list[_Problem] = []
    out = pd.DataFrame(index=frame.index)
    for col in _IDS:
        out[col] = _check_ids(frame[col], col, table.text_ids, problems)
    out["rating"] = _check_rating(frame["rating"], table.kind, table.rating_scale, problems)
    if "timestamp" in frame.columns:
        out["timestamp"] = _check_timestamp(frame["timestamp"], problems)
    if "text" in frame.columns:
        out["text"] = frame["text"].fillna("").astype(str).to_numpy(dtype=object)
    if "has_image" in frame.columns:
        out["has_image"] = _check_flag(frame["has_image"], problems)
    out["_line"] = frame["_line"].to_numpy()
    _raise_first(problems, out, table)
    if table.kind == "count":
        out = _drop_zero_counts(out, table)
    return out


def _raise_first(problems: list[_Problem], out: pd.DataFrame, table: Table) -> None:
    """Raise DataError for the earliest bad row of all problems (ties: the problem recorded first)."""
    if not problems:
        return
    first = [int(np.argmax(mask)) if mask.any() else len(out) for mask, _, _ in problems]
    k = int(np.argmin(first))
    if first[k] < len(out):
        _, col, describe = problems[k]
        pos = first[k]
        raise DataError(
            describe(pos),
            source=table.source,
            row=int(out["_line"].iat[pos]),
            column=table.names.get(col, col),
            unit=table.unit,
        )


def _drop_zero_counts(out: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Zero counts carry no signal: drop them, with a note for the warning."""
    zero = out["rating"].to_numpy() == 0
    if not zero.any():
        return out
    line = int(out["_line"].to_numpy()[zero][0])
    n_zero = int(zero.sum())
    table.notes.append(
        f"{table.source}: dropped {n_zero} rows with a zero count (first at {table.unit} {line})"
    )
    out = out[~zero].reset_index(drop=True)
    if len(out) == 0:
        raise DataError("no interactions left after dropping zero counts", source=table.source)
    return out


def _drop_missing_ids(table: Table) -> None:
    """``drop_missing_ids``: rows without a user or an item id go (counted, with a note for the warning)
    before any other check, so that nothing else in them can fail the file."""
    frame = table.frame
    gone = missing_ids(frame["user_id"]) | missing_ids(frame["item_id"])
    table.missing_ids_dropped = int(gone.sum())
    if not gone.any():
        return
    line = int(frame["_line"].to_numpy()[gone][0])
    table.notes.append(
        f"{table.source}: dropped {table.missing_ids_dropped} rows with a missing user_id or item_id "
        f"(first at {table.unit} {line})"
    )
    table.frame = frame[~gone].reset_index(drop=True)
    if len(table.frame) == 0:
        raise DataError("no interactions left after dropping rows with missing ids", source=table.source)


def _check_ids(s: pd.Series, col: str, text_ids: bool, problems: list[_Problem]) -> pd.Series:
    missing = missing_ids(s)
    raw = s.array

    def what(pos: int) -> str:
        value = raw[pos]
        shown = "empty" if pd.isna(value) or not str(value).strip() else repr(str(value).strip())
        return (
            f"missing {col} ({shown}); --drop-missing-ids (drop_missing_ids=True in Python) drops such rows"
        )

    problems.append((missing, col, what))
    if pd.api.types.infer_dtype(s, skipna=True).startswith("mixed"):  # JSON may hold lists or objects
        values = s.to_numpy(dtype=object)
        nested = s.map(lambda v: isinstance(v, list | dict | tuple | set)).to_numpy(dtype=bool)
        problems.append((nested, col, lambda pos: f"{col} {py(values[pos])!r} is not a single value"))
    if text_ids and not missing.any():
        return int_ids(s)
    return s


def _check_rating(
    s: pd.Series, kind: str, scale: tuple[float, float] | None, problems: list[_Problem]
) -> np.ndarray:
    noun = "count" if kind == "count" else "rating"
    missing = blank(s)
    num = numbers(s)
    values = s.array
    nonnum = np.isnan(num) & ~missing
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(num)
        negative = num < 0
        outside = (num < scale[0]) | (num > scale[1]) if scale is not None else np.zeros(len(s), dtype=bool)
    problems.append((missing, "rating", lambda pos: f"missing {noun} (empty or NaN)"))
    problems.append((nonnum, "rating", lambda pos: f"{noun} {py(values[pos])!r} is not a number"))
    problems.append((infinite, "rating", lambda pos: f"{noun} {py(values[pos])!r} is not finite"))
    problems.append((negative, "rating", lambda pos: f"negative {noun} {num[pos]:g}: {noun}s must be >= 0"))
    too_large = overflows(num, RATING_DTYPE)
    problems.append((too_large, "rating", lambda pos: _unstorable(noun, values[pos], num[pos], RATING_DTYPE)))
    to_zero = rounds_to_zero(num, RATING_DTYPE)
    name = np.dtype(RATING_DTYPE).name
    problems.append(
        (to_zero, "rating", lambda pos: f"{noun} {py(values[pos])!r} is too small for {name}: it would be 0")
    )
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
    missing = blank(s)
    seconds = np.zeros(len(s), dtype=np.int64)
    bad = np.zeros(len(s), dtype=bool)
    num = np.full(len(s), np.nan)
    huge = np.zeros(len(s), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        seconds[~missing] = _epoch_seconds(s[~missing])
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = s.to_numpy(dtype=np.float64, na_value=np.nan)
        huge = overflows(num, TIME_DTYPE)
        bad = ~np.isfinite(num) & ~missing
        ok = ~missing & ~bad & ~huge
        seconds[ok] = np.floor(num[ok]).astype(np.int64)
    else:
        text = as_text(s).str.strip()
        num = numbers(text)
        huge = overflows(num, TIME_DTYPE)
        numeric = np.isfinite(num) & ~missing
        seconds[numeric & ~huge] = np.floor(num[numeric & ~huge]).astype(np.int64)
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
            lambda pos: f"timestamp {py(values[pos])!r} is neither unix seconds nor an ISO-8601 date",
        )
    )
    problems.append(
        (huge, "timestamp", lambda pos: _unstorable("timestamp", values[pos], num[pos], TIME_DTYPE))
    )
    return seconds


def _unstorable(noun: str, value: object, number: float, dtype: type[np.floating] | type[np.integer]) -> str:
    """The message for a value its stored dtype cannot hold: "rating '1e308' is too large for float32 (max
    3.4e+38)"."""
    name = np.dtype(dtype).name
    if number < 0:
        return f"{noun} {py(value)!r} is too small for {name} (min {-largest(dtype):.2g})"
    return f"{noun} {py(value)!r} is too large for {name} (max {largest(dtype):.2g})"


def _epoch_seconds(s: pd.Series) -> np.ndarray:
    dt = pd.to_datetime(s, utc=True)  # tz-naive values are taken as UTC
    return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _check_flag(s: pd.Series, problems: list[_Problem]) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return (s.fillna(0).to_numpy() != 0).astype(bool)
    text = as_text(s).str.strip().str.lower().fillna("")
    flag = text.isin(_TRUE).to_numpy()
    bad = ~flag & ~text.isin(_FALSE).to_numpy()
    values = s.array
    problems.append((bad, "has_image", lambda pos: f"has_image {py(values[pos])!r} is not true/false"))
    return flag
