"""The one in-memory type for interaction logs.

Every loader produces an :class:`Interactions`; every later step (confidence, segmentation, split, training,
evaluation) reads one. Internal indices are contiguous ``0..n-1`` so that they index rows of the factor
matrices directly; the original ids are kept in two pandas indexes for the way back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.errors import DataError

Kind = Literal["rating", "count"]

#: Columns of the canonical frame, in order. Only ``user_id``, ``item_id`` and ``rating`` are required.
CANONICAL_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "text", "has_image")
#: A rating at or above this counts as liked (a positive), unless the caller says otherwise.
POSITIVE_THRESHOLD = 4.0
#: The dtypes ratings (and counts) and timestamps are stored in: values are checked against these, not
#: against the float64 they are read as, so that a value that passes is the value stored.
RATING_DTYPE: type[np.floating] = np.float32
TIME_DTYPE: type[np.integer] = np.int64


def overflows(values: np.ndarray, dtype: type[np.floating] | type[np.integer]) -> np.ndarray:
    """Which finite values ``dtype`` cannot hold: a float dtype would store them as inf, an integer one (their
    floor) would wrap around."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if issubclass(dtype, np.integer):
        low = float(np.iinfo(dtype).min)  # -2**63 for int64, exactly; -low is the first value too large
        return finite & ((v < low) | (v >= -low))
    with np.errstate(over="ignore"):
        return finite & np.isinf(v.astype(dtype))


