"""The one interface every trained model offers (ALS, the kernel BPR, the torch BPR), so that fitting,
cutting back, tracking and saving read a model's members instead of probing for them.

A model is :class:`Model` once fitted: the learned state (``*_``) exists from :meth:`Model.fit` on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.callbacks import Callback, TrainingHistory
from core.recommend import Recommendation, Recommender


@runtime_checkable
class Model(Protocol):
    """A fitted matrix-factorisation recommender: scores are ``user_factors_ @ item_factors_.T``.

    Run metadata a model does not measure is None: the kernel BPR keeps no ``fit_seconds_``, only ALS counts
    ``n_iterations_`` and ``peak_rss_mb_``. ``stopped_early_`` is ALS's stop message (None: ran to the end)
    and the BPR trainers' bool (their message is ``stop_reason_``), as run folders have always recorded it.
    ``best_epoch_`` is the step whose factors the model ended on when a monitor restored its best.
    """

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    history_: TrainingHistory
    fit_seconds_: float | None
    peak_rss_mb_: float | None
    n_iterations_: int | None
    stopped_early_: bool | str | None
    best_epoch_: int | None

    def fit(
        self, user_items: sp.csr_matrix, *, callback: Callback | Sequence[Callback] | None = None
    ) -> Self:
        """Train on a users x items matrix; ``callback`` runs after every step with its
        :class:`~core.callbacks.TrainingStep` (steps 1, 2, ...) and may raise ``StopTraining``."""
        ...

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments: ``type(model)(**model.get_params())`` is the same configuration."""
        ...

    def with_steps(self, steps: int) -> Self:
        """A copy whose step parameter (ALS ``iterations``, BPR ``epochs``) is ``steps``, every other setting
        kept so that its fit takes the same first steps (fitted state is shared, not copied)."""
        ...

    def recommend(
        self, users: Sequence[int], user_items: sp.csr_matrix | None = None, k: int = 10
    ) -> list[Recommendation]:
        """Top ``k`` item indices of each user (a row index), the items of its ``user_items`` row left out."""
        ...


def recommend_from_factors(
    model: Model, users: Sequence[int], user_items: sp.csr_matrix | None, k: int
) -> list[Recommendation]:
    """:meth:`Model.recommend` for any model: :class:`core.recommend.Recommender` over its factors, users and
    items named by their indices, so a model ranks exactly as its run folder serves."""
    n_users, n_items = model.user_factors_.shape[0], model.item_factors_.shape[0]
    seen = None if user_items is None else sp.csr_matrix(user_items)
    served = Recommender(
        model.user_factors_, model.item_factors_, pd.RangeIndex(n_users), pd.RangeIndex(n_items), seen
    )
    return served.recommend_batch(list(users), k, filter_seen=seen is not None)
