"""The popularity blend (``core.blend``): scores are the model's plus a weighted log count, both scaled by
their spread, carried as one more factor column; the weight is chosen on validation, and the model alone is
kept wherever popularity does not help."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from core.baselines import PopularityScorer
from core.blend import (
    BLEND_WEIGHTS,
    CHOOSE_MAX_USERS,
    POPULARITY_ONLY,
    blend,
    choose_weight,
    describe,
    log_counts,
    score_spread,
)
from core.evaluate import evaluate, evaluate_scorer
from core.final import choose_blend, final_test
from core.fit import fit_model
from core.params import default_params
from core.planted import make_planted
from core.prepare import DataOptions, Prepared
from core.train import main as train_main


def _matrix(rows: list[int], cols: list[int], shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def test_the_log_count_is_how_many_users_have_the_item() -> None:
    history = _matrix([0, 1, 2, 0], [0, 0, 0, 2], (3, 3))
    np.testing.assert_allclose(log_counts(history), np.log1p([3.0, 0.0, 1.0]))


def test_blended_factors_score_the_model_plus_the_weighted_popularity_both_scaled() -> None:
    u = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    v = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    history = _matrix([0, 1, 1], [0, 0, 1], (2, 3))  # counts 2, 1, 0
    bu, bv, b = blend(u, v, history, 2.0)
    scores = u @ v.T  # [[1, 2, 0], [2, 0, 6]]: sd over every user and item
    sd = float(np.std([1, 2, 0, 2, 0, 6]))
    pop = np.log1p([2.0, 1.0, 0.0])
    expected = scores / sd + 2.0 * pop / pop.std()
    assert bu.shape == (2, 3) and bv.shape == (3, 3)  # one more column
    np.testing.assert_allclose(bu @ bv.T, expected, rtol=1e-5)
    assert b.weight == 2.0 and b.score_sd == pytest.approx(sd) and b.popularity_sd == pytest.approx(pop.std())


def test_weight_zero_leaves_the_factors_as_they_are() -> None:
    u, v = np.ones((4, 2), np.float32), np.arange(6, dtype=np.float32).reshape(3, 2)
    bu, bv, b = blend(u, v, _matrix([0], [1], (4, 3)), 0.0)
    assert bu is u and bv is v and b.weight == 0.0


def test_the_largest_weight_ranks_exactly_as_popularity_does_ties_included() -> None:
    rng = np.random.default_rng(3)
    history = sp.csr_matrix((rng.random((60, 30)) < 0.2).astype(np.float32))  # many tied counts
    truth = sp.csr_matrix((rng.random((60, 30)) < 0.1).astype(np.float32))
    u, v = rng.normal(size=(60, 5)), rng.normal(size=(30, 5))
    bu, bv, b = blend(u, v, history, POPULARITY_ONLY)
    ranks = np.argsort(-(bu @ bv.T), axis=1, kind="stable")
    counts = np.diff(history.tocsc().indptr)
    np.testing.assert_array_equal(ranks, np.tile(np.argsort(-counts, kind="stable"), (60, 1)))
    model = evaluate(bu, bv, truth, history, ks=(10,), show_progress=False).metrics["ndcg@10"]
    popularity = evaluate_scorer(PopularityScorer.fit(history), truth, history, ks=(10,), show_progress=False)
    assert model == popularity.metrics["ndcg@10"]
    assert b.weight == POPULARITY_ONLY and max(BLEND_WEIGHTS) == POPULARITY_ONLY
    assert describe(POPULARITY_ONLY) == "popularity alone" and describe(0.5) == "weight 0.5"


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_a_weight_that_is_not_a_non_negative_number_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="popularity weight"):
        blend(np.ones((2, 2)), np.ones((3, 2)), _matrix([0], [1], (2, 3)), weight)


def test_a_model_of_constant_scores_has_spread_one() -> None:
    assert score_spread(np.ones((3, 2)), np.ones((4, 2))) == 1.0


def _popular_truth(
    n_users: int = 300, n_items: int = 40, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """History and validation truth both drawn from one steep popularity curve, nothing else."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 1.5
    p /= p.sum()
    rows, cols, vrows, vcols = [], [], [], []
    for user in range(n_users):
        items = rng.choice(n_items, size=6, replace=False, p=p)
        rows += [user] * 5
        cols += list(items[:5])
        vrows.append(user)
        vcols.append(items[5])
    shape = (n_users, n_items)
    return _matrix(rows, cols, shape), _matrix(vrows, vcols, shape)


def test_validation_chooses_popularity_for_a_model_that_learned_nothing() -> None:
    history, truth = _popular_truth()
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(300, 4)), rng.normal(size=(40, 4))  # random factors: a random ranking
    choice = choose_weight(u, v, truth, history)
    assert choice.weight > 0
    assert choice.gain() > 0.05
    assert set(choice.values) == set(BLEND_WEIGHTS)


