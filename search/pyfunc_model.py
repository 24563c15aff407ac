"""The served model, logged with MLflow's models-from-code: a run folder behind ``mlflow.pyfunc``.

Input: a DataFrame with ``user_id`` and optionally ``k`` (default 10) per row. Output: one row per
recommendation, ``user_id, rank, item_id, score, cold_start``, in the ORIGINAL ids of the training data.
Unknown users get the popularity list with ``cold_start = True``;
``params={"unknown": "error"}`` refuses them.
Seen items (everything in the run folder's split) are never recommended.

This file is executed by MLflow when the model is loaded; ``core`` travels with the model as code.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from core.recommend import Recommender


class CFRecommenderModel(PythonModel):
    def load_context(self, context: Any) -> None:

        self.recommender = Recommender.from_run(context.artifacts["run"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        if "user_id" not in frame.columns:
            raise ValueError(f"input needs a user_id column; got {list(frame.columns)}")
        params = params or {}
        default_k = int(params.get("k", 10))
        ks = (
            frame["k"].fillna(default_k).astype(int)
            if "k" in frame.columns
            else pd.Series(default_k, frame.index)
        )
        unknown = params.get("unknown", "popular")
        rows = []
        for k, group in frame.groupby(ks, sort=False):
            recs = self.recommender.recommend_batch(list(group["user_id"]), int(k), unknown=unknown)
            for rec in recs:
                for rank, (item, score) in enumerate(zip(rec.item_ids, rec.scores, strict=True), start=1):
                    rows.append((rec.user_id, rank, item, score, rec.cold_start))
        return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "cold_start"])


mlflow.models.set_model(CFRecommenderModel())
