"""The factors a BPR fit starts from (both trainers): seeded Normal(0, std), or item factors projected from
given ones (:func:`core.initialization.project_item_factors`)."""

from __future__ import annotations

import numpy as np

from core.errors import ConfigError, DataError
from core.initialization import project_item_factors

PROJECTIONS = ("svd", "pca")


def initial_factors(
    n_users: int,
    n_items: int,
    factors: int,
    *,
    std: float,
    seed: int,
    item_factors_init: np.ndarray | None = None,
    projection: str = "svd",
) -> tuple[np.ndarray, np.ndarray]:
    """Normal(0, std) float32 factors; item factors projected from ``item_factors_init`` when given."""
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(0.0, std, (n_users, factors)).astype(np.float32)
    item_factors = rng.normal(0.0, std, (n_items, factors)).astype(np.float32)
    if item_factors_init is not None:
        if len(item_factors_init) != n_items:
            raise DataError(
                f"item_factors_init has {len(item_factors_init)} rows but there are {n_items} items"
            )
        if projection not in PROJECTIONS:
            raise ConfigError(f"init_projection must be one of {PROJECTIONS}, but got {projection=}.")
        item_factors, _ = project_item_factors(item_factors_init, factors, method=projection, std=std)  # type: ignore[arg-type]
    return user_factors, item_factors
