"""Reading single values out of raw columns: text views, blanks, numbers, integer ids, message-ready scalars.

Shared by the readers (title side files key their titles by :func:`int_ids`, as the interactions are) and the
validation, so that an id or a number is read one way everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

_INT_ID = r"-?(?:0|[1-9][0-9]{0,17})"  # ids that survive a round trip through int64 unchanged
#: Id values that mean "no id": what R, pandas, SQL and Python write for a missing value (case as written).
NA_IDS = ("NA", "N/A", "NaN", "nan", "NULL", "null", "None")


def as_text(s: pd.Series) -> pd.Series:
    """Text view of a column (str dtype, NaN kept) without a trip through Python objects when already text."""
    return s if isinstance(s.dtype, pd.StringDtype) else s.astype("str")


def blank(s: pd.Series) -> np.ndarray:
    """Missing values: NaN / None, or text that is empty once stripped."""
    missing = s.isna().to_numpy()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        empty = as_text(s).str.strip().eq("").to_numpy(dtype=bool, na_value=False)
        missing = missing | empty
    return missing


def missing_ids(s: pd.Series) -> np.ndarray:
    """Ids that are not there: :func:`blank`, or text that is one of :data:`NA_IDS` once stripped."""
    missing = s.isna().to_numpy()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        text = as_text(s).str.strip()
        missing = missing | (text.eq("") | text.isin(NA_IDS)).to_numpy(dtype=bool, na_value=False)
    return missing


def unquote(s: pd.Series) -> pd.Series:
    """Text ids without surrounding spaces and quotes. A field quoted twice over (three quotes each side in
    the file) parses to ``"034545104X"``: its id is ``034545104X``. Only matching quotes go: ``"a"b"`` is
    ``a"b``."""
    if not (len(s) and pd.api.types.is_string_dtype(s.dtype)):
        return s
    text = as_text(s).str.strip()
    if not text.str.startswith('"').any():
        return text
    return text.str.replace(r'^("+)(.*)\1$', r"\2", regex=True).str.strip()


def numbers(s: pd.Series) -> np.ndarray:
    """Float64 values of a column; NaN where a value is missing or not a number."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    stripped = as_text(s).str.strip()
    try:  # fast path: Arrow parses a clean column in one cast
        return pa.array(stripped.array).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def int_ids(s: pd.Series) -> pd.Series:
    """Strip text ids (real files have stray spaces: "65  " in Last.fm); plain integers become int64.

    Integer ids let ``user_index(196)`` work; ids such as "007" stay text so that no two ids merge.
    """
    if not (len(s) and pd.api.types.is_string_dtype(s.dtype)):
        return s
    s = as_text(s).str.strip()
    if not s.str.fullmatch(_INT_ID).fillna(False).all():
        return s
    return pd.Series(pa.array(s.array).cast(pa.int64()).to_numpy(), index=s.index)


def is_number(field: str) -> bool:
    """Whether one field of a first line reads as a number (format detection, Last.fm's header)."""
    try:
        float(field)
    except ValueError:
        return False
    return True


def py(value: object) -> object:
    """Plain Python scalar, so that messages read (1, 1), not (np.int64(1), np.int64(1))."""
    return value.item() if isinstance(value, np.generic) else value
