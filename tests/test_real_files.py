"""Other people's files as they come: headers with their own names (``--columns``), ``;`` / tab / ``|`` fields
(``--sep``, or sniffed from the header line), ``NA`` ids (``--drop-missing-ids``) and ids quoted twice over.

Each shape is a small file written here in the shape of a public dataset: Book-Crossing's
``BX-Book-Ratings.csv`` (``"User-ID";"ISBN";"Book-Rating"``) and an export of UCI Online Retail
(``InvoiceNo;StockCode;Quantity;CustomerID``, ``NA`` where the customer is unknown).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.data import load
from core.data.columns import parse_columns
from core.data.delimited import sniff_sep
from core.errors import ConfigError, DataError
from core.prepare import DataOptions
from core.train import main as train_main
from search.arguments import build_parser, settings_from_args

BOOK_COLUMNS = {"user_id": "User-ID", "item_id": "ISBN", "rating": "Book-Rating"}
RETAIL_COLUMNS = {"user_id": "CustomerID", "item_id": "StockCode", "rating": "Quantity"}
HINT = "name them with --columns user=<column>,item=<column>,rating=<column> (columns= in Python)"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _book_crossing(path: Path, n_users: int = 12, n_books: int = 10, header: str | None = None) -> Path:
    """BX-Book-Ratings.csv: ``;``-separated, every field quoted, ISBNs with a trailing X, ratings 0-10."""
    rows = [header or '"User-ID";"ISBN";"Book-Rating"']
    for u in range(n_users):
        for b in range(n_books):
            if (u + b) % 3 != 0:
                rows.append(f'"{276725 + u}";"03454{b:04d}X";"{(u * 7 + b) % 11}"')
    return _write(path, rows)


def _online_retail(path: Path, missing: dict[int, str] | None = None) -> Path:
    """An Online Retail export: ``;``-separated; ``missing`` puts a CustomerID spelling at some rows."""
    rows = ["InvoiceNo;StockCode;Quantity;CustomerID"]
    for k in range(40):
        customer = (missing or {}).get(k, str(12346 + k % 8))
        rows.append(f"5363{k:02d};8512{k % 9}A;{1 + k % 6};{customer}")
    return _write(path, rows)


# ---------------------------------------------------------------------------------------------- --columns
def test_book_crossing_header_is_refused_with_the_columns_spelling(tmp_path: Path) -> None:
    path = _book_crossing(tmp_path / "BX-Book-Ratings.csv")
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}, column 'user_id': missing required column 'user_id' (or 'userId', 'userID', 'user', "
        f"'customer_id', 'reviewerID'); columns found: ['User-ID', 'ISBN', 'Book-Rating']; {HINT}"
    )


def test_book_crossing_reads_with_columns_named(tmp_path: Path) -> None:
    path = _book_crossing(tmp_path / "BX-Book-Ratings.csv")
    x = load(path, columns=parse_columns("user=User-ID,item=ISBN,rating=Book-Rating"))
    assert len(x) == 80  # 12 users x 10 books, a third left out
    assert x.users[:2].tolist() == [276725, 276726]  # plain integers become int64 ids
    assert x.items[:3].tolist() == ["034540001X", "034540002X", "034540004X"]  # ISBNs keep their zeros
    assert sorted(np.unique(x.rating).tolist()) == list(range(11))


def test_book_crossing_with_a_comma_header(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "ratings.csv", ["User-ID,ISBN,Book-Rating", "276725,034545104X,0", "276726,0155061224,5"]
    )
    x = load(path, columns=BOOK_COLUMNS)
    assert x.items.tolist() == ["034545104X", "0155061224"]
    assert x.rating.tolist() == [0.0, 5.0]


def test_a_mapped_column_that_is_absent_offers_the_spelling(tmp_path: Path) -> None:
    path = _book_crossing(tmp_path / "BX-Book-Ratings.csv")
    with pytest.raises(DataError) as err:
        load(path, columns={**BOOK_COLUMNS, "rating": "Rating"})
    assert str(err.value) == (
        f"{path}, column 'Rating': missing column 'Rating' (for rating); "
        f"columns found: ['User-ID', 'ISBN', 'Book-Rating']; {HINT}"
    )


def test_columns_spelling_takes_short_and_canonical_names() -> None:
    spec = "user=User-ID, item=ISBN ,rating=Book-Rating,time=Date,text=Review,has_image=Photo"
    assert parse_columns(spec) == {
        "user_id": "User-ID",
        "item_id": "ISBN",
        "rating": "Book-Rating",
        "timestamp": "Date",
        "text": "Review",
        "has_image": "Photo",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "user:User-ID",
            "--columns takes NAME=COLUMN pairs, comma-separated (user=User-ID,item=ISBN,rating=Book-Rating), "
            "but got 'user:User-ID'",
        ),
        (
            "user=A,,item=B",
            "--columns takes NAME=COLUMN pairs, comma-separated "
            "(user=User-ID,item=ISBN,rating=Book-Rating), but got ''",
        ),
        ("customer=A", "--columns: unknown name 'customer'; names are user, item, rating, time, text, image"),
        ("user=", "--columns: no column given for 'user'"),
        ("user=A,user_id=B", "--columns: 'user_id' is given twice"),
        ("user=A,item=A", "--columns: column 'A' is given for two names"),
    ],
)
def test_bad_columns_spellings_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_columns(spec)
    assert str(err.value) == message


def test_columns_do_not_apply_to_a_fixed_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", ["1\t1\t5\t0"])
    with pytest.raises(ConfigError) as err:
        DataOptions(data=str(path), columns="user=A").prepare()
    assert str(err.value) == (
        "columns= (--columns) applies to the generic formats ('csv', 'parquet', 'jsonl'), not to 'movielens'"
    )


# ---------------------------------------------------------------------------------------------- --sep
def test_online_retail_semicolons_are_sniffed(tmp_path: Path) -> None:
    path = _online_retail(tmp_path / "online_retail.csv")
    x = load(path, columns=RETAIL_COLUMNS)
    assert (len(x), x.n_users, x.n_items) == (40, 8, 9)
    assert x.users[:2].tolist() == [12346, 12347]
    assert x.items[:2].tolist() == ["85120A", "85121A"]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_the_separator_is_sniffed_from_the_header_line(tmp_path: Path, sep: str) -> None:
    rows = [
        "user_id,item_id,rating".replace(",", sep),
        *(sep.join(r) for r in (("a", "x", "5"), ("b", "y", "3"))),
    ]
    x = load(_write(tmp_path / "log.csv", rows))
    assert x.users.tolist() == ["a", "b"]
    assert x.rating.tolist() == [5.0, 3.0]


@pytest.mark.parametrize(
    ("header", "sep"),
    [
        ("user_id,item_id,rating", ","),
        ('"User-ID";"ISBN";"Book-Rating"', ";"),
        ('"a,b";c;d', ";"),  # separators inside quoted names do not count
        ("a;b,c", ","),  # a tie goes to the comma, then ; tab |
        ("a\tb|c|d", "|"),
        ("rating", ","),  # no separator: one column, read as before
    ],
)
def test_sniffing_counts_separators_outside_quotes(header: str, sep: str) -> None:
    assert sniff_sep(header) == sep


def test_sep_overrides_sniffing_and_the_extension(tmp_path: Path) -> None:
    # a .tsv whose fields are |-separated: the extension would say tab
    path = _write(tmp_path / "log.tsv", ["user_id|item_id|rating", "a b|x|5", "c|y|4"])
    assert load(path, sep="|").users.tolist() == ["a b", "c"]
    with pytest.raises(DataError, match=r"columns found: \['user_id\|item_id\|rating'\]"):
        load(path)  # by its extension: tab-separated, one column


def test_sep_tab_spellings(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", ["user_id\titem_id\trating", "a\tx\t5"])
    for spelling in ("tab", "\\t", "\t"):
        assert load(path, sep=spelling).users.tolist() == ["a"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"sep": ";;"},
            "--sep (sep=) must be one character or 'tab', not a quote or a line break, but got ';;'",
        ),
        (
            {"sep": '"'},
            "--sep (sep=) must be one character or 'tab', not a quote or a line break, but got '\"'",
        ),
        (
            {"sep": ";", "format": "jsonl"},
            "--sep (sep=) applies to the delimited format 'csv', not to 'jsonl'",
        ),
    ],
)
def test_bad_separators_are_config_errors(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    path = _write(tmp_path / "log.csv", ["user_id,item_id,rating", "a,x,5"])
    with pytest.raises(ConfigError) as err:
        load(path, **kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


# ---------------------------------------------------------------------------------------------- missing ids
@pytest.mark.parametrize(
    ("spelling", "shown"),
    [("NA", "'NA'"), ("NULL", "'NULL'"), ("nan", "'nan'"), ("", "empty"), ("  ", "empty")],
)
def test_a_missing_customer_is_reported_on_its_line(tmp_path: Path, spelling: str, shown: str) -> None:
    path = _online_retail(tmp_path / "online_retail.csv", {4: spelling, 17: "NA"})
    with pytest.raises(DataError) as err:
        load(path, columns=RETAIL_COLUMNS)
    assert str(err.value) == (
        f"{path}, line 6, column 'CustomerID': missing user_id ({shown}); "
        "--drop-missing-ids (drop_missing_ids=True in Python) drops such rows"
    )


def test_drop_missing_ids_counts_the_rows_it_drops(tmp_path: Path) -> None:
    path = _online_retail(tmp_path / "online_retail.csv", {4: "NA", 17: "NA", 30: ""})
    with pytest.warns(UserWarning) as record:
        x = load(path, columns=RETAIL_COLUMNS, drop_missing_ids=True)
    assert str(record[0].message) == (
        f"{path}: dropped 3 rows with a missing user_id or item_id (first at line 6)"
    )
    assert len(x) == 37
    assert x.meta["missing_ids_dropped"] == 3
    assert x.summary()["missing_ids_dropped"] == 3
    assert "NA" not in x.users.astype(str)


def test_a_dropped_row_is_not_checked_further(tmp_path: Path) -> None:
    # the NA customer's row also has a negative quantity (a return): dropping it drops that too
    path = _write(
        tmp_path / "r.csv", ["InvoiceNo;StockCode;Quantity;CustomerID", "1;A;2;7", "2;B;-1;NA", "3;C;1;8"]
    )
    with pytest.warns(UserWarning, match="dropped 1 rows"):
        x = load(path, columns=RETAIL_COLUMNS, drop_missing_ids=True)
    assert x.items.tolist() == ["A", "C"]


def test_without_drop_missing_ids_nothing_is_counted(tmp_path: Path) -> None:
    x = load(_online_retail(tmp_path / "online_retail.csv"), columns=RETAIL_COLUMNS)
    assert "missing_ids_dropped" not in x.meta
    assert "missing_ids_dropped" not in x.summary()


def test_dropping_every_row_leaves_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", ["user_id,item_id,rating", "NA,x,5", "a,,4"])
    with pytest.raises(DataError) as err:
        load(path, drop_missing_ids=True)
    assert str(err.value) == f"{path}: no interactions left after dropping rows with missing ids"


def test_a_return_is_refused_on_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", ["InvoiceNo;StockCode;Quantity;CustomerID", "1;A;2;7", "C2;A;-2;7"])
    with pytest.raises(DataError) as err:
        load(path, columns=RETAIL_COLUMNS)
    assert str(err.value) == f"{path}, line 3, column 'Quantity': negative rating -2: ratings must be >= 0"


# ---------------------------------------------------------------------------------------------- quotes
def test_ids_quoted_twice_over_lose_their_quotes(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "ratings.csv",
        ["user_id,item_id,rating", '"""7""","""034545104X""",5', '8," ""0155061224"" ",4', '9,"""a""b""",3'],
    )
    x = load(path)
    assert x.users.tolist() == [7, 8, 9]  # "7" once unquoted is a plain integer
    assert x.items.tolist() == ["034545104X", "0155061224", 'a"b']  # only matching quotes go


def test_an_id_that_is_only_quotes_is_missing(tmp_path: Path) -> None:
    path = _write(tmp_path / "ratings.csv", ["user_id,item_id,rating", "1,x,5", '"""""",y,4'])
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}, line 3, column 'user_id': missing user_id (empty); "
        "--drop-missing-ids (drop_missing_ids=True in Python) drops such rows"
    )


# ---------------------------------------------------------------------------------------------- command lines
def test_core_train_reads_book_crossing_with_the_options(tmp_path: Path) -> None:
    path = _book_crossing(tmp_path / "BX-Book-Ratings.csv", n_users=30, n_books=12)
    with path.open("a") as fh:
        fh.write('"NA";"0345499991";"7"\n"";"0345499992";"7"\n')
    out = tmp_path / "run"
    argv = [
        "--data", str(path), "--columns", "user=User-ID,item=ISBN,rating=Book-Rating", "--sep", ";",
        "--drop-missing-ids", "--out", str(out), "--no-progress", "--param", "iterations=2",
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="dropped 2 rows with a missing user_id or item_id"):
        assert train_main(argv) == 0
    data = json.loads((out / "metadata.json").read_text())["data"]
    assert data["missing_ids_dropped"] == 2
    assert (data["users"], data["items"]) == (30, 12)


def test_core_train_reports_a_bad_columns_spelling_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data", str(tmp_path / "absent.csv"), "--columns", "usr=A", "--out", str(tmp_path / "r")]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert err == "error: --columns: unknown name 'usr'; names are user, item, rating, time, text, image\n"


def test_search_run_passes_the_options_to_the_loader() -> None:
    args = build_parser("study").parse_args(
        ["--model", "als", "--data", "bx.csv", "--columns", "user=User-ID,item=ISBN,rating=Book-Rating",
         "--sep", "tab", "--drop-missing-ids"]
    )  # fmt: skip
    read = settings_from_args(args).data.read_options()
    assert read == {"format": None, "columns": BOOK_COLUMNS, "sep": "\t", "drop_missing_ids": True}
