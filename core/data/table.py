"""What a format reader hands to the common checks (:class:`Table`), and the signature every reader has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.interactions import Kind


@dataclass
class Table:
    """Raw canonical columns and where each row came from, before validation."""

    frame: pd.DataFrame  # canonical columns, raw values, and "_line"
    names: dict[str, str]  # canonical column -> the file's own name for it, for messages
    source: str
    kind: Kind
    rating_scale: tuple[float, float] | None
    item_titles: dict[object, str] | None = None
    text_ids: bool = False  # ids were read as text: canonical integers become int64
    unit: str = "line"  # what "_line" counts: "line", or "record" for Parquet
    notes: list[str] = field(default_factory=list)  # warnings to emit once loading succeeds
    missing_ids_dropped: int = 0  # rows ``drop_missing_ids`` dropped


@dataclass(frozen=True)
class ReadOptions:
    """What the caller of :func:`core.data.load` says about reading a file: the generic formats' column
    mapping and field separator, and the progress bar."""

    columns: dict[str, str] = field(default_factory=dict)  # canonical column -> the file's column
    sep: str | None = None  # field separator of a ``csv`` file; None: from the extension, or sniffed
    progress: bool | None = None  # ``show_progress`` of :func:`core.data.load`


#: A format reader: (data file, source as given for messages, the caller's options).
Reader = Callable[[Path, str, ReadOptions], Table]
