"""Every bad input gives a DataError (or ConfigError) whose message names the file, line, column and value.

Row convention (the core.data docstring): ``row`` is the 1-based line in the file, a header being line 1; for
Parquet the 1-based record number.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data import load
from core.errors import ConfigError, DataError
from core.interactions import Interactions


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------- columns
def test_missing_required_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,grade\na,x,5\n")
    with pytest.raises(DataError, match=r"missing required column 'rating' \(or 'score', 'overall'") as err:
        load(path)
    assert "log.csv" in str(err.value)
    assert "columns found: ['user_id', 'item_id', 'grade']" in str(err.value)
    assert err.value.column == "rating"


def test_mapped_column_missing_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "customer,sku,rating\na,x,5\n")
    with pytest.raises(DataError, match=r"missing column 'stars' \(for rating\)") as err:
        load(path, columns={"user_id": "customer", "item_id": "sku", "rating": "stars"})
    assert "columns found: ['customer', 'sku', 'rating']" in str(err.value)


def test_amazon_without_overall_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", '{"reviewerID": "A", "asin": "P", "unixReviewTime": 1}\n')
    with pytest.raises(DataError, match=r"'overall' \(for rating\); columns found: \['reviewerID', 'asin'"):
        load(path)


# ---------------------------------------------------------------------------------------------- ratings
def test_empty_rating_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user,item,stars\na,x,5\nb,y,\n")
    with pytest.raises(DataError, match="missing rating") as err:
        load(path, columns={"user_id": "user", "item_id": "item", "rating": "stars"})
    assert (err.value.row, err.value.column) == (3, "stars")
    assert str(err.value).startswith(f"{path}, line 3, column 'stars'")


def test_null_rating_in_json_lines_names_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "log.jsonl",
        '{"user_id": 1, "item_id": 2, "rating": 4}\n\n{"user_id": 1, "item_id": 3, "rating": null}\n',
    )
    with pytest.raises(DataError, match="missing rating") as err:
        load(path)
    assert err.value.row == 3  # the blank line 2 still counts


def test_nan_text_rating_names_the_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating\na,x,NaN\n")
    with pytest.raises(DataError, match=r"rating 'NaN' is not a number") as err:
        load(path)
    assert err.value.row == 2


def test_non_numeric_rating_names_the_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t881250949\n1\t2\tfive\t881250949\n")
    with pytest.raises(DataError, match=r"rating 'five' is not a number") as err:
        load(path)
    assert (err.value.source, err.value.row, err.value.column) == (str(path), 2, "rating")


def test_rating_outside_the_scale(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t0\n1\t2\t6\t0\n")
    with pytest.raises(DataError, match=r"rating 6 is outside the rating scale \[1, 5\]") as err:
        load(path)
    assert (err.value.row, err.value.column) == (2, "rating")


def test_rating_outside_a_declared_scale(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating\na,x,3\na,y,11\n")
    with pytest.raises(DataError, match=r"rating 11 is outside the rating scale \[0, 10\]") as err:
        load(path, rating_scale=(0, 10))
    assert err.value.row == 3


def test_infinite_rating(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating\na,x,inf\n")
    with pytest.raises(DataError, match=r"rating 'inf' is not finite"):
        load(path)


def test_negative_rating_without_a_scale(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating\na,x,1\na,y,-2\n")
    with pytest.raises(DataError, match=r"negative rating -2") as err:
        load(path)
    assert (err.value.row, err.value.column) == (3, "rating")


def test_negative_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "user_artists.dat", "2\t51\t100\n2\t52\t-3\n")
    with pytest.raises(DataError, match=r"negative count -3") as err:
        load(path)
    assert (err.value.row, err.value.column) == (2, "weight")
    assert "user_artists.dat" in str(err.value)


def test_zero_counts_are_dropped_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path / "user_artists.dat", "2\t51\t100\n2\t52\t0\n3\t51\t4\n")
    with pytest.warns(
        UserWarning, match=r"user_artists\.dat: dropped 1 rows with a zero count \(first at line 2\)"
    ):
        x = load(path)
    assert len(x) == 2


def test_only_zero_counts_is_empty_after_filtering(tmp_path: Path) -> None:
    path = _write(tmp_path / "user_artists.dat", "2\t51\t0\n")
    with pytest.raises(DataError, match="no interactions left"):
        load(path)


def test_bad_rating_in_parquet_names_the_record(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 1, 1], "rating": [1.0, np.nan, 2.0]}).to_parquet(path)
    with pytest.raises(DataError, match="missing rating") as err:
        load(path)
    assert err.value.row == 2  # 1-based record number
    assert "record 2" in str(err.value)


# ---------------------------------------------------------------------------------------------- stored types
# Values are checked in the dtype they are stored in (ratings and counts float32, timestamps int64), not in
# the float64 they are read as: a value that passes is the value stored.
def _ratings_file(path: Path, bad: str, line: int = 19) -> Path:
    rows = ["user_id,item_id,rating"] + [f"u{k % 5},i{k},{1 + k % 5}" for k in range(2, 40)]
    rows[line - 1] = f"u9,i{line},{bad}"
    return _write(path, "\n".join(rows) + "\n")


def test_a_rating_too_large_for_float32_is_refused_on_its_line(tmp_path: Path) -> None:
    path = _ratings_file(tmp_path / "log.csv", "1e308")
    with pytest.raises(DataError) as err:
        load(path)
    assert (
        str(err.value)
        == f"{path}, line 19, column 'rating': rating '1e308' is too large for float32 (max 3.4e+38)"
    )


def test_the_largest_float32_rating_passes_and_is_stored_finite(tmp_path: Path) -> None:
    x = load(_ratings_file(tmp_path / "log.csv", "3.4e38"))
    assert np.isfinite(x.rating).all()
    assert x.rating.max() == np.float32(3.4e38)


def test_a_rating_float32_stores_as_zero_is_refused(tmp_path: Path) -> None:
    path = _ratings_file(tmp_path / "log.csv", "1e-50", line=7)
    with pytest.raises(DataError) as err:
        load(path)
    assert (
        str(err.value)
        == f"{path}, line 7, column 'rating': rating '1e-50' is too small for float32: it would be 0"
    )


def test_a_rating_too_large_with_a_scale_names_the_stored_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t0\n1\t2\t1e39\t0\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert (
        str(err.value)
        == f"{path}, line 2, column 'rating': rating '1e39' is too large for float32 (max 3.4e+38)"
    )


def test_a_count_too_large_for_float32_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t100\n2\t52\t5e38\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert (
        str(err.value)
        == f"{path}, line 3, column 'weight': count '5e38' is too large for float32 (max 3.4e+38)"
    )


def test_counts_that_sum_beyond_float32_are_refused_at_the_pair(tmp_path: Path) -> None:
    path = _write(tmp_path / "user_artists.dat", "2\t51\t100\n2\t52\t3e38\n2\t52\t3e38\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}, line 2, column 'weight': the counts of (user_id, item_id) = (2, 52) sum to 6e+38, "
        "too large for float32 (max 3.4e+38)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e20", "timestamp '1e20' is too large for int64 (max 9.2e+18)"),
        ("-1e20", "timestamp '-1e20' is too small for int64 (min -9.2e+18)"),
        ("99999999999999999999", "timestamp '99999999999999999999' is too large for int64 (max 9.2e+18)"),
    ],
)
def test_a_timestamp_too_large_for_int64_is_refused(tmp_path: Path, value: str, message: str) -> None:
    path = _write(tmp_path / "log.csv", f"user_id,item_id,rating,timestamp\na,x,5,100\nb,x,4,{value}\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value) == f"{path}, line 3, column 'timestamp': {message}"


def test_a_numeric_timestamp_too_large_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    frame = {"user_id": [1, 2], "item_id": [1, 1], "rating": [1.0, 2.0], "timestamp": [1.0e9, 1.0e19]}
    pd.DataFrame(frame).to_parquet(path)
    with pytest.raises(DataError) as err:
        load(path)
    assert (
        str(err.value)
        == f"{path}, record 2, column 'timestamp': timestamp 1e+19 is too large for int64 (max 9.2e+18)"
    )


def test_a_frame_built_in_memory_gets_the_stored_type_check() -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rating": [4.0, 1e308]})
    with pytest.raises(DataError) as err:
        Interactions.from_frame(frame, source="shop")
    assert (
        str(err.value) == "shop, row 2, column 'rating': rating 1e+308 is too large for float32 (max 3.4e+38)"
    )


def test_missing_id_names_the_na_spelling(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t0\nNA\t2\t3\t0\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}, line 2, column 'user_id': missing user_id ('NA'); "
        "--drop-missing-ids (drop_missing_ids=True in Python) drops such rows"
    )


# ---------------------------------------------------------------------------------------------- ids
def test_missing_user_id_in_u_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t0\n\t2\t3\t0\n")
    with pytest.raises(DataError, match="missing user_id") as err:
        load(path)
    assert (err.value.row, err.value.column) == (2, "user_id")


def test_missing_item_id_in_csv(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,sku,rating\na,x,5\nb,,4\n")
    with pytest.raises(DataError, match="missing item_id") as err:
        load(path, columns={"item_id": "sku"})
    assert (err.value.row, err.value.column) == (3, "sku")


def test_json_id_that_is_a_list(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "log.jsonl",
        '{"user_id": "a", "item_id": 2, "rating": 4}\n{"user_id": ["b"], "item_id": 2, "rating": 4}\n',
    )
    with pytest.raises(DataError, match=r"user_id \['b'\] is not a single value") as err:
        load(path)
    assert err.value.row == 2


def test_first_bad_row_wins_across_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating\na,x,oops\n,y,5\n")
    with pytest.raises(DataError, match=r"rating 'oops'") as err:
        load(path)
    assert err.value.row == 2


def test_unknown_user_id_names_the_id() -> None:
    frame = pd.DataFrame({"user_id": ["alice", "bob"], "item_id": [1, 2], "rating": [4.0, 5.0]})
    x = Interactions.from_frame(frame, source="shop.csv")
    assert x.user_index(["bob"]).tolist() == [1]
    with pytest.raises(DataError, match=r"unknown user id 'carol'") as err:
        x.user_index(["alice", "carol"])
    assert "shop.csv" in str(err.value)


# ---------------------------------------------------------------------------------------------- timestamps
def test_unparseable_timestamp_names_the_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "log.csv", "user_id,item_id,rating,timestamp\na,x,5,2020-01-01\nb,x,4,yesterday\n"
    )
    with pytest.raises(
        DataError, match=r"timestamp 'yesterday' is neither unix seconds nor an ISO-8601 date"
    ) as err:
        load(path)
    assert (err.value.row, err.value.column) == (3, "timestamp")


def test_missing_timestamp(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating,ts\na,x,5,1\nb,x,4,\n")
    with pytest.raises(DataError, match="missing timestamp") as err:
        load(path)
    assert (err.value.row, err.value.column) == (3, "ts")


def test_bad_has_image_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating,has_image\na,x,5,maybe\n")
    with pytest.raises(DataError, match=r"has_image 'maybe' is not true/false"):
        load(path)


# ---------------------------------------------------------------------------------------------- duplicates
def test_duplicates_are_aggregated_with_a_warning(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "log.csv", "user_id,item_id,rating,timestamp\na,x,1,30\nb,x,2,10\na,x,5,20\na,x,4,10\n"
    )
    with pytest.warns(UserWarning) as record:
        x = load(path)
    message = str(record[0].message)
    assert message.startswith(f"{path}: 2 duplicate (user_id, item_id) rows; the first is line 4")
    assert "first seen at line 2" in message
    assert "rule: kept the last rating by timestamp" in message
    # ('a', 'x') keeps the rating with the latest timestamp (30, line 2) at its own place in the file
    assert x.to_frame()[["user_id", "rating"]].values.tolist() == [["a", 1.0], ["b", 2.0]]
    assert x.meta["duplicates"] == 2


def test_duplicates_raise_when_asked(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t0\n1\t2\t3\t0\n1\t1\t4\t9\n")
    with pytest.raises(
        DataError, match=r"duplicate \(user_id, item_id\) = \(1, 1\), first seen at line 1"
    ) as err:
        load(path, on_duplicate="error")
    assert err.value.row == 3
    assert "u.data" in str(err.value)


# ---------------------------------------------------------------------------------------------- files
def test_file_not_found_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="file not found") as err:
        load(path)
    assert str(path) in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty") as err:
        load(_write(tmp_path / "log.csv", ""))
    assert "log.csv" in str(err.value)


def test_header_only_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no interactions"):
        load(_write(tmp_path / "log.csv", "user_id,item_id,rating\n"))


def test_empty_json_lines_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the file is empty") as err:
        load(_write(tmp_path / "log.jsonl", "\n\n"))
    assert "log.jsonl" in str(err.value)


def test_unparseable_json_line_names_the_line(tmp_path: Path) -> None:
    good = '{"user_id": 1, "item_id": 2, "rating": 4}'
    path = _write(tmp_path / "log.jsonl", f"{good}\n\n{good}\n{{'user_id': 1}}\n{good}\n")
    with pytest.raises(DataError, match="invalid JSON") as err:
        load(path)
    assert err.value.row == 4
    assert str(err.value).startswith(f"{path}, line 4")


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.jsonl", '{"user_id": 1, "item_id": 2, "rating": 4}\n[1, 2, 4]\n')
    with pytest.raises(DataError, match="expected a JSON object") as err:
        load(path)
    assert err.value.row == 2


def test_broken_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b'{"reviewerID": "A", "asin": "P", "overall": 5}\n' * 50)
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read the file") as err:
        load(path, format="amazon")
    assert "reviews.json.gz" in str(err.value)


def test_wrong_number_of_fields_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\t0\n1\t2\t3\t0\t99\n")
    with pytest.raises(DataError, match=r"cannot parse the file: Expected 4 fields in line 2, saw 5") as err:
        load(path)
    assert err.value.row == 2


def test_too_few_fields_in_u_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t1\t5\n")
    with pytest.raises(DataError, match=r"expected 4 tab-separated fields .*found 3") as err:
        load(path)
    assert err.value.row == 1


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes("user_id,item_id,rating\nJosé,x,5\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8") as err:
        load(path)
    assert "log.csv" in str(err.value)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read the file") as err:
        load(_write(tmp_path / "log.parquet", "not parquet"))
    assert "log.parquet" in str(err.value)


def test_unknown_extension_asks_for_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pass --format \(format= in Python\)"):
        load(_write(tmp_path / "log.xyz", "a,b\n"))


def test_folder_without_a_known_file_lists_what_it_holds(tmp_path: Path) -> None:
    _write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DataError, match=r"no known data file .*found: \['notes.txt'\]"):
        load(tmp_path)


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "excel"}, r"unknown format 'excel'"),
        ({"on_duplicate": "first"}, r"on_duplicate='first'"),
        ({"rating_scale": (5, 1)}, r"scale=\(5, 1\)"),
        ({"rating_scale": (-1, 1)}, r"scale=\(-1, 1\)"),
        ({"rating_scale": ("a", "b")}, r"pair of numbers"),
        ({"columns": {"user": "u"}}, r"canonical names .*\['user'\]"),
        ({"format": "movielens", "columns": {"user_id": "u"}}, r"not to 'movielens'"),
        ({"kind": "plays"}, r"kind='plays'"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    path = _write(tmp_path / "log.csv", "user_id,item_id,rating\na,x,5\n")
    with pytest.raises(ConfigError, match=match):
        load(path, **kwargs)  # type: ignore[arg-type]
