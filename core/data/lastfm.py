"""Format ``lastfm``: hetrec's ``user_artists.dat`` (``userID \\t artistID \\t weight``), play counts."""

from __future__ import annotations

from pathlib import Path

from core.data.delimited import fixed_fields, read_delimited
from core.data.files import first_line
from core.data.table import ReadOptions, Table
from core.data.titles import lastfm_artists
from core.data.values import is_number


def read_lastfm(file: Path, source: str, options: ReadOptions) -> Table:
    """A header line is tolerated; ``kind="count"``; artist names from ``artists.dat`` beside it."""
    fields = first_line(file).strip().split("\t")
    header = len(fields) == 3 and not is_number(fields[2])  # "userID \t artistID \t weight"
    raw = read_delimited(file, source, sep="\t", header=False, skip=int(header), progress=options.progress)
    names = ["user_id", "item_id", "rating"]
    frame = fixed_fields(raw, names, source, "user, artist, play count")
    titles = lastfm_artists(file.parent / "artists.dat")
    labels = {"user_id": "userID", "item_id": "artistID", "rating": "weight"}
    return Table(frame, labels, source, "count", None, titles, text_ids=True)