def test_validation_keeps_the_model_s_ranking_where_it_knows_better_than_popularity() -> None:
    history, _ = _popular_truth()
    n_users, n_items = history.shape
    # each user's validation item is one of the least popular, and the model scores exactly that item first
    rare = np.argsort(np.diff(history.tocsc().indptr))[: n_users // 30 + 1]
    wanted = rare[np.arange(n_users) % len(rare)]
    truth = _matrix(list(range(n_users)), list(wanted), (n_users, n_items))
    u = np.zeros((n_users, n_items), np.float32)
    u[np.arange(n_users), wanted] = 1.0
    choice = choose_weight(u, np.eye(n_items, dtype=np.float32), truth, history)
    assert choice.values[choice.weight] == choice.values[0.0] == max(choice.values.values())
    assert choice.values[0.0] > choice.values[POPULARITY_ONLY] + 0.5


def test_weights_validation_cannot_tell_apart_keep_the_most_popularity() -> None:
    # one item per user to find, and it is the only one not in the history: every weight ranks it first
    history = _matrix([0, 0, 1, 1], [0, 1, 0, 2], (2, 3))
    truth = _matrix([0, 1], [2, 1], (2, 3))
    choice = choose_weight(np.ones((2, 2)), np.ones((3, 2)), truth, history)
    assert len(set(choice.values.values())) == 1
    assert choice.weight == max(BLEND_WEIGHTS)


def test_a_model_better_by_less_than_its_noise_is_blended_with_popularity() -> None:
    """Half the users' validation item is the model's first pick, the other half's the most popular item:
    the model alone wins on half the users, popularity on the other half, and neither clearly."""
    history, _ = _popular_truth(n_users=200)
    n_users, n_items = history.shape
    popular = int(np.argmax(np.diff(history.tocsc().indptr)))
    seen = history.toarray() > 0
    own = np.array(
        [int(np.flatnonzero(~seen[u] & (np.arange(n_items) != popular))[-1]) for u in range(n_users)]
    )
    half = np.arange(n_users) % 2 == 0
    wanted = np.where(half | seen[:, popular], own, popular)
    truth = _matrix(list(range(n_users)), list(wanted), (n_users, n_items))
    u = np.zeros((n_users, n_items), np.float32)
    u[np.arange(n_users), own] = 1.0
    choice = choose_weight(u, np.eye(n_items, dtype=np.float32), truth, history)
    best = max(choice.values.values())
    assert choice.values[choice.weight] <= best
    assert choice.weight > 0


def test_the_weights_must_include_the_model_alone() -> None:
    history, truth = _popular_truth(n_users=20)
    with pytest.raises(ValueError, match="include 0"):
        choose_weight(np.ones((20, 2)), np.ones((40, 2)), truth, history, weights=(1.0, 2.0))


def test_at_most_a_fixed_sample_of_users_chooses() -> None:
    history, truth = _popular_truth(n_users=CHOOSE_MAX_USERS + 300, n_items=30)
    u, v = np.ones((history.shape[0], 2)), np.ones((30, 2))
    first = choose_weight(u, v, truth, history)
    assert first.users == CHOOSE_MAX_USERS
    assert choose_weight(u, v, truth, history).values == first.values  # the same sample each time


# ---------------------------------------------------------------------------------------------- on logs
#: Logs with little taste to learn beyond popularity (the sweep's weak shapes): few items and steep popularity
#: (``corner-few-items``), and a sparse log over a large catalogue (``s05``). Before the blend both defaults
#: ranked significantly below popularity on them.
WEAK: dict[str, dict[str, Any]] = {
    "few-items-steep-popularity": {
        "n_users": 5000, "n_items": 300, "rank": 4, "density": 0.0133, "popularity_skew": 1.5, "signal": 0.5,
        "seed": 11,
    },
    "sparse-large-catalogue": {
        "n_users": 2300, "n_items": 15_000, "rank": 5, "density": 0.00018, "popularity_skew": 0.52,
        "rating_noise": 0.975, "activity_sigma": 1.5, "signal": 1.38, "positive_share": 0.39, "seed": 12,
    },
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(WEAK))
def weak(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    csv: Path = tmp_path_factory.mktemp("weak") / f"{request.param}.csv"
    make_planted(**WEAK[request.param]).to_frame().to_csv(csv, index=False)
    return DataOptions(data=str(csv)).prepare()


@pytest.mark.parametrize("model", ["als", "bpr"])
def test_the_default_with_its_blend_is_not_below_popularity_where_there_is_little_taste(
    weak: Prepared, model: str
) -> None:
    params = {**default_params(model, None, weak), "random_state": 42}
    choice = choose_blend(weak, fit_model(weak, model, params))
    result = final_test(weak, model, params, ks=(10,), popularity_weight=choice.weight)
    gap = result.comparison["ndcg@10"].difference
    assert gap.high >= 0, (model, choice, result.comparison["ndcg@10"])  # not significantly below popularity
    assert result.blend is not None and result.blend.weight == choice.weight > 0


def test_the_command_records_the_blend_and_serves_it(weak: Prepared, tmp_path: Path) -> None:
    from core.artifacts import load_run

    out = tmp_path / "run"
    data = weak.data.source
    assert train_main(["--model", "als", "--data", data, "--out", str(out), "--no-progress"]) == 0
    run = load_run(out)
    chosen = run.metadata["popularity_blend"]
    assert chosen["weight"] == chosen["validation"]["chosen"] > 0
    assert run.item_factors.shape[1] == run.params["factors"] + 1  # the blend's column


def test_the_command_without_the_blend_serves_the_model_alone(weak: Prepared, tmp_path: Path) -> None:
    from core.artifacts import load_run

    out = tmp_path / "run"
    argv = ["--model", "als", "--data", weak.data.source, "--out", str(out), "--no-progress"]
    assert train_main([*argv, "--popularity-weight", "0"]) == 0
    run = load_run(out)
    assert run.metadata["popularity_blend"]["weight"] == 0.0
    assert "validation" not in run.metadata["popularity_blend"]
    assert run.item_factors.shape[1] == run.params["factors"]


@pytest.mark.parametrize("text", ["-1", "lots", "none", "nan"])
def test_a_bad_popularity_weight_is_refused_before_any_data_is_read(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.csv"
    assert train_main(["--data", str(missing), "--popularity-weight", text, "--no-progress"]) == 2
    assert "--popularity-weight must be auto, a number >= 0 or inf" in capsys.readouterr().err
