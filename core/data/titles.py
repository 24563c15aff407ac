"""Item titles from the side files that ship beside a dataset's interactions, keyed like the item ids.

MovieLens titles carry their genres ("Toy Story (1995) | Animation|Children's|Comedy") so that text features
see the genres too; Last.fm's are artist names. A missing side file means no titles, not an error.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.files import reading
from core.data.values import int_ids
from core.errors import DataError

_ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def movielens_titles(item_file: Path, genre_file: Path) -> dict[object, str] | None:
    """u.item titles (Latin-1, ``|``-separated, 19 genre flags) with the genre names of u.genre appended."""
    if not item_file.is_file():
        return None
    genres = list(_ML_GENRES)
    if genre_file.is_file():
        with reading(str(genre_file)):
            g = pd.read_csv(genre_file, sep="|", header=None, dtype=str, encoding="latin-1")
        if g.shape[1] >= 2 and len(g):
            genres = g.sort_values(1, key=lambda s: pd.to_numeric(s, errors="coerce"))[0].tolist()
    with reading(str(item_file)):
        items = pd.read_csv(
            item_file, sep="|", header=None, dtype=str, encoding="latin-1", keep_default_na=False, quoting=3
        )
    if items.shape[1] < 2:
        raise DataError(f"expected '|'-separated fields, found {items.shape[1]}", source=str(item_file))
    flags = items.iloc[:, 5:].to_numpy() == "1"
    names = np.array([f"{g}|" for g in genres[: flags.shape[1]]], dtype=object)
    names = np.pad(names, (0, flags.shape[1] - len(names)), constant_values="")
    joined = pd.Series(np.where(flags, names, "").sum(axis=1) if flags.size else "", index=items.index)
    joined = joined.astype(str).str.rstrip("|")
    text = items[1].where(joined == "", items[1] + " | " + joined)
    return dict(zip(int_ids(items[0]), text, strict=True))


def movies_csv_titles(movies: Path) -> dict[object, str] | None:
    """movies.csv (``movieId,title,genres``) titles with their genres; None without the file or columns."""
    if not movies.is_file():
        return None
    with reading(str(movies)):
        m = pd.read_csv(movies, dtype=str, keep_default_na=False)
    if not {"movieId", "title"} <= set(m.columns):
        return None
    genres = m["genres"] if "genres" in m.columns else pd.Series("", index=m.index)
    genres = genres.where(genres != "(no genres listed)", "")
    text = m["title"].where(genres == "", m["title"] + " | " + genres)
    return dict(zip(int_ids(m["movieId"]), text, strict=True))


def movies_dat_titles(movies: Path) -> dict[object, str] | None:
    """movies.dat (``item::title::genres``) titles with their genres, as for ``movies.csv``; UTF-8 (ML-10M)
    or, failing that, Latin-1 (ML-1M)."""
    if not movies.is_file():
        return None
    with reading(str(movies)):
        data = movies.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        m = pd.read_csv(
            io.StringIO(text.replace("::", "\x1f")),
            sep="\x1f",
            header=None,
            names=["item", "title", "genres"],
            index_col=False,
            quoting=3,
            dtype=str,
            keep_default_na=False,
        )
    genres = m["genres"].fillna("").replace("(no genres listed)", "")
    text_ = m["title"].where(genres == "", m["title"] + " | " + genres)
    return dict(zip(int_ids(m["item"]), text_, strict=True))


def lastfm_artists(artists: Path) -> dict[object, str] | None:
    """artists.dat (tab-separated, ``id`` and ``name`` columns) names; None without the file or columns."""
    if not artists.is_file():
        return None
    with reading(str(artists)):
        a = pd.read_csv(artists, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    if not {"id", "name"} <= set(a.columns):
        return None
    return dict(zip(int_ids(a["id"]), a["name"], strict=True))