def rounds_to_zero(values: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    """Which nonzero values the float ``dtype`` stores as 0 (below its smallest subnormal)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        return np.isfinite(v) & (v != 0) & (v.astype(dtype) == 0)


def largest(dtype: type[np.floating] | type[np.integer]) -> float:
    """The largest value ``dtype`` holds (what messages name: 3.4e+38 for float32)."""
    return float(np.iinfo(dtype).max if issubclass(dtype, np.integer) else np.finfo(dtype).max)


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interaction log with contiguous user / item indices and two-way id mappings.

    ``users[k]`` is the original id of internal user ``k``; ``users.get_loc(uid)`` goes the other way
    (likewise ``items``). Several :class:`Interactions` may share one index space (the parts of a split do),
    which is what lets factor matrices trained on one part score the others.
    """

    users: pd.Index
    items: pd.Index
    user_idx: np.ndarray  # int32, one per interaction
    item_idx: np.ndarray  # int32
    rating: np.ndarray  # float32: explicit rating, or play count when kind == "count"
    timestamp: np.ndarray | None = None  # int64 unix seconds
    text: np.ndarray | None = None  # object array of str ("" when none)
    has_image: np.ndarray | None = None  # bool
    item_titles: np.ndarray | None = None  # object array, one per item index
    line: np.ndarray | None = None  # int64: where each row came from in its file (for error messages)
    line_unit: str = "line"  # what ``line`` counts: "line", or "record" for Parquet
    kind: Kind = "rating"
    source: str = "<memory>"
    rating_scale: tuple[float, float] | None = None
    meta: dict[str, object] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        kind: Kind = "rating",
        source: str = "<memory>",
        rating_scale: tuple[float, float] | None = None,
        item_titles: dict[object, str] | None = None,
        users: pd.Index | None = None,
        items: pd.Index | None = None,
        line: np.ndarray | None = None,
        line_unit: str = "line",
    ) -> Interactions:
        """Build from a validated canonical frame (see :data:`CANONICAL_COLUMNS`).

        Ids are mapped in order of first appearance unless ``users`` / ``items`` give the index space
        (used to put a user's own ``--valid`` / ``--test`` files in the train file's index space).
        """
        if len(frame) == 0:
            raise DataError("no interactions left", source=source)
        uid = frame["user_id"].to_numpy()
        iid = frame["item_id"].to_numpy()
        if users is None:
            users = pd.Index(pd.unique(uid), name="user_id")
        if items is None:
            items = pd.Index(pd.unique(iid), name="item_id")
        u = users.get_indexer(uid)
        i = items.get_indexer(iid)
        for name, codes, values in (("user_id", u, uid), ("item_id", i, iid)):
            missing = np.flatnonzero(codes < 0)
            if missing.size:
                pos = int(missing[0])
                raise DataError(
                    f"unknown {name} {values[pos]!r}: it does not occur in the training data",
                    source=source,
                    row=int(line[pos]) if line is not None else pos + 1,
                    column=name,
                    unit=line_unit if line is not None else "row",
                )
        titles = None
        if item_titles:
            titles = np.array([item_titles.get(x, "") for x in items], dtype=object)
        for col, dtype in (("rating", RATING_DTYPE), ("timestamp", TIME_DTYPE)):
            if col in frame.columns:
                _check_stored(frame[col], col, dtype, source, line, line_unit)

        def opt(col: str, dtype: object) -> np.ndarray | None:
            return frame[col].to_numpy(dtype=dtype) if col in frame.columns else None

        return cls(
            users=users,
            items=items,
            user_idx=u.astype(np.int32),
            item_idx=i.astype(np.int32),
            rating=frame["rating"].to_numpy(dtype=RATING_DTYPE),
            timestamp=opt("timestamp", TIME_DTYPE),
            text=opt("text", object),
            has_image=opt("has_image", bool),
            item_titles=titles,
            line=None if line is None else np.asarray(line, dtype=np.int64),
            line_unit=line_unit,
            kind=kind,
            source=source,
            rating_scale=rating_scale,
        )

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return int(self.user_idx.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    # ------------------------------------------------------------------ views
    def subset(self, mask_or_rows: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an index array, in the same index space."""

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[mask_or_rows]

        return replace(
            self,
            user_idx=self.user_idx[mask_or_rows],
            item_idx=self.item_idx[mask_or_rows],
            rating=self.rating[mask_or_rows],
            timestamp=take(self.timestamp),
            text=take(self.text),
            has_image=take(self.has_image),
            line=take(self.line),
            meta=dict(self.meta),
        )

    def concat(self, other: Interactions) -> Interactions:
        """Rows of both parts (same index space), e.g. train + validation for the final refit."""
        if other.users is not self.users and not other.users.equals(self.users):
            raise ValueError("cannot concatenate Interactions from different user index spaces")
        if other.items is not self.items and not other.items.equals(self.items):
            raise ValueError("cannot concatenate Interactions from different item index spaces")

        def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return replace(
            self,
            user_idx=np.concatenate([self.user_idx, other.user_idx]),
            item_idx=np.concatenate([self.item_idx, other.item_idx]),
            rating=np.concatenate([self.rating, other.rating]),
            timestamp=cat(self.timestamp, other.timestamp),
            text=cat(self.text, other.text),
            has_image=cat(self.has_image, other.has_image),
            line=cat(self.line, other.line),
            meta=dict(self.meta),
        )

    def reindex(self, users: np.ndarray, items: np.ndarray | None = None) -> Interactions:
        """Keep only interactions of the given user (and item) indices, and renumber them contiguously.

        Used by segmentation: cold-start users leave the index space of the trainable part.
        """
        keep_users = np.zeros(self.n_users, dtype=bool)
        keep_users[users] = True
        keep_items = np.ones(self.n_items, dtype=bool)
        if items is not None:
            keep_items[:] = False
            keep_items[items] = True
        rows = keep_users[self.user_idx] & keep_items[self.item_idx]
        part = self.subset(rows)
        new_u = np.full(self.n_users, -1, dtype=np.int32)
        new_u[keep_users] = np.arange(int(keep_users.sum()), dtype=np.int32)
        new_i = np.full(self.n_items, -1, dtype=np.int32)
        new_i[keep_items] = np.arange(int(keep_items.sum()), dtype=np.int32)
        titles = None if self.item_titles is None else self.item_titles[keep_items]
        return replace(
            part,
            users=self.users[keep_users],
            items=self.items[keep_items],
            user_idx=new_u[part.user_idx],
            item_idx=new_i[part.item_idx],
            item_titles=titles,
        )

    def to_csr(self, values: np.ndarray | None = None, dtype: type = np.float32) -> sp.csr_matrix:
        """Users x items sparse matrix; ``values`` defaults to ones. Duplicate cells are summed."""
        data: np.ndarray = (
            np.ones(len(self), dtype=dtype) if values is None else np.asarray(values, dtype=dtype)
        )
        m = sp.csr_matrix((data, (self.user_idx, self.item_idx)), shape=self.shape, dtype=dtype)
        m.sum_duplicates()
        m.sort_indices()
        return m

    def to_frame(self) -> pd.DataFrame:
        """Canonical frame with ORIGINAL ids (what artifacts store, so a run folder stands alone)."""
        out: dict[str, object] = {
            "user_id": self.users[self.user_idx].to_numpy(),
            "item_id": self.items[self.item_idx].to_numpy(),
            "rating": self.rating,
        }
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        if self.text is not None:
            out["text"] = self.text
        if self.has_image is not None:
            out["has_image"] = self.has_image
        return pd.DataFrame(out)

    def user_index(self, user_ids: object) -> np.ndarray:
        """Internal indices of original user ids; a clear error for ids the model never saw."""
        ids = np.atleast_1d(np.asarray(user_ids, dtype=object))
        codes = self.users.get_indexer(ids)
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            raise DataError(f"unknown user id {ids[bad[0]]!r} (not in the training data)", source=self.source)
        return codes.astype(np.int32)

    def positive_mask(self, threshold: float = POSITIVE_THRESHOLD) -> np.ndarray:
        """Which interactions count as positive: rating >= threshold, or every play for count data."""
        if self.kind == "count":
            return self.rating > 0
        return self.rating >= threshold

    def data_version_hash(self) -> str:
        """Stable short hash of the content (ids, ratings, times), independent of row order.

        The value is that of :func:`data_version_hash_reference` (rows as text ids sorted by user, item, time,
        rating); it is computed over codes: ids become text once per distinct id, not once per interaction.
        """
        u_text, i_text = self.users.astype(str), self.items.astype(str)
        if not (u_text.is_unique and i_text.is_unique):  # two ids with one text form (1 and "1"): rows decide
            return data_version_hash_reference(self)
        # one int64 key per row orders rows as (user text, item text) do
        pair = _text_ranks(u_text)[self.user_idx] * len(i_text) + _text_ranks(i_text)[self.item_idx]
        time = self.timestamp if self.timestamp is not None else np.zeros(len(self), dtype=np.int64)
        order = np.argsort(pair)
        ordered = pair[order]
        if np.any(ordered[1:] == ordered[:-1]):  # a pair occurs twice: time, then rating, orders its rows
            order = np.lexsort((self.rating, time, pair))
        # a categorical hashes as its values do, so each distinct id's text is hashed once
        frame = pd.DataFrame(
            {
                "u": pd.Categorical.from_codes(self.user_idx[order], dtype=pd.CategoricalDtype(u_text)),
                "i": pd.Categorical.from_codes(self.item_idx[order], dtype=pd.CategoricalDtype(i_text)),
                "r": self.rating[order],
                "t": time[order],
            }
        )
        h = hashlib.sha256()
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        """Counts a report prints: sizes, density, rating distribution."""
        n = len(self)
        out: dict[str, object] = {
            "source": self.source,
            "kind": self.kind,
            "interactions": n,
            "users": self.n_users,
            "items": self.n_items,
            "density": n / max(1, self.n_users * self.n_items),
            "interactions_per_user": n / max(1, self.n_users),
            "has_timestamp": self.timestamp is not None,
            "has_text": self.text is not None,
        }
        if "missing_ids_dropped" in self.meta:  # only data read with drop_missing_ids says it
            out["missing_ids_dropped"] = self.meta["missing_ids_dropped"]
        if self.kind == "rating" and n:
            values, counts = np.unique(self.rating, return_counts=True)
            out["rating_share"] = {
                f"{v:g}": round(float(c) / n, 4) for v, c in zip(values, counts, strict=True)
            }
        return out


def _check_stored(
    values: pd.Series,
    col: str,
    dtype: type[np.floating] | type[np.integer],
    source: str,
    line: np.ndarray | None,
    unit: str,
) -> None:
    """A frame built in memory gets the check a file's rows get (:mod:`core.data.validate`): no value that
    its stored dtype would turn into another."""
    if not pd.api.types.is_float_dtype(values.dtype):
        return  # integers and booleans fit both dtypes (beyond int64 pandas would not hold them)
    bad = np.flatnonzero(overflows(values.to_numpy(dtype=np.float64), dtype))
    if bad.size:
        pos = int(bad[0])
        raise DataError(
            f"{col} {values.iat[pos]:g} is too large for {np.dtype(dtype).name} (max {largest(dtype):.2g})",
            source=source,
            row=int(line[pos]) if line is not None else pos + 1,
            column=col,
            unit=unit if line is not None else "row",
        )


def _text_ranks(text: pd.Index) -> np.ndarray:
    """Position of each (distinct) text in sorted order: sorting rows by it sorts them by the text."""
    ranks = np.empty(len(text), dtype=np.int64)
    ranks[np.argsort(text.to_numpy(dtype=object), kind="stable")] = np.arange(len(text))
    return ranks


def data_version_hash_reference(data: Interactions) -> str:
    """The definition of :meth:`Interactions.data_version_hash`, one text id per row (the test oracle)."""
    frame = pd.DataFrame(
        {
            "u": data.users[data.user_idx].astype(str),
            "i": data.items[data.item_idx].astype(str),
            "r": data.rating,
            "t": data.timestamp if data.timestamp is not None else 0,
        }
    ).sort_values(["u", "i", "t", "r"], kind="stable")
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
