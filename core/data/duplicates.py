"""The duplicate rule: one row per (user, item) pair, so that later steps never see a pair twice.

``on_duplicate="aggregate"``: ratings keep the LAST interaction by timestamp (file order breaks ties, and
decides alone when there are no timestamps); counts are SUMMED (the row stays where the pair first occurs,
with the latest timestamp); a note for the warning names the first duplicate. ``"error"`` raises instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.table import Table
from core.data.values import py
from core.errors import DataError
from core.interactions import RATING_DTYPE, largest, overflows


def dedupe(out: pd.DataFrame, table: Table, on_duplicate: str) -> tuple[pd.DataFrame, int]:
    """One row per (user, item): keep the last rating by timestamp, or sum counts (module docstring)."""
    users, n_users = pd.factorize(out["user_id"])[0], max(1, out["user_id"].nunique())
    key = pd.factorize(out["item_id"])[0].astype(np.int64) * n_users + users  # one int64 per pair
    repeat = pd.Series(key).duplicated(keep="first").to_numpy()
    n_dup = int(repeat.sum())
    if n_dup == 0:
        return out, 0
    pos = int(np.argmax(repeat))
    user, item = py(out["user_id"].iat[pos]), py(out["item_id"].iat[pos])
    lines = out["_line"].to_numpy()
    line, earlier, unit = int(lines[pos]), int(lines[np.argmax(key == key[pos])]), table.unit
    if on_duplicate == "error":
        raise DataError(
            f"duplicate (user_id, item_id) = ({user!r}, {item!r}), first seen at {unit} {earlier}; "
            f"{n_dup} duplicate rows in all (on_duplicate='aggregate' would merge them)",
            source=table.source,
            row=line,
            unit=unit,
        )
    if table.kind == "count":
        rule = "summed the counts"
        groups = out.groupby(key, sort=False)
        merged = out.assign(rating=groups["rating"].transform("sum"))
        _check_sums(merged[~repeat], table)
        if "timestamp" in out.columns:
            merged["timestamp"] = groups["timestamp"].transform("max")
        out = merged[~repeat]
    else:
        has_time = "timestamp" in out.columns
        rule = "kept the last rating by timestamp" if has_time else "kept the last rating in file order"
        rows = np.flatnonzero(pd.Series(key).isin(key[repeat]).to_numpy())  # the rows of repeated pairs
        sub = key[rows]
        order = np.lexsort((rows, out["timestamp"].to_numpy()[rows], sub) if has_time else (rows, sub))
        last = np.append(sub[order][1:] != sub[order][:-1], True)  # the last row of each pair's run
        keep = np.ones(len(out), dtype=bool)
        keep[rows] = False
        keep[rows[order[last]]] = True
        out = out[keep]
    table.notes.append(
        f"{table.source}: {n_dup} duplicate (user_id, item_id) rows; the first is {unit} {line} "
        f"(({user!r}, {item!r}), first seen at {unit} {earlier}); rule: {rule}"
    )
    return out.reset_index(drop=True), n_dup


def _check_sums(first_rows: pd.DataFrame, table: Table) -> None:
    """Summed counts are stored as the counts are: a sum its dtype cannot hold names the pair's first row."""
    huge = overflows(first_rows["rating"].to_numpy(), RATING_DTYPE)
    if huge.any():
        pos = int(np.argmax(huge))
        user, item = (py(first_rows[c].iat[pos]) for c in ("user_id", "item_id"))
        name, total = np.dtype(RATING_DTYPE).name, first_rows["rating"].iat[pos]
        raise DataError(
            f"the counts of (user_id, item_id) = ({user!r}, {item!r}) sum to {total:g}, "
            f"too large for {name} (max {largest(RATING_DTYPE):.2g})",
            source=table.source,
            row=int(first_rows["_line"].iat[pos]),
            column=table.names.get("rating", "rating"),
            unit=table.unit,
        )
