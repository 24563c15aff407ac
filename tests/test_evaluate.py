"""The evaluator against numbers computed by hand (rules: the module docstring of core.evaluate)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from core.baselines import EASEScorer, PopularityScorer
from core.evaluate import bootstrap_ci, compare, evaluate, evaluate_scorer, score_range
from core.ranking import top_k, top_k_reference


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


def one_dim(scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """U = [[1]], V = scores: the user's score of item i is scores[i]."""
    return np.ones((1, 1), dtype=np.float32), np.asarray(scores, dtype=np.float32)[:, None]


def test_two_relevant_items_by_hand() -> None:
    u, v = one_dim([0.9, 0.8, 0.7, 0.6, 0.5])
    result = evaluate(u, v, csr([[1, 3]], 5), None, ks=(2, 4))
    # top 2 = [0, 1]: one hit at rank 2 of 2 relevant
    assert result.metrics["recall@2"] == pytest.approx(0.5)
    assert result.metrics["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert result.metrics["hitrate@2"] == 1.0
    # top 4: hits at ranks 2 and 4; ideal puts them at ranks 1 and 2
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert result.metrics["ndcg@4"] == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    assert result.metrics["recall@4"] == pytest.approx(1.0)


def test_ties_go_to_the_lower_item_index() -> None:
    u, v = one_dim([0.5, 0.5, 0.5, 0.5])
    truth = csr([[2]], 4)
    assert evaluate(u, v, truth, None, ks=(2,)).metrics["ndcg@2"] == 0.0
    assert evaluate(u, v, truth, None, ks=(3,)).metrics["ndcg@3"] == pytest.approx(1 / math.log2(4))


@pytest.mark.parametrize("k", [1, 7, 50, 299, 300, 500, 600])
def test_top_k_kernel_matches_the_stable_sort_reference(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=(200, 300)).astype(np.float32)  # ~75 ties per value per row
    exclude = sp.random(200, 300, density=0.2, random_state=k, format="csr")
    rows = rng.permutation(200)[:150]
    for excl, r in ((None, None), (exclude, rows)):
        s = scores if r is None else scores[: len(r)]
        idx, top = top_k(s, k, excl, r)
        ref_idx, ref_top = top_k_reference(s, k, excl, r)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(top, ref_top)


def test_top_k_pads_rows_with_fewer_candidates() -> None:
    idx, top = top_k(np.array([[1.0, 3.0, 2.0]], dtype=np.float32), 5, csr([[1]], 3))
    assert idx.tolist() == [[2, 0, -1, -1, -1]]
    assert top[0, :2].tolist() == [2.0, 1.0] and np.all(np.isneginf(top[0, 2:]))


def test_k_larger_than_the_candidates() -> None:
    u, v = one_dim([3.0, 2.0, 1.0])
    # item 0 is a train item (excluded); candidates are items 1 and 2; the relevant item 2 ranks second
    result = evaluate(u, v, csr([[2]], 3), csr([[0]], 3), ks=(10,), keep_top_items=True)
    assert result.metrics["recall@10"] == 1.0
    assert result.metrics["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert result.top_items is not None
    assert result.top_items[0].tolist() == [1, 2] + [-1] * 8  # the excluded item is never recommended


def test_excluded_items_are_never_hits() -> None:
    u, v = one_dim([0.9, 0.1, 0.2])
    # item 0 is both "relevant" and excluded: ranking skips it, so the best it can do is miss
    result = evaluate(u, v, csr([[0]], 3), csr([[0]], 3), ks=(2,))
    assert result.metrics["hitrate@2"] == 0.0


def test_several_users_average_over_users_with_relevant_items() -> None:
    u = np.array([[1.0], [-1.0], [1.0]], dtype=np.float32)
    v = np.array([[3.0], [2.0], [1.0]], dtype=np.float32)
    # user 0 ranks 0,1,2 ; user 1 ranks 2,1,0 ; user 2 has nothing relevant and is not evaluated
    truth = csr([[0, 2], [0], []], 3)
    result = evaluate(u, v, truth, None, ks=(1,))
    assert result.users.tolist() == [0, 1]
    assert result.per_user["recall@1"].tolist() == [0.5, 0.0]
    assert result.metrics["recall@1"] == pytest.approx(0.25)
    assert result.metrics["ndcg@1"] == pytest.approx(0.5)
    assert result.metrics["coverage@1"] == pytest.approx(2 / 3)  # items 0 and 2 recommended


def test_batches_give_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    u = rng.standard_normal((300, 8)).astype(np.float32)
    v = rng.standard_normal((120, 8)).astype(np.float32)
    truth = sp.random(300, 120, density=0.05, random_state=2, format="csr")
    exclude = sp.random(300, 120, density=0.1, random_state=3, format="csr")
    truth = truth - truth.multiply(exclude > 0)
    truth.eliminate_zeros()
    whole = evaluate(u, v, truth, exclude)
    monkeypatch.setattr("core.evaluate._BLOCK_CELLS", 120 * 7)  # 7 users per block
    batched = evaluate(u, v, truth, exclude)
    assert whole.metrics == pytest.approx(batched.metrics)


def test_popularity_counts_the_history_and_ranks_the_same_for_everyone() -> None:
    history = csr([[0, 1], [1], [1, 2]], 4)
    pop = PopularityScorer.fit(history)
    assert pop.counts.tolist() == [1, 3, 1, 0]
    result = evaluate_scorer(pop, csr([[3], [0], [0]], 4), history, ks=(1,), keep_top_items=True)
    # user 0 has seen 0 and 1: best unseen is item 2 (count 1, lower index than item 3)
    assert result.top_items is not None
    assert result.top_items[:, 0].tolist() == [2, 0, 0]
    assert result.metrics["hitrate@1"] == pytest.approx(2 / 3)


def test_ease_recovers_item_to_item_structure() -> None:
    # items 0 and 1 always co-occur, items 2 and 3 always co-occur
    history = csr([[0, 1], [0, 1], [2, 3], [2, 3], [0], [2]], 4)
    ease = EASEScorer.fit(history, l2=0.5)
    scores = ease.score(np.array([4, 5]))
    assert scores[0, 1] > scores[0, 2] and scores[0, 1] > scores[0, 3]
    assert scores[1, 3] > scores[1, 0] and scores[1, 3] > scores[1, 1]
    assert np.allclose(np.diag(ease.weights), 0.0)


def test_bootstrap_interval_and_paired_comparison() -> None:
    rng = np.random.default_rng(4)
    a = rng.random(500)
    ci = bootstrap_ci(a, seed=0)
    assert ci.low < a.mean() < ci.high
    assert ci.high - ci.low < 0.1  # ~ 4 * sd / sqrt(n) = 4 * 0.29 / 22
    base = evaluate(*one_dim([1.0, 0.0]), csr([[0]], 2), None, ks=(1,))
    same = compare(base, base, ["ndcg@1"])["ndcg@1"]
    assert same.difference.value == 0.0 and not same.difference.excludes_zero()


def test_comparison_of_a_clear_win_excludes_zero() -> None:
    n = 200
    u = np.ones((n, 1), dtype=np.float32)
    good, bad = np.array([[2.0], [1.0]], dtype=np.float32), np.array([[1.0], [2.0]], dtype=np.float32)
    truth = csr([[0] if k % 4 else [1] for k in range(n)], 2)  # 75% of users want item 0
    cmp = compare(evaluate(u, good, truth, None, ks=(1,)), evaluate(u, bad, truth, None, ks=(1,)), ["ndcg@1"])
    c = cmp["ndcg@1"]
    assert c.difference.value == pytest.approx(0.5)
    assert c.difference.excludes_zero()
    assert c.improvement_pct.value == pytest.approx(200.0)  # 0.75 vs 0.25


def test_score_range_by_hand() -> None:
    u, v = one_dim([1.0, 2.0, 3.0])
    sr = score_range(u, v, np.array([0]), csr([[0]], 3))  # item 0 seen: scores 2 and 3 remain
    assert (sr.min, sr.max, sr.mean, sr.num_samples) == (2.0, 3.0, 2.5, 2)
    assert sr.std == pytest.approx(0.5)
    assert sr.method == "validation_set"


def test_bad_arguments_are_named() -> None:
    u, v = one_dim([1.0, 2.0])
    with pytest.raises(ValueError, match="ks"):
        evaluate(u, v, csr([[0]], 2), None, ks=(0,))
    with pytest.raises(ValueError, match="at least one relevant"):
        evaluate(u, v, csr([[]], 2), None, users=np.array([0]))
