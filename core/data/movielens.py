"""Format ``movielens``: MovieLens-100K's ``u.data`` (``user \\t item \\t rating \\t unix_time``)."""

from __future__ import annotations

from pathlib import Path

from core.data.delimited import fixed_fields, read_delimited
from core.data.table import ReadOptions, Table
from core.data.titles import movielens_titles


def read_movielens(file: Path, source: str, options: ReadOptions) -> Table:
    """Titles with genres from ``u.item`` / ``u.genre`` beside it; rating scale (1, 5)."""
    raw = read_delimited(file, source, sep="\t", header=False, progress=options.progress)
    names = ["user_id", "item_id", "rating", "timestamp"]
    frame = fixed_fields(raw, names, source, "user, item, rating, unix time")
    titles = movielens_titles(file.parent / "u.item", file.parent / "u.genre")
    return Table(frame, {n: n for n in names}, source, "rating", (1.0, 5.0), titles, text_ids=True)
