"""Which of a file's columns is which canonical column: the ``columns=`` mapping, then common aliases; and the
command line's spelling of that mapping (``--columns user=User-ID,item=ISBN,rating=Book-Rating``)."""

from __future__ import annotations

import pandas as pd

from core.data.table import Table
from core.errors import ConfigError, DataError
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
#: The short names ``--columns`` takes besides the canonical ones.
SHORT_NAMES = {"user": "user_id", "item": "item_id", "time": "timestamp", "image": "has_image"}
#: How the missing-column messages of the generic formats say what to do about it.
COLUMNS_HINT = "name them with --columns user=<column>,item=<column>,rating=<column> (columns= in Python)"


def parse_columns(spec: str) -> dict[str, str]:
    """``--columns``: ``NAME=COLUMN`` pairs separated by commas -> ``columns=`` of :func:`core.data.load`.

    NAME is ``user``, ``item``, ``rating``, ``time``, ``text``, ``image`` or a canonical column name;
    COLUMN is the file's header name as written (it cannot hold a comma).
    """
    usage = "--columns takes NAME=COLUMN pairs, comma-separated (user=User-ID,item=ISBN,rating=Book-Rating)"
    mapping: dict[str, str] = {}
    for piece in spec.split(","):
        name, eq, column = (part.strip() for part in piece.partition("="))
        if not eq or not name:
            raise ConfigError(f"{usage}, but got {piece.strip()!r}")
        canon = SHORT_NAMES.get(name, name)
        if canon not in (*REQUIRED, *OPTIONAL):
            known = "user, item, rating, time, text, image"
            raise ConfigError(f"--columns: unknown name {name!r}; names are {known}")
        if not column:
            raise ConfigError(f"--columns: no column given for {name!r}")
        if canon in mapping:
            raise ConfigError(f"--columns: {name!r} is given twice")
        if column in mapping.values():
            raise ConfigError(f"--columns: column {column!r} is given for two names")
        mapping[canon] = column
    return mapping


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
                hint = f"; {COLUMNS_HINT}" if aliases is not None else ""
                raise DataError(
                    f"missing column {columns[canon]!r} (for {canon}); columns found: {found}{hint}",
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
            hint = f"; {COLUMNS_HINT}" if aliases is not None else ""
            raise DataError(
                f"missing required column {canon!r}{also}; columns found: {found}{hint}",
                source=source,
                column=canon,
            )
    frame = pd.DataFrame({canon: raw[name] for canon, name in names.items()}, index=raw.index)
    frame["_line"] = raw["_line"].to_numpy()
    return Table(frame, names, source, "rating", None)
