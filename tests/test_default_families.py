"""The data-driven defaults beat popularity on every family of log shapes the sweep (``bench/shapes.py``)
covers where there is taste to learn: a small planted log of each, refit on train + validation and tested
once, as ``bench/shapes.py`` scores a default. The bar is the issue's: at least 1.2x popularity's test
NDCG@10, with the paired bootstrap interval above popularity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.final import final_test
from core.params import default_params
from core.planted import make_planted
from core.prepare import DataOptions, Prepared

#: One small log per family: ``make_planted`` arguments (each log 9k-37k interactions after segmentation).
FAMILIES: dict[str, dict[str, Any]] = {
    # Last.fm-like: long histories over a large catalogue, where the former BPR rule sat near its 0.1 cap
    "long-histories-large-catalogue": {
        "n_users": 1500, "n_items": 12_000, "rank": 16, "density": 0.003, "popularity_skew": 1.1, "seed": 4,
    },
    "dense-small-catalogue": {"n_users": 1000, "n_items": 800, "rank": 12, "density": 0.06, "seed": 3},
    "short-histories": {"n_users": 8000, "n_items": 1500, "rank": 8, "density": 0.002, "seed": 6},
    "few-popular-items": {
        "n_users": 4000, "n_items": 150, "rank": 4, "density": 0.03, "popularity_skew": 1.2, "seed": 7,
    },
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    csv: Path = tmp_path_factory.mktemp("family") / f"{request.param}.csv"
    make_planted(**FAMILIES[request.param]).to_frame().to_csv(csv, index=False)
    return DataOptions(data=str(csv)).prepare()


@pytest.mark.parametrize("model", ["als", "bpr"])
def test_the_default_beats_popularity_by_a_fifth_on_each_family(family: Prepared, model: str) -> None:
    params = {**default_params(model, None, family), "random_state": 42}
    result = final_test(family, model, params, ks=(10,))
    model_ndcg = result.test.metrics["ndcg@10"]
    popular_ndcg = result.popularity.metrics["ndcg@10"]
    assert model_ndcg >= 1.2 * popular_ndcg, (model, params, model_ndcg, popular_ndcg)
    assert result.comparison["ndcg@10"].improvement_pct.low > 0, result.comparison["ndcg@10"]
