"""Serving: top-k items for original user ids from U, V and the id mappings, seen items filtered.

The batch path scores many users with one matrix product and the evaluator's exact :func:`top_k`, so what a
run folder serves is what it was evaluated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.artifacts import load_run
from core.errors import DataError
from core.ranking import batch_rows, top_k


@dataclass(frozen=True)
class Recommendation:
    user_id: object
    item_ids: list[object]
    scores: list[float]
    filtered_count: int  # seen items removed from the candidates
    cold_start: bool = False  # served from popularity because the user is unknown


class Recommender:
    """Top-k recommendations over factor matrices with original ids in and out."""

    def __init__(
        self,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        users: pd.Index,
        items: pd.Index,
        seen: sp.csr_matrix | None = None,
        popularity: np.ndarray | None = None,
    ) -> None:
        if user_factors.shape[0] != len(users) or item_factors.shape[0] != len(items):
            raise ValueError("factor rows must match the id mappings")
        self.user_factors = user_factors
        self.item_factors = item_factors
        self.users = users
        self.items = items
        self.seen = seen if seen is not None else sp.csr_matrix((len(users), len(items)), dtype=np.float32)
        self.popularity = (
            popularity
            if popularity is not None
            else np.asarray(self.seen.sum(axis=0)).ravel().astype(np.float32)
        )

    @classmethod
    def from_run(cls, path: str | Path) -> Recommender:
        """Serve a run folder: seen = every train / validation / test interaction stored in it."""
        run = load_run(path)
        seen = run.matrix("train", "valid", "test")
        return cls(run.user_factors, run.item_factors, run.users, run.items, seen)

    def _lookup(self, user_ids: Sequence[object]) -> np.ndarray:
        """Index rows of ``user_ids``; "196" finds user 196 and 196 finds "196" (ids typed by hand)."""
        codes = self.users.get_indexer(pd.Index(list(user_ids), dtype=object))
        numeric = pd.api.types.is_integer_dtype(self.users)
        for pos in np.flatnonzero(codes < 0).tolist():
            uid = user_ids[pos]
            try:
                alt = int(uid) if numeric else str(uid)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                continue
            codes[pos] = self.users.get_indexer([alt])[0]
        return codes

    def _top_k(
        self, rows: np.ndarray, k: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of many users, scored a bounded batch at a time (never a users x items block)."""
        if exclude is not None and not exclude.has_sorted_indices:
            exclude = exclude.sorted_indices()
        top = np.empty((len(rows), k), dtype=np.int64)
        top_scores = np.empty((len(rows), k), dtype=np.float32)
        block = batch_rows(len(self.items))
        for start in range(0, len(rows), block):
            batch = rows[start : start + block]
            scores = np.asarray(self.user_factors[batch] @ self.item_factors.T, dtype=np.float32)
            top[start : start + len(batch)], top_scores[start : start + len(batch)] = top_k(
                scores, k, exclude, batch
            )
        return top, top_scores

    def recommend_batch(
        self,
        user_ids: Sequence[object],
        k: int = 10,
        *,
        filter_seen: bool = True,
        unknown: Literal["error", "popular"] = "error",
    ) -> list[Recommendation]:
        """Recommendations for many users at once; unknown users raise, or get the popularity list."""
        if k < 1:
            raise ValueError(f"k must be >= 1, but got {k=}.")
        codes = self._lookup(user_ids)
        unknown_pos = np.flatnonzero(codes < 0)
        if unknown_pos.size and unknown == "error":
            raise DataError(
                f"unknown user id {user_ids[int(unknown_pos[0])]!r}: not in the training data "
                "(pass unknown='popular' for a cold-start fallback)"
            )
        known = np.flatnonzero(codes >= 0)
        out: list[Recommendation | None] = [None] * len(codes)
        if known.size:
            rows = codes[known]
            exclude = self.seen if filter_seen else None
            filtered = np.diff(self.seen.indptr)[rows] if filter_seen else np.zeros(len(rows), dtype=np.int64)
            top, top_scores = self._top_k(rows, k, exclude)
            for j, pos in enumerate(known.tolist()):
                ok = top[j] >= 0
                out[pos] = Recommendation(
                    user_ids[pos],
                    self.items[top[j][ok]].tolist(),
                    top_scores[j][ok].astype(float).tolist(),
                    int(filtered[j]),
                )
        if unknown_pos.size:
            pop_top, pop_scores = top_k(self.popularity[None, :], k)
            keep = pop_top[0] >= 0
            for pos in unknown_pos.tolist():
                out[pos] = Recommendation(
                    user_ids[pos],
                    self.items[pop_top[0][keep]].tolist(),
                    pop_scores[0][keep].astype(float).tolist(),
                    0,
                    cold_start=True,
                )
        return [r for r in out if r is not None]

    def recommend(
        self,
        user_id: object,
        k: int = 10,
        *,
        filter_seen: bool = True,
        unknown: Literal["error", "popular"] = "error",
    ) -> Recommendation:
        return self.recommend_batch([user_id], k, filter_seen=filter_seen, unknown=unknown)[0]
