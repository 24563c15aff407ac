"""EASE (core.baselines) against the textbook formula ``B = I - P / diag(P)``, ``P = (X^T X + lambda I)^-1``
by a dense ``np.linalg.inv``, the way it was computed before: the fast paths must give the same weights,
scores, rankings and chosen lambda. Rules: the module docstring of core.baselines."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from core.baselines import EASE_L2_GRID, EASEGram, EASEScorer, climb, tune_ease
from core.errors import ConfigError
from core.evaluate import evaluate_scorer
from core.ranking import top_k


# ---------------------------------------------------------------------------------------------- the reference
def direct_weights(user_items: sp.csr_matrix, l2: float) -> np.ndarray:
    """Steck's closed form, float64, one dense inverse per lambda."""
    x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    x.data[:] = 1.0
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


@dataclass(frozen=True)
class DirectScorer:
    x: sp.csr_matrix
    b: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.b.shape[0])

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.x[users] @ self.b, dtype=np.float32)


def direct_tune(
    train: sp.csr_matrix, valid_truth: sp.csr_matrix, grid: tuple[float, ...]
) -> tuple[float, dict[float, float]]:
    scores = {
        l2: evaluate_scorer(
            DirectScorer(train, direct_weights(train, l2)), valid_truth, train, ks=(10,)
        ).metrics["ndcg@10"]
        for l2 in grid
    }
    return max(scores, key=lambda k: scores[k]), scores


