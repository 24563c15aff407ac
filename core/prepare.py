"""Data ready for any number of fits: load -> segment -> split, and the options that say how.

:class:`DataOptions` is what ``core.train`` and ``search.run`` both accept (its fields are the command line's
defaults); :class:`Prepared` is the split plus what every report needs to say about it, with the matrices
every fit on the train split derives cached once.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import scipy.sparse as sp

from core.data import load
from core.data.columns import parse_columns
from core.data.delimited import parse_sep
from core.errors import ConfigError
from core.interactions import POSITIVE_THRESHOLD, Interactions
from core.split import (
    SPLIT_STRATEGIES,
    Segmentation,
    Split,
    SplitStrategy,
    segment_users,
    split,
    split_from_parts,
)
from core.synthetic import make_synthetic


@dataclass(frozen=True)
class Prepared:
    """Data ready for any number of fits: the split plus what every report needs to say about it."""

    data: Interactions
    segmentation: Segmentation | None
    split: Split
    positive_threshold: float
    data_version_hash: str
    #: What every fit on train derives from it alike (training matrices, hard negatives), computed once: a
    #: search fits the same train split hundreds of times.
    derived: dict[tuple[object, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def on_train(self, key: tuple[object, ...], make: Callable[[], sp.csr_matrix]) -> sp.csr_matrix:
        """``make()`` for the train split, computed once per ``key``; each caller gets its own copy."""
        if key not in self.derived:
            self.derived[key] = make()
        return self.derived[key].copy()

    @property
    def synthetic(self) -> bool:
        return bool(self.data.meta.get("synthetic"))

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"data": self.data.summary(), "split": self.split.describe()}
        if self.segmentation is not None:
            out["segmentation"] = self.segmentation.to_dict()
        out["synthetic"] = self.synthetic
        return out


@dataclass(frozen=True)
class DataOptions:
    """Where the data comes from and how it is split: what ``core.train`` and ``search.run`` both accept,
    checked and worded the same way."""

    data: str | None = None
    fmt: str | None = None
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    split: str = "auto"
    valid_frac: float = 0.1
    test_frac: float = 0.2
    positive_threshold: float = POSITIVE_THRESHOLD
    min_interactions: int = 2
    seed: int = 42
    #: Which of the file's columns is which, as the command line spells it: "user=User-ID,item=ISBN,...".
    columns: str | None = None
    #: The field separator of a ``csv`` file ("tab" or "\\t" for a tab); None: from the extension or sniffed.
    sep: str | None = None
    #: Rows without a user or item id are dropped (and counted) instead of failing the file.
    drop_missing_ids: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DataOptions:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def check(self) -> None:
        """Every option checked before any data is read, so a typo costs nothing and names itself."""
        checks = [
            (0 <= self.valid_frac < 1, f"--valid-frac must be in [0, 1), but got {self.valid_frac}"),
            (0 < self.test_frac < 1, f"--test-frac must be in (0, 1), but got {self.test_frac}"),
            (self.valid_frac + self.test_frac < 1, "--valid-frac + --test-frac must be below 1"),
            (self.min_interactions >= 1, f"--min-interactions must be >= 1, but got {self.min_interactions}"),
            (
                self.split in SPLIT_STRATEGIES,
                f"--split must be one of {SPLIT_STRATEGIES}, got {self.split!r}",
            ),
        ]
        given = [self.train, self.valid, self.test]
        checks.append((all(given) or not any(given), "--train, --valid and --test go together"))
        checks.append((not (self.data and all(given)), "--data and --train/--valid/--test are alternatives"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.read_options()

    def read_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`core.data.load` these options give (``--columns`` and ``--sep``
        parsed, so that a bad spelling is a ConfigError before any file is read)."""
        return {
            "format": self.fmt,
            "columns": None if self.columns is None else parse_columns(self.columns),
            "sep": None if self.sep is None else parse_sep(self.sep),
            "drop_missing_ids": self.drop_missing_ids,
        }

    def prepare(self) -> Prepared:
        """Load (format detected, or ``--format``) and split; the user's own three files are kept as given."""
        self.check()
        if self.train and self.valid and self.test:
            read = self.read_options()
            return prepare_given(
                load(self.train, **read),
                load(self.valid, **read),
                load(self.test, **read),
                positive_threshold=self.positive_threshold,
            )
        return self.split_data(load_data(self.data, seed=self.seed, **self.read_options()))

    def split_data(self, data: Interactions) -> Prepared:
        """Segment and split interactions already loaded, with these options."""
        return prepare(
            data,
            split_strategy=self.split,  # type: ignore[arg-type]
            valid_frac=self.valid_frac,
            test_frac=self.test_frac,
            positive_threshold=self.positive_threshold,
            min_interactions=self.min_interactions,
            seed=self.seed,
        )


