"""Loaders on the real datasets (counts from ../shared/data/README.md) and generic-table round trips."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data import FORMATS, detect_format, load


# ------------------------------------------------------------------------------------------ MovieLens 100K
def test_movielens_100k_counts_and_metadata(data_dir: Path) -> None:
    x = load(data_dir / "ml-100k")
    assert (len(x), x.n_users, x.n_items) == (100_000, 943, 1_682)
    assert x.kind == "rating"
    assert x.rating_scale == (1.0, 5.0)
    assert set(np.unique(x.rating)) == {1, 2, 3, 4, 5}
    assert x.source == str(data_dir / "ml-100k" / "u.data")
    assert x.meta == {"format": "movielens", "duplicates": 0, "dataset": "ml-100k"}
    # file order kept: the first line of u.data is "196 242 3 881250949"
    first = x.to_frame().iloc[0]
    assert (first.user_id, first.item_id, first.rating, first.timestamp) == (196, 242, 3.0, 881250949)
    assert x.users.dtype == np.int64 and x.items.dtype == np.int64


def test_movielens_titles_carry_genres(data_dir: Path) -> None:
    x = load(data_dir / "ml-100k" / "u.data")
    assert x.item_titles is not None
    titles = dict(zip(x.items, x.item_titles, strict=True))
    assert titles[1] == "Toy Story (1995) | Animation|Children's|Comedy"
    assert titles[2] == "GoldenEye (1995) | Action|Adventure|Thriller"
    assert all(titles.values())


def test_movielens_source_is_the_path_as_given(data_dir: Path) -> None:
    given = str(data_dir / "ml-100k" / "u.data")
    assert load(given).source == given


# ---------------------------------------------------------------------------------------------- Last.fm
def test_lastfm_counts_kind_and_artist_names(data_dir: Path) -> None:
    x = load(data_dir / "lastfm-2k")
    assert (len(x), x.n_users, x.n_items) == (92_834, 1_892, 17_632)
    assert x.kind == "count"
    assert x.rating_scale is None
    assert x.rating.min() >= 1
    first = x.to_frame().iloc[0]  # line 1: "2 \t 51 \t 13883"
    assert (first.user_id, first.item_id, first.rating) == (2, 51, 13883.0)
    assert x.item_titles is not None
    titles = dict(zip(x.items, x.item_titles, strict=True))
    assert titles[51] == "Duran Duran"
    assert np.count_nonzero(x.item_titles == "") == 0


def test_lastfm_tolerates_a_header_line(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / "lastfm-2k" / "user_artists.dat").read_text().splitlines()[:50]
    (tmp_path / "user_artists.dat").write_text("userID\tartistID\tweight\n" + "\n".join(lines) + "\n")
    with_header = load(tmp_path)
    (tmp_path / "user_artists.dat").write_text("\n".join(lines) + "\n")
    without = load(tmp_path)
    pd.testing.assert_frame_equal(with_header.to_frame(), without.to_frame())
    assert len(without) == 50


def test_counts_are_summed_on_duplicates(tmp_path: Path) -> None:
    (tmp_path / "user_artists.dat").write_text("1\t10\t5\n1\t11\t2\n1\t10\t7\n")
    with pytest.warns(UserWarning, match=r"1 duplicate .* line 3 .*summed the counts"):
        x = load(tmp_path / "user_artists.dat")
    assert x.to_frame()[["user_id", "item_id", "rating"]].values.tolist() == [[1, 10, 12], [1, 11, 2]]


# ---------------------------------------------------------------------------------------------- Amazon
def test_amazon_beauty_counts_after_aggregation(data_dir: Path) -> None:
    path = data_dir / "amazon-beauty" / "All_Beauty_5.json.gz"
    with gzip.open(path, "rt") as fh:
        raw = pd.DataFrame([json.loads(line) for line in fh])
    assert len(raw) == 5_269  # the README's count, before duplicates are merged
    n_dup = int(raw.duplicated(["reviewerID", "asin"]).sum())
    assert n_dup > 0  # this copy has repeated (reviewer, product) rows
    with pytest.warns(UserWarning, match=rf"All_Beauty_5\.json\.gz: {n_dup} duplicate .*rule: kept the last"):
        x = load(path)
    assert (len(x), x.n_users, x.n_items) == (5_269 - n_dup, 991, 85)
    assert x.meta["duplicates"] == n_dup
    assert x.kind == "rating" and x.rating_scale == (1.0, 5.0)
    assert not x.to_frame().duplicated(["user_id", "item_id"]).any()


def test_amazon_text_and_images(data_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        x = load(data_dir / "amazon-beauty")
    assert x.text is not None and x.has_image is not None and x.timestamp is not None
    assert x.text[0] == "Five Stars. As advertised. Reasonably priced"  # summary prepended
    assert 0 < x.has_image.sum() < len(x)
    assert x.timestamp[0] == 1472688000


def test_amazon_keeps_the_latest_review_of_a_pair(tmp_path: Path) -> None:
    rows = [
        {"reviewerID": "A", "asin": "P", "overall": 5.0, "unixReviewTime": 200, "reviewText": "late"},
        {
            "reviewerID": "A",
            "asin": "Q",
            "overall": 3.0,
            "unixReviewTime": 100,
            "reviewText": "other",
            "image": ["u"],
        },
        {"reviewerID": "A", "asin": "P", "overall": 1.0, "unixReviewTime": 100, "reviewText": "early"},
    ]
    path = tmp_path / "reviews.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.warns(UserWarning, match=r"reviews\.json: 1 duplicate .*line 3 .*first seen at line 1"):
        x = load(path)
    # the later timestamp wins although it comes first in the file; row order stays file order
    assert x.to_frame()[["item_id", "rating", "text"]].values.tolist() == [
        ["P", 5.0, "late"],
        ["Q", 3.0, "other"],
    ]
    assert x.has_image is not None and x.has_image.tolist() == [False, True]


# ---------------------------------------------------------------------------------------------- detection
def test_detects_each_real_format(data_dir: Path) -> None:
    assert detect_format(data_dir / "ml-100k") == "movielens"
    assert detect_format(data_dir / "ml-100k" / "u.data") == "movielens"
    assert detect_format(data_dir / "lastfm-2k") == "lastfm"
    assert detect_format(data_dir / "lastfm-2k" / "user_artists.dat") == "lastfm"
    assert detect_format(data_dir / "amazon-beauty") == "amazon"
    assert detect_format(data_dir / "amazon-beauty" / "All_Beauty_5.json.gz") == "amazon"


def test_detects_generic_formats_by_name_and_content(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [3.0]})
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame.to_csv(tmp_path / "log.tsv", index=False, sep="\t")
    frame.to_parquet(tmp_path / "log.parquet")
    frame.to_json(tmp_path / "log.jsonl", orient="records", lines=True)
    frame.to_csv(tmp_path / "ratings.csv", index=False)  # a ratings.csv without MovieLens columns
    assert detect_format(tmp_path / "log.csv") == "csv"
    assert detect_format(tmp_path / "log.tsv") == "csv"
    assert detect_format(tmp_path / "log.parquet") == "parquet"
    assert detect_format(tmp_path / "log.jsonl") == "jsonl"
    assert detect_format(tmp_path / "ratings.csv") == "csv"
    assert load(tmp_path / "log.tsv").to_frame().values.tolist() == [[1, 2, 3.0]]
    assert set(FORMATS) == {
        "movielens", "movielens-csv", "movielens-dat", "amazon", "lastfm", "csv", "parquet", "jsonl"
    }  # fmt: skip


def test_format_argument_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "plays.txt"
    path.write_text("u1\ta1\t3\n")
    x = load(path, format="lastfm")
    assert x.kind == "count" and x.to_frame().values.tolist() == [["u1", "a1", 3.0]]


def test_movielens_csv_with_titles_and_genres(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,3,0.5,964981247\n"
    )
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,"Grumpier Old Men, The (1995)",'
        "(no genres listed)\n"
    )
    assert detect_format(tmp_path) == "movielens-csv"
    x = load(tmp_path)
    assert x.rating_scale == (0.5, 5.0)
    assert x.item_titles is not None
    assert x.item_titles.tolist() == [
        "Toy Story (1995) | Adventure|Animation",
        "Grumpier Old Men, The (1995)",
    ]
    assert x.to_frame().values.tolist() == [[1, 1, 4.5, 964982703], [1, 3, 0.5, 964981247]]


# ------------------------------------------------------------------------------------------ generic tables
_MAPPING = {"user_id": "customer", "item_id": "sku", "rating": "stars", "timestamp": "ts", "text": "comment"}


def _shop_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": ["c1", "c2", "c1", "c3"],
            "sku": ["007", "010", "010", "007"],  # leading zeros: these ids must stay text
            "stars": [5.0, 3.0, 4.0, 1.0],
            "ts": [1_600_000_000, 1_600_000_100, 1_600_000_200, 1_600_000_300],
            "comment": ["great", "", "ok", "bad"],
            "extra": [1, 2, 3, 4],
        }
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_generic_round_trip_with_column_mapping(tmp_path: Path, suffix: str) -> None:
    frame = _shop_frame()
    path = tmp_path / f"shop.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    x = load(path, columns=_MAPPING)
    assert x.meta["format"] == suffix
    got = x.to_frame()
    assert got["user_id"].tolist() == ["c1", "c2", "c1", "c3"]
    assert got["item_id"].tolist() == ["007", "010", "010", "007"]
    assert got["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    assert got["timestamp"].tolist() == frame["ts"].tolist()
    assert got["text"].tolist() == ["great", "", "ok", "bad"]
    assert x.kind == "rating" and x.rating_scale is None and x.source == str(path)


def test_generic_csv_finds_common_aliases(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("userId,product_id,score\n7,100,2\n8,100,4\n")
    x = load(path)
    assert x.to_frame().values.tolist() == [[7, 100, 2.0], [8, 100, 4.0]]
    assert x.user_index([8]).tolist() == [1]  # integer ids come back as integers


def test_iso_date_timestamps_become_unix_seconds(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,rating,timestamp\na,x,1,2020-01-01\nb,x,2,2020-01-01T10:00:00Z\nc,x,3,86400\n"
    )
    x = load(path)
    assert x.timestamp is not None
    assert x.timestamp.dtype == np.int64
    assert x.timestamp.tolist() == [1_577_836_800, 1_577_872_800, 86_400]


def test_parquet_datetime_column_becomes_unix_seconds(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [3, 3],
            "rating": [1.0, 2.0],
            "timestamp": pd.to_datetime(["1970-01-02", "2020-01-01"]),
        }
    )
    frame.to_parquet(tmp_path / "log.parquet")
    x = load(tmp_path / "log.parquet")
    assert x.timestamp is not None and x.timestamp.tolist() == [86_400, 1_577_836_800]


def test_ratings_without_timestamps_keep_the_last_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating\na,x,1\nb,x,2\na,x,5\n")
    with pytest.warns(
        UserWarning, match=r"1 duplicate .*line 4 .*first seen at line 2.*last rating in file order"
    ):
        x = load(path)
    assert x.to_frame().values.tolist() == [["b", "x", 2.0], ["a", "x", 5.0]]


def test_rating_scale_argument_overrides_the_default(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("1\t1\t10\t0\n")
    assert load(path, rating_scale=(0, 10)).rating.tolist() == [10.0]


def test_has_image_column_parses_true_false(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating,has_image\na,x,1,true\nb,x,2,0\nc,x,3,\n")
    x = load(path)
    assert x.has_image is not None and x.has_image.tolist() == [True, False, False]


def test_kind_argument_makes_a_generic_file_counts(tmp_path: Path) -> None:
    path = tmp_path / "plays.csv"
    path.write_text("user,item,rating\na,x,2\na,x,3\n")
    with pytest.warns(UserWarning, match="summed the counts"):
        x = load(path, kind="count")
    assert x.kind == "count" and x.rating.tolist() == [5.0]
