"""Format ``movielens-csv``: newer MovieLens sets' ``ratings.csv`` (``userId,movieId,rating,timestamp``)."""

from __future__ import annotations

from pathlib import Path

from core.data.columns import select
from core.data.delimited import read_delimited
from core.data.table import ReadOptions, Table
from core.data.titles import movies_csv_titles


def read_movielens_csv(file: Path, source: str, options: ReadOptions) -> Table:
    """Titles and genres from ``movies.csv`` beside it; the half-star rating scale (0.5, 5)."""
    raw = read_delimited(file, source, sep=",", header=True, progress=options.progress)
    table = select(
        raw, {"user_id": "userId", "item_id": "movieId", "rating": "rating"}, source, ("timestamp",)
    )
    table.text_ids = True
    table.rating_scale = (0.5, 5.0)
    table.item_titles = movies_csv_titles(file.parent / "movies.csv")
    return table
