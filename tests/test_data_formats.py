"""MovieLens-1M / -10M ``ratings.dat`` (``user::item::rating::time``) as they ship, and the byte progress bar.

The ``::`` reader parses chunks of ``core.data.movielens_dat._CHUNK_BYTES`` with pandas' C parser, numbers
first and, where a chunk is not plain numbers, every field as text; tests shrink the chunk size to cross chunk
borders.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.data.files
import core.data.movielens_dat
from core.data import FORMATS, detect_format, load
from core.errors import DataError
from core.interactions import Interactions

# The first lines of ML-1M's ratings.dat and movies.dat (Latin-1), with one accented title.
ML_1M_RATINGS = "1::1193::5::978300760\n1::661::3::978302109\n1::914::3::978301968\n2::1193::4::978298413\n"
ML_1M_MOVIES = (
    "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
    "914::My Fair Lady (1964)::Musical|Romance\n"
    "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    "3021::Funhouse, The (1981)::Horror\n"
    "2129::Saltmen of Tibet, The (Salzmänner von Tibet, Die) (1997)::Documentary\n"
)
# ML-10M: half stars, UTF-8 titles, "(no genres listed)".
ML_10M_RATINGS = "1::122::5::838985046\n1::185::4.5::838983525\n7::4638::0.5::1049764879\n"
ML_10M_MOVIES = (
    "122::Boomerang (1992)::Comedy|Romance\n"
    "185::Net, The (1995)::Action|Crime|Thriller\n"
    "4638::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::(no genres listed)\n"
)


def _ml_1m(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "ratings.dat").write_text(ML_1M_RATINGS)
    (folder / "movies.dat").write_bytes(ML_1M_MOVIES.encode("latin-1"))
    return folder


def _ml_10m(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "ratings.dat").write_text(ML_10M_RATINGS)
    (folder / "movies.dat").write_text(ML_10M_MOVIES, encoding="utf-8")
    return folder


def _rows(x: Interactions) -> list[list[object]]:
    return x.to_frame().values.tolist()


def _titles(x: Interactions) -> dict[object, str]:
    assert x.item_titles is not None
    return dict(zip(x.items, x.item_titles, strict=True))


# ---------------------------------------------------------------------------------------------- detection
def test_ratings_dat_is_detected_from_the_file_and_the_folder(tmp_path: Path) -> None:
    folder = _ml_1m(tmp_path / "ml-1m")
    assert "movielens-dat" in FORMATS
    assert detect_format(folder / "ratings.dat") == "movielens-dat"
    assert detect_format(folder) == "movielens-dat"
    assert load(folder).meta == {"format": "movielens-dat", "duplicates": 0, "dataset": "ml-1m"}


def test_detection_sniffs_the_first_line_not_the_name(tmp_path: Path) -> None:
    (tmp_path / "log.dat").write_text("\n3::7::4.5\n")  # 3 fields, after a blank line
    (tmp_path / "tags.dat").write_text("15::4973::excellent!::1215184630\n")  # ML-10M tags: not ratings
    (tmp_path / "plays.dat").write_text("1\t2\t3\n")
    assert detect_format(tmp_path / "log.dat") == "movielens-dat"
    for name in ("tags.dat", "plays.dat"):
        with pytest.raises(DataError, match="cannot tell the format"):
            detect_format(tmp_path / name)


def test_the_unknown_format_message_names_the_cli_option(tmp_path: Path) -> None:
    path = tmp_path / "log.xyz"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match=r"pass --format \(format= in Python\), one of movielens, ") as err:
        load(path)
    assert "movielens-dat" in str(err.value) and "log.xyz" in str(err.value)


# ---------------------------------------------------------------------------------------------- values
def test_ml_1m_values_and_latin_1_titles(tmp_path: Path) -> None:
    x = load(_ml_1m(tmp_path / "ml-1m") / "ratings.dat")
    assert _rows(x) == [
        [1, 1193, 5.0, 978300760],
        [1, 661, 3.0, 978302109],
        [1, 914, 3.0, 978301968],
        [2, 1193, 4.0, 978298413],
    ]
    assert x.users.dtype == np.int64 and x.items.dtype == np.int64
    assert x.kind == "rating" and x.rating_scale == (0.5, 5.0)
    assert x.line is not None and x.line.tolist() == [1, 2, 3, 4]
    assert _titles(x) == {
        1193: "One Flew Over the Cuckoo's Nest (1975) | Drama",
        661: "James and the Giant Peach (1996) | Animation|Children's|Musical",
        914: "My Fair Lady (1964) | Musical|Romance",
    }


def test_latin_1_title_decodes(tmp_path: Path) -> None:
    folder = _ml_1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_text("9::2129::2::978300000\n")
    assert _titles(load(folder)) == {
        2129: "Saltmen of Tibet, The (Salzmänner von Tibet, Die) (1997) | Documentary"
    }


def test_ml_10m_half_stars_and_utf_8_titles(tmp_path: Path) -> None:
    x = load(_ml_10m(tmp_path / "ml-10M100K"))
    assert _rows(x) == [[1, 122, 5.0, 838985046], [1, 185, 4.5, 838983525], [7, 4638, 0.5, 1049764879]]
    assert _titles(x) == {
        122: "Boomerang (1992) | Comedy|Romance",
        185: "Net, The (1995) | Action|Crime|Thriller",
        4638: "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    }


def test_without_movies_dat_there_are_no_titles(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text(ML_1M_RATINGS)
    assert load(tmp_path).item_titles is None


def test_three_fields_mean_no_timestamps(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::4\n2::10::3.5\n")
    x = load(tmp_path)
    assert x.timestamp is None and _rows(x) == [[1, 10, 4.0], [2, 10, 3.5]]


def test_gzipped_ratings_dat(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat.gz"
    path.write_bytes(gzip.compress(ML_10M_RATINGS.encode()))
    assert detect_format(path) == "movielens-dat"
    assert _rows(load(path))[1] == [1, 185, 4.5, 838983525]


def test_duplicates_keep_the_last_rating_by_time_then_file_order(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::5::1::30\n2::5::2::10\n1::5::3::20\n2::5::4::10\n3::6::5::1\n")
    with pytest.warns(
        UserWarning, match=r"2 duplicate .* the first is line 3 .*kept the last rating by timestamp"
    ):
        x = load(tmp_path)
    # (1, 5): line 1 has the latest time; (2, 5): a tie, so the later line 4 wins
    assert _rows(x) == [[1, 5, 1.0, 30], [2, 5, 4.0, 10], [3, 6, 5.0, 1]]
    assert x.line is not None and x.line.tolist() == [1, 4, 5]


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_rating_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1::5::0\n1::2::abc::3\n")
    with pytest.raises(DataError, match=r"rating 'abc' is not a number") as err:
        load(tmp_path)
    assert (err.value.source, err.value.row, err.value.column) == (str(tmp_path / "ratings.dat"), 2, "rating")
    assert str(err.value).startswith(f"{tmp_path / 'ratings.dat'}, line 2, column 'rating'")


@pytest.mark.parametrize(
    ("line", "message", "column"),
    [
        ("7::8::6::0", r"rating 6 is outside the rating scale \[0.5, 5\]", "rating"),
        ("7::::4::0", "missing item_id", "item_id"),
        ("7::8::4", "missing timestamp", "timestamp"),
        (
            "7::8::4::yesterday",
            "timestamp 'yesterday' is neither unix seconds nor an ISO-8601 date",
            "timestamp",
        ),
        (
            "7::8::4::0::9",
            r"expected 4 '::'-separated fields \(user, item, rating, unix time\), found 5",
            None,
        ),
    ],
)
@pytest.mark.parametrize("chunk", [1, 16, 1 << 20])  # one line a chunk, a few, all in one
def test_a_bad_line_in_a_later_chunk_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str, column: str | None, chunk: int
) -> None:
    monkeypatch.setattr(core.data.movielens_dat, "_CHUNK_BYTES", chunk)
    (tmp_path / "ratings.dat").write_text(ML_1M_RATINGS + ML_1M_RATINGS + line + "\n1::2::3::4\n")
    with pytest.raises(DataError, match=message) as err:
        load(tmp_path)
    assert (err.value.row, err.value.column) == (9, column)
    assert "ratings.dat, line 9" in str(err.value)


def test_a_first_line_of_another_shape_is_named(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("\n1\t2\t3\t4\n")
    with pytest.raises(DataError, match=r"expected 3 or 4 '::'-separated fields .*found 1") as err:
        load(path, format="movielens-dat")
    assert err.value.row == 2


def test_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        load(tmp_path)


# ---------------------------------------------------------------------------------------------- chunks
def _big_dat(n: int) -> str:
    rng = np.random.default_rng(7)
    users, items = rng.integers(1, 60, n), rng.integers(1, 400, n)
    stars, times = rng.integers(1, 11, n) / 2, rng.integers(900_000_000, 1_200_000_000, n)
    return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in zip(users, items, stars, times, strict=True))


@pytest.mark.parametrize(
    "extra", ["", "\n", "007::1::3::5\n", "1.0::1::3::5\n", " 4 ::1::3::5\n", "x::1::3::5\n"]
)
@pytest.mark.parametrize("chunk", [1, 37, 4096])
@pytest.mark.filterwarnings("ignore:.*duplicate")
def test_many_chunks_read_like_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, extra: str
) -> None:
    """Numbers path (plain files) and text path (an id the numbers path could misread, a blank line) alike."""
    text = _big_dat(300)
    cut = text.index("\n", 2000) + 1
    (tmp_path / "ratings.dat").write_text(text[:cut] + extra + text[cut:].replace("\n", "\r\n"))
    whole = load(tmp_path)
    monkeypatch.setattr(core.data.movielens_dat, "_CHUNK_BYTES", chunk)
    parts = load(tmp_path)
    pd.testing.assert_frame_equal(parts.to_frame(), whole.to_frame())
    assert whole.line is not None and parts.line is not None
    np.testing.assert_array_equal(parts.line, whole.line)


@pytest.mark.parametrize(
    "text",
    [
        ML_10M_RATINGS,
        "\ufeff" + ML_1M_RATINGS,  # byte-order mark
        "1::1::5::0\n\n2::1::4::0\n",  # blank line
        "007::1::5::0\n7::1::4::0\n",  # ids with leading zeros stay text: two users
        "1.0::1::5::0\n1::2::4::0\n",
        "-0::1::5::0\n-12::3::4.0::7.9\n",
        "1::1::3.::0\n2::1::.5::0\n",
        "123456789012345678::1::5::0\n1234567890123456789::1::5::0\n",  # 19 digits: beyond int64-safe ids
        "1::1::5::0\r\n2::2::4::1\r\n",
    ],
)
def test_ratings_dat_reads_like_the_same_lines_in_u_data(tmp_path: Path, text: str) -> None:
    """The outside reference: the tab-separated MovieLens-100K reader, all fields as text."""
    (tmp_path / "ratings.dat").write_text(text)
    (tmp_path / "u.data").write_text(text.replace("::", "\t"))
    dat = load(tmp_path / "ratings.dat")
    ref = load(tmp_path / "u.data", rating_scale=(0.5, 5.0))
    pd.testing.assert_frame_equal(dat.to_frame(), ref.to_frame())
    assert dat.line is not None and ref.line is not None
    assert dat.line.tolist() == ref.line.tolist()


# ---------------------------------------------------------------------------------------------- progress
@pytest.mark.parametrize("name", ["ratings.dat", "u.data"])
def test_a_progress_bar_for_big_files_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    sep = "::" if name == "ratings.dat" else "\t"
    (tmp_path / name).write_text(ML_1M_RATINGS.replace("::", sep))
    load(tmp_path / name)
    assert capsys.readouterr().err == ""  # small file
    monkeypatch.setattr(core.data.files, "_PROGRESS_BYTES", 10)
    load(tmp_path / name)
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    load(tmp_path / name, show_progress=False)
    assert capsys.readouterr().err == ""
    load(tmp_path / name, show_progress=True)
    assert f"reading {name}" in capsys.readouterr().err


def test_a_gzipped_csv_still_loads_through_the_counted_handle(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(b"user_id,item_id,rating\na,x,4\nb,x,2\n"))
    assert _rows(load(path, show_progress=True)) == [["a", "x", 4.0], ["b", "x", 2.0]]


def test_show_progress_must_be_a_bool_or_none(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text(ML_1M_RATINGS)
    with pytest.raises(ValueError, match="show_progress must be None, True or False"):
        load(tmp_path, show_progress="yes")  # type: ignore[arg-type]
