"""Format ``amazon``: Amazon review dumps, JSON lines (``reviewerID``, ``asin``, ``overall``, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.data.columns import select
from core.data.jsonl import read_json_lines
from core.data.table import ReadOptions, Table


def read_amazon(file: Path, source: str, options: ReadOptions) -> Table:
    """Text is "summary. reviewText"; ``has_image`` where ``image`` is a non-empty list; scale (1, 5)."""
    raw = read_json_lines(file, source)
    mapping = {"user_id": "reviewerID", "item_id": "asin", "rating": "overall", "timestamp": "unixReviewTime"}
    table = select(raw, mapping, source, ("timestamp",))
    review = raw["reviewText"] if "reviewText" in raw.columns else pd.Series("", index=raw.index)
    summary = raw["summary"] if "summary" in raw.columns else pd.Series("", index=raw.index)
    review = review.fillna("").astype(str).str.strip()
    summary = summary.fillna("").astype(str).str.strip()
    joiner = pd.Series(". ", index=raw.index).where(~summary.str.contains(r"[.!?]$", regex=True), " ")
    text = (summary + joiner + review).where(summary != "", review).where(review != "", summary)
    table.frame["text"] = text.to_numpy(dtype=object)
    table.names["text"] = "reviewText"
    image = raw["image"] if "image" in raw.columns else pd.Series(np.nan, index=raw.index, dtype=object)
    table.frame["has_image"] = image.astype(object).str.len().fillna(0).gt(0).to_numpy()
    table.rating_scale = (1.0, 5.0)
    return table
