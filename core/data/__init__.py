"""Load interaction logs from files: the one entry point, :func:`load`, and :func:`detect_format`.

Why one entry point: every later step trusts that ids are present, ratings are finite numbers inside the
declared scale and each (user, item) pair occurs once. Checking that here, with errors that name the file,
the line and the column, keeps the rest of the library free of input checks.

Formats (the names ``format=`` takes):

- ``movielens``: ``u.data`` (``user \\t item \\t rating \\t unix_time``, no header), or a folder holding it.
  Titles with genres ("Toy Story (1995) | Animation|Children's|Comedy") come from ``u.item`` beside it
  (Latin-1, ``|``-separated, 19 genre flags named by ``u.genre``). Default rating scale (1, 5).
- ``movielens-csv``: ``ratings.csv`` (``userId,movieId,rating,timestamp``); titles and genres from
  ``movies.csv`` beside it. Default rating scale (0.5, 5), the half-star scale of the newer MovieLens sets.
- ``movielens-dat``: ``ratings.dat`` of MovieLens-1M / -10M (``user::item::rating::unix_time``, no header; a
  first line of 3 or 4 numbers joined by ``::`` is how it is recognised), or a folder holding it. Titles with
  genres from ``movies.dat`` beside it (``item::title::genres``, UTF-8, or Latin-1 as in ML-1M). Default
  rating scale (0.5, 5): ML-10M has half stars, ML-1M's whole stars fit. Read in chunks by pandas'
  C parser after turning ``::`` into one byte (:mod:`core.data.movielens_dat`).
- ``amazon``: JSON lines, optionally gzipped (``reviewerID``, ``asin``, ``overall``, ``reviewText``,
  ``summary``, ``unixReviewTime``, ``image``). Text is "summary. reviewText"; ``has_image`` is True where
  ``image`` is a non-empty list. Default rating scale (1, 5).
- ``lastfm``: ``user_artists.dat`` (``userID \\t artistID \\t weight``; a header line is tolerated), or a
  folder holding it. ``kind="count"``; artist names from ``artists.dat`` beside it.
- ``csv``, ``parquet``, ``jsonl``: generic tables. ``columns`` maps canonical names to the file's columns
  (the command line's ``--columns user=User-ID,item=ISBN,rating=Book-Rating``,
  :func:`core.data.columns.parse_columns`); unmapped columns are found by their canonical name or a common
  alias. A ``csv`` file's fields are separated by ``sep`` (``--sep``), else by tab for ``.tsv`` / ``.tab``,
  else by whichever of ``,`` ``;`` tab ``|`` its header line holds most of outside quotes (ties: that order).

Files over 50 MB read by the delimited readers show a byte progress bar (tqdm, on stderr); ``show_progress``
of :func:`load` turns it off (False), or on where stderr is not a terminal (True).

Row convention: ``DataError.row`` (and the line named in warnings) is the 1-based LINE number in the file for
text formats, counting a header line as line 1: the first data row of a CSV with a header is line 2, the
first line of ``u.data`` is line 1, and a JSON-lines record is on its own physical line. Blank lines are
skipped but still counted (so are rows whose fields are all empty). A quoted CSV field that spans lines shifts
the count. For Parquet it is the 1-based record number.

Validation: missing columns, missing ids, missing / non-numeric / non-finite ratings, negative ratings or
counts, ratings outside the rating scale and unparseable timestamps each raise :class:`DataError` naming the
first bad row. Values are checked in the dtype they are stored in, not the float64 they are read as: a
rating or count float32 would make inf (``1e308``) or 0 (``1e-50``), or a timestamp beyond int64, is bad on
its line. Timestamps may be unix seconds or ISO-8601 strings; they are stored as int64 unix seconds.
Zero counts (``kind="count"``) carry no signal and are dropped with a warning. An id is missing when empty or
spelled ``NA``, ``N/A``, ``NaN``, ``nan``, ``NULL``, ``null`` or ``None``; ``drop_missing_ids=True``
(``--drop-missing-ids``) drops such rows before any other check, with a warning, and counts them in
``meta["missing_ids_dropped"]``. Ids read from text files are stripped of spaces and of matching surrounding
quotes (a field quoted twice over, three quotes each side, is the bare id), and become int64 when every one
is a plain integer ("007" keeps the column text). Bad arguments (unknown format, a bad ``rating_scale``,
``columns`` keys that are not canonical names, ``sep`` that is not one character) raise ConfigError.

Duplicate (user, item) rows, ``on_duplicate="aggregate"`` (default): ratings keep the LAST interaction by
timestamp (file order breaks ties, and decides alone when there are no timestamps); counts are SUMMED (the
row stays where the pair first occurs, with the latest timestamp). A ``UserWarning`` names the file, the
number of duplicate rows, the first one's line and the rule. ``on_duplicate="error"`` raises instead.
Rows otherwise stay in file order.

Layout, one concern a module: :mod:`~core.data.loader` (:func:`load`), :mod:`~core.data.detect` (formats,
locating the file), :mod:`~core.data.files` (opening, gzip, progress, read errors), one reader a format
(:mod:`~core.data.movielens`, ``movielens_csv``, ``movielens_dat``, ``amazon``, ``lastfm``; the generic
``delimited``, ``parquet``, ``jsonl``), :mod:`~core.data.titles` (title side files), :mod:`~core.data.columns`
(column aliases), :mod:`~core.data.validate` (checks with row numbers), :mod:`~core.data.duplicates` (the
duplicate rule), :mod:`~core.data.values` (reading single values) and :mod:`~core.data.table` (what a reader
returns).
"""

from core.data.detect import FORMATS, detect_format
from core.data.loader import load

__all__ = ["FORMATS", "detect_format", "load"]
