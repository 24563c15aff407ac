"""Which of a file's columns is which canonical column: the ``columns=`` mapping, then common aliases."""

from __future__ import annotations

import pandas as pd

from core.data.table import Table
from core.errors import DataError
from core.interactions import CANONICAL_COLUMNS

REQUIRED = ("user_id", "item_id", "rating")
#: The canonical columns a generic table may have besides the required ones.
OPTIONAL = tuple(c for c in CANONICAL_COLUMNS if c not in REQUIRED)
#: Column names tried, in order, when ``columns`` does not map a canonical column (generic formats).
ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userId", "userID", "user", "customer_id", "reviewerID"),
    "item_id": ("item_id", "itemId", "itemID", "item", "movieId", "product_id", "productId", "asin"),
    "rating": ("rating", "score", "overall", "stars"),
    "timestamp": ("timestamp", "unixReviewTime", "time", "ts", "date"),
    "text": ("text", "reviewText", "review", "comment"),
    "has_image": ("has_image",),
}


def select(
    raw: pd.DataFrame,
    columns: dict[str, str],
    source: str,
    optional: tuple[str, ...],
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> Table:
    """Pick the canonical columns: mapped names must exist; unmapped ones are looked up by alias."""
    found = [c for c in raw.columns if c != "_line"]
    names: dict[str, str] = {}
    for canon in (*REQUIRED, *optional):
        if canon in columns:
            if columns[canon] not in found:
                raise DataError(
                    f"missing column {columns[canon]!r} (for {canon}); columns found: {found}",
                    source=source,
                    column=columns[canon],
                )
            names[canon] = columns[canon]
            continue
        tried = (aliases or {}).get(canon, (canon,))
        hit = next((a for a in tried if a in found), None)
        if hit is not None:
            names[canon] = hit
        elif canon in REQUIRED:
            also = f" (or {', '.join(repr(a) for a in tried if a != canon)})" if len(tried) > 1 else ""
            raise DataError(
                f"missing required column {canon!r}{also}; columns found: {found}",
                source=source,
                column=canon,
            )
    frame = pd.DataFrame({canon: raw[name] for canon, name in names.items()}, index=raw.index)
    frame["_line"] = raw["_line"].to_numpy()
    return Table(frame, names, source, "rating", None)