#: The options when none is given: what every default below, and the command line's, is taken from.
DEFAULT_OPTIONS = DataOptions()


def _split_hash(parts: Sequence[Interactions]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.data_version_hash().encode() if len(part) else b"-")
    return h.hexdigest()[:16]


def prepare(
    data: Interactions,
    *,
    split_strategy: SplitStrategy = DEFAULT_OPTIONS.split,  # type: ignore[assignment]
    valid_frac: float = DEFAULT_OPTIONS.valid_frac,
    test_frac: float = DEFAULT_OPTIONS.test_frac,
    positive_threshold: float = DEFAULT_OPTIONS.positive_threshold,
    min_interactions: int = DEFAULT_OPTIONS.min_interactions,
    min_positive: int = 1,
    seed: int = DEFAULT_OPTIONS.seed,
) -> Prepared:
    """Segment users and split. ``data_version_hash`` identifies the data AND the split (what a champion
    comparison must hold fixed)."""
    seg = segment_users(
        data,
        min_interactions=min_interactions,
        min_positive=min_positive,
        positive_threshold=positive_threshold,
    )
    parts = split(
        seg.trainable,
        split_strategy,
        valid_frac=valid_frac,
        test_frac=test_frac,
        positive_threshold=positive_threshold,
        seed=seed,
    )
    return Prepared(data, seg, parts, positive_threshold, _split_hash([parts.train, parts.valid, parts.test]))


def prepare_given(
    train: Interactions,
    valid: Interactions,
    test: Interactions,
    *,
    positive_threshold: float = DEFAULT_OPTIONS.positive_threshold,
) -> Prepared:
    """The user's own ``--train/--valid/--test`` files: no re-splitting, no users dropped."""
    parts = split_from_parts(train, valid, test, positive_threshold=positive_threshold)
    return Prepared(
        train, None, parts, positive_threshold, _split_hash([parts.train, parts.valid, parts.test])
    )


def load_data(data: str | None, *, seed: int = DEFAULT_OPTIONS.seed, **read: Any) -> Interactions:
    """``--data`` path (format detected) or, without one, the embedded SYNTHETIC dataset. ``read``: the
    keyword arguments of :func:`core.data.load` (:meth:`DataOptions.read_options`)."""
    if data is None:
        return make_synthetic(seed=seed)
    return load(data, **read)


def dataset_label(prepared: Prepared) -> str:
    """The dataset's short name (``ml-100k``, ``synthetic``, a file's stem), never a file name like ``u``."""
    if prepared.synthetic:
        return "synthetic"
    return str(prepared.data.meta.get("dataset") or "data")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data options of :class:`DataOptions` on a command line."""
    d = DEFAULT_OPTIONS
    p.add_argument("--data", default=d.data, help="file or folder; omitted: the embedded SYNTHETIC dataset")
    p.add_argument("--format", dest="fmt", default=d.fmt, help="override format detection")
    p.add_argument(
        "--columns",
        default=d.columns,
        metavar="NAME=COLUMN,...",
        help="which of your file's columns is which: user=User-ID,item=ISBN,rating=Book-Rating "
        "(also time=..., text=...)",
    )
    p.add_argument(
        "--sep",
        default=d.sep,
        help="field separator of a csv file, e.g. ';' or tab (default: sniffed from the header line among "
        ", ; tab |, tab for .tsv)",
    )
    p.add_argument(
        "--drop-missing-ids",
        action="store_true",
        default=d.drop_missing_ids,
        help="drop rows with an empty or NA user / item id (counted and reported) instead of failing",
    )
    p.add_argument("--train", default=d.train, help="your own train file (with --valid and --test)")
    p.add_argument("--valid", default=d.valid)
    p.add_argument("--test", default=d.test)
    p.add_argument("--split", choices=SPLIT_STRATEGIES, default=d.split)
    p.add_argument("--valid-frac", type=float, default=d.valid_frac)
    p.add_argument("--test-frac", type=float, default=d.test_frac)
    p.add_argument("--positive-threshold", type=float, default=d.positive_threshold)
    p.add_argument("--min-interactions", type=int, default=d.min_interactions)
    p.add_argument("--seed", type=int, default=d.seed)