# ---------------------------------------------------------------------------------------------- data
def random_binary(n_users: int, n_items: int, seed: int, density: float = 0.12) -> sp.csr_matrix:
    """Random clicks with one user without history and one item nobody clicked (both must be handled)."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[1] = 0.0
    dense[:, 2] = 0.0
    return sp.csr_matrix(dense)


def planted(n_users: int, n_items: int, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Three taste groups, each clicking its own third of the items far more often; one click per user with
    two or more is held out for validation."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, size=n_users)
    p = np.where(np.arange(n_items)[None, :] % 3 == group[:, None], 0.25, 0.03)
    clicks = rng.random((n_users, n_items)) < p
    valid = np.zeros_like(clicks)
    for u in np.flatnonzero(clicks.sum(axis=1) >= 2):
        i = rng.choice(np.flatnonzero(clicks[u]))
        clicks[u, i], valid[u, i] = False, True
    return sp.csr_matrix(clicks.astype(np.float32)), sp.csr_matrix(valid.astype(np.float32))


SHAPES = [(40, 90), (90, 40), (60, 60)]  # users < items, users > items, square


# ---------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize(("n_users", "n_items"), SHAPES)
@pytest.mark.parametrize("l2", [0.5, 10.0, 500.0])
def test_weights_and_scores_equal_the_direct_inverse(n_users: int, n_items: int, l2: float) -> None:
    x = random_binary(n_users, n_items, seed=n_users + n_items)
    b = direct_weights(x, l2)
    ease = EASEScorer.fit(x, l2)
    users = np.arange(n_users)
    assert ease.n_items == n_items and ease.kept is None
    np.testing.assert_allclose(ease.weights, b, atol=1e-6)
    np.testing.assert_allclose(ease.score(users), x.toarray() @ b, atol=1e-5)
    np.testing.assert_array_equal(np.diag(ease.weights), 0.0)


@pytest.mark.parametrize(("n_users", "n_items"), SHAPES)
def test_top_k_rankings_equal_the_direct_inverse(n_users: int, n_items: int) -> None:
    x = random_binary(n_users, n_items, seed=7 * n_users + n_items)
    users = np.arange(n_users)
    for l2 in EASE_L2_GRID:
        fast, _ = top_k(EASEScorer.fit(x, l2).score(users), 10, x, users)
        slow, _ = top_k((x.toarray() @ direct_weights(x, l2)).astype(np.float32), 10, x, users)
        np.testing.assert_array_equal(fast, slow)


def test_the_smaller_side_is_factorised() -> None:
    wide = EASEGram.of(random_binary(40, 90, seed=1))
    tall = EASEGram.of(random_binary(90, 40, seed=1))
    assert wide.kind == "users" and wide.gram.shape == (39, 39)  # users with history; never items x items
    assert tall.kind == "items" and tall.gram.shape == (40, 40)


def test_a_user_without_history_scores_zero_everywhere() -> None:
    for shape in ((40, 90), (90, 40)):  # user 1 has no history, on either side
        ease = EASEScorer.fit(random_binary(*shape, seed=3), 50.0)
        np.testing.assert_array_equal(ease.score(np.array([1])), 0.0)


@pytest.mark.parametrize(("n_users", "n_items"), [(60, 150), (150, 60)])
def test_tune_ease_picks_the_direct_lambda_with_the_direct_scores(n_users: int, n_items: int) -> None:
    train, valid_truth = planted(n_users, n_items, seed=11)
    want_l2, want_scores = direct_tune(train, valid_truth, EASE_L2_GRID)
    seen: list[float] = []
    grid = tune_ease(train, valid_truth, search="grid", on_result=lambda lam, _: seen.append(lam))
    assert grid.l2 == want_l2
    assert grid.scores == pytest.approx(want_scores, rel=1e-9)
    assert seen == list(EASE_L2_GRID)
    assert len(set(grid.scores.values())) > 1  # lambda matters on this data, so the pick means something
    assert grid.valid.metrics["ndcg@10"] == pytest.approx(want_scores[want_l2], rel=1e-9)
    assert grid.scorer.l2 == want_l2


@pytest.mark.parametrize(("n_users", "n_items"), [(60, 150), (150, 60), (300, 120)])
def test_the_bracketing_climb_picks_the_grids_lambda_from_fewer_fits(n_users: int, n_items: int) -> None:
    train, valid_truth = planted(n_users, n_items, seed=11)
    grid = tune_ease(train, valid_truth, search="grid")
    climbed = tune_ease(train, valid_truth)  # the default
    ordered = [grid.scores[lam] for lam in sorted(grid.scores)]
    peak = ordered.index(max(ordered))
    steps = list(itertools.pairwise(ordered))
    if all(a <= b for a, b in steps[:peak]) and all(a >= b for a, b in steps[peak:]):  # unimodal: must agree
        assert climbed.l2 == grid.l2
    assert climbed.scores.items() <= grid.scores.items()  # the same fits, fewer of them
    assert len(climbed.scores) < len(grid.scores)
    assert climbed.scores[climbed.l2] == max(climbed.scores.values())


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8], 7),  # rising: walks right to the end
        ([8, 7, 6, 5, 4, 3, 2, 1], 0),  # falling: walks left to the start
        ([1, 3, 5, 9, 4, 2, 1, 0], 3),  # the peak at the start point
        ([1, 5, 5, 3, 2, 1, 0, 0], 1),  # a flat top: its first index, as max over the grid gives
        ([0, 1, 2, 3, 3, 3, 2, 1], 3),
        ([4], 0),  # one lambda: still evaluated
    ],
)
def test_climb_finds_the_first_maximum_of_a_unimodal_sequence(values: list[int], want: int) -> None:
    asked: list[int] = []

    def value(i: int) -> float:
        asked.append(i)
        return float(values[i])

    assert climb(len(values), value) == want == values.index(max(values))
    assert want in asked and len(set(asked)) <= len(values)


def test_a_one_lambda_grid_is_fit_and_chosen() -> None:
    train, valid_truth = planted(60, 150, seed=11)
    tuning = tune_ease(train, valid_truth, l2_grid=(100.0, 100.0))
    assert tuning.l2 == 100.0 and list(tuning.scores) == [100.0]


def test_lambda_chosen_on_a_sample_is_reported_on_all_validation_users() -> None:
    train, valid_truth = planted(300, 120, seed=5)
    users = np.flatnonzero(np.diff(valid_truth.indptr) > 0)
    sample = users[::3]
    tried: list[int] = []
    tuning = tune_ease(train, valid_truth, users=sample, on_result=lambda _, r: tried.append(len(r.users)))
    assert set(tried) == {len(sample)}  # the search scores the sample only
    np.testing.assert_array_equal(tuning.valid.users, users)  # the reported result covers every user
    full = evaluate_scorer(EASEScorer.fit(train, tuning.l2), valid_truth, train, ks=(10,))
    assert tuning.valid.metrics["ndcg@10"] == pytest.approx(full.metrics["ndcg@10"], rel=1e-6)


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("l2", [0.0, -1.0, float("nan")])
def test_a_non_positive_lambda_is_a_config_error(l2: float) -> None:
    x = random_binary(20, 30, seed=0)
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        EASEScorer.fit(x, l2)
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        EASEGram.of(x).scorer(l2)
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        tune_ease(x, x, l2_grid=(10.0, l2))


def test_bad_tuning_arguments_are_config_errors() -> None:
    x = random_binary(20, 30, seed=0)
    with pytest.raises(ConfigError, match="max_items"):
        EASEScorer.fit(x, 10.0, max_items=0)
    with pytest.raises(ConfigError, match="metric"):
        tune_ease(x, x, metric="auc")
    with pytest.raises(ConfigError, match="l2_grid"):
        tune_ease(x, x, l2_grid=())


# ---------------------------------------------------------------------------------------------- item limit
def popularity_matrix() -> sp.csr_matrix:
    """30 users, 12 items; item i is clicked by ``counts[i]`` users."""
    counts = [3, 20, 9, 20, 5, 14, 1, 11, 11, 16, 2, 7]
    dense = np.zeros((30, 12), dtype=np.float32)
    for i, c in enumerate(counts):
        dense[np.random.default_rng(i).permutation(30)[:c], i] = 1.0
    return sp.csr_matrix(dense)


def test_above_the_limit_ease_keeps_the_most_popular_items_and_ranks_the_rest_last() -> None:
    x = popularity_matrix()
    # by count: 1 and 3 (20), 9 (16), 5 (14), then 7 and 8 tie at 11: the lower index (7) is kept
    ease = EASEScorer.fit(x, 10.0, max_items=5)
    assert ease.kept is not None and ease.kept.tolist() == [1, 3, 5, 7, 9]
    assert ease.kind == "items" and ease.weights.shape == (5, 5)
    scores = ease.score(np.arange(30))
    np.testing.assert_allclose(
        scores[:, ease.kept], x[:, ease.kept].toarray() @ direct_weights(x[:, ease.kept], 10.0), atol=1e-5
    )
    dropped = np.setdiff1d(np.arange(12), ease.kept)
    assert np.all(scores[:, dropped] == -np.inf)
    # full ranking: every kept candidate first, then the dropped items (ties by index)
    truth = sp.csr_matrix(np.ones((1, 12), dtype=np.float32))
    result = evaluate_scorer(ease, truth, None, ks=(12,), users=np.array([0]), keep_top_items=True)
    assert result.top_items is not None
    top = result.top_items[0].tolist()
    assert sorted(top[:5]) == ease.kept.tolist() and top[5:] == dropped.tolist()


def test_few_users_keep_every_item_however_many_items() -> None:
    x = random_binary(20, 90, seed=5)  # 19 users with history <= limit < 90 items: the users side is exact
    ease = EASEScorer.fit(x, 10.0, max_items=30)
    assert ease.kind == "users" and ease.kept is None
    np.testing.assert_allclose(ease.score(np.arange(20)), x.toarray() @ direct_weights(x, 10.0), atol=1e-5)


def test_no_dense_matrix_is_wider_than_the_limit() -> None:
    gram = EASEGram.of(random_binary(90, 80, seed=2), max_items=25)
    assert gram.n_kept == 25 and max(gram.gram.shape) <= 25


# ---------------------------------------------------------------------------------------------- references
def test_the_references_phase_shows_progress_unless_told_not_to(capsys: pytest.CaptureFixture[str]) -> None:
    from core.prepare import prepare
    from core.synthetic import make_synthetic
    from search.references import compute_references

    prepared = prepare(make_synthetic(n_users=400, n_items=60, seed=3))
    quiet, _ = compute_references(prepared, show_progress=False)
    assert "EASE" not in capsys.readouterr().err
    shown, _ = compute_references(prepared, show_progress=True)
    assert "EASE" in capsys.readouterr().err
    assert shown.ease_l2 == quiet.ease_l2 and shown.ease_l2 in EASE_L2_GRID
    # the winner's validation result is the one tuning computed: the same as fitting it again
    s = prepared.split
    again = evaluate_scorer(
        EASEScorer.fit(s.valid_exclude(), quiet.ease_l2), s.valid_truth(), s.valid_exclude()
    )
    assert quiet.ease_valid is not None
    for name, value in again.metrics.items():
        assert quiet.ease_valid.metrics[name] == pytest.approx(value, rel=1e-12)


def test_references_choose_lambda_on_the_sample_and_cache_it_apart(tmp_path: Path) -> None:
    from core.prepare import prepare
    from core.synthetic import make_synthetic
    from search.references import compute_references

    prepared = prepare(make_synthetic(n_users=1500, n_items=300, seed=3))
    users = np.flatnonzero(np.diff(prepared.split.valid_truth().indptr) > 0)
    sample = users[::2]
    full, cached = compute_references(prepared, cache_dir=tmp_path, show_progress=False)
    part, cached_part = compute_references(prepared, cache_dir=tmp_path, show_progress=False, sample=sample)
    assert not cached and not cached_part  # another sample may choose another lambda: its own cache entry
    assert f"a sample of {len(sample)} validation users" in part.note and "sample" not in full.note
    assert part.ease_valid is not None and full.ease_valid is not None
    np.testing.assert_array_equal(part.ease_valid.users, users)  # reported on every validation user
    again, hit = compute_references(prepared, cache_dir=tmp_path, show_progress=False, sample=sample)
    assert hit and again.ease_l2 == part.ease_l2 and again.note == part.note
