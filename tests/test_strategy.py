"""Negative-sampling strategies: ratios, curriculum, the four candidate sources, the mixed sampler, and the
on-disk cache of text embeddings (no real model needed: embeddings here are synthetic)."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import core.text
from core.bpr.strategy import (
    SOURCES,
    DynamicSamplingConfig,
    MixedNegativeSampler,
    SamplingStrategy,
    build_sources,
    contextual_negatives,
    item_sentiment,
    merge_sources,
    popular_negatives,
    review_sentiment,
    sentiment_negatives,
)
from core.errors import ConfigError, DataError
from core.interactions import Interactions


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(rows), n_items))


def row_sets(m: sp.csr_matrix) -> list[set[int]]:
    return [set(m.indices[m.indptr[u] : m.indptr[u + 1]].tolist()) for u in range(m.shape[0])]


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """|count - np| within ``sigmas`` standard deviations (+1 for p near 0 or 1)."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def random_positives(seed: int = 0, n_users: int = 80, n_items: int = 60) -> sp.csr_matrix:
    """Random users x items positives, plus a user who has every item and one who has none."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.25
    dense[0] = True  # nothing left to sample
    dense[1] = False  # no positives at all
    dense[2] = True
    dense[2, 7] = False  # exactly one non-positive
    return sp.csr_matrix(dense.astype(np.float32))


# ---------------------------------------------------------------------------------------------- strategy
@pytest.mark.parametrize(
    ("field", "value"),
    [("hard_ratio", -0.1), ("contextual_ratio", 1.5), ("sentiment_ratio", math.nan), ("popular_ratio", True)],
)
def test_each_ratio_must_be_a_number_in_the_unit_interval(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SamplingStrategy(**{field: value})  # type: ignore[arg-type]


def test_ratios_summing_over_one_are_refused_with_their_values() -> None:
    with pytest.raises(ConfigError, match=r"hard_ratio=0.5, contextual_ratio=0.4.* = 1.1"):
        SamplingStrategy(hard_ratio=0.5, contextual_ratio=0.4, sentiment_ratio=0.1, popular_ratio=0.1)


def test_both_edges_of_the_ratios_are_allowed_and_random_is_the_remainder() -> None:
    assert SamplingStrategy().random_ratio == pytest.approx(0.30)  # the seed's defaults
    assert SamplingStrategy(0.0, 0.0, 0.0, 0.0).random_ratio == 1.0
    assert SamplingStrategy(1.0, 0.0, 0.0, 0.0).random_ratio == 0.0
    assert SamplingStrategy(0.7, 0.1, 0.1, 0.1).random_ratio == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------- curriculum
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"schedule": "step"}, "schedule"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"ramp_epochs": 2.5}, "ramp_epochs"),
        ({"start_difficulty": 1.5}, "start_difficulty"),
        ({"enabled": "yes"}, "enabled"),
    ],
)
def test_curriculum_settings_are_validated(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DynamicSamplingConfig(**kwargs)  # type: ignore[arg-type]


# s = 0.2, warmup 2, ramp 4: t = (epoch - 2) / 4 from epoch 2 on; hand-computed from the docstring formulas
@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("linear", [0.2, 0.2, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0]),
        # s + (1 - s) * (1 - cos(pi t)) / 2 at t = 1/4, 1/2, 3/4: 0.146447, 0.5, 0.853553
        ("cosine", [0.2, 0.2, 0.2, 0.317157, 0.6, 0.882843, 1.0, 1.0]),
        # s + (1 - s) * expm1(5 t) / expm1(5): 2.490343 / 147.413159 = 0.016894, 0.075859, 0.281665
        ("exponential", [0.2, 0.2, 0.2, 0.213515, 0.260687, 0.425332, 1.0, 1.0]),
    ],
)
def test_difficulty_follows_each_schedule(schedule: str, expected: list[float]) -> None:
    cfg = DynamicSamplingConfig(schedule=schedule, warmup_epochs=2, ramp_epochs=4, start_difficulty=0.2)  # type: ignore[arg-type]
    got = [cfg.difficulty(e) for e in (1, 2, 3, 4, 5, 6, 7, 51)]  # 1-based epochs
    assert got == pytest.approx(expected, abs=1e-6)


def test_disabled_curriculum_and_zero_ramp() -> None:
    assert DynamicSamplingConfig(enabled=False, start_difficulty=0.0).difficulty(1) == 1.0
    jump = DynamicSamplingConfig(warmup_epochs=3, ramp_epochs=0, start_difficulty=0.0)
    assert [jump.difficulty(e) for e in range(1, 6)] == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_ratios_at_scales_every_source_and_gives_the_rest_to_random() -> None:
    strategy = SamplingStrategy(0.4, 0.2, 0.1, 0.1)
    cold = DynamicSamplingConfig(warmup_epochs=2, ramp_epochs=2, start_difficulty=0.0)
    assert strategy.ratios_at(1, cold) == {
        "hard": 0,
        "contextual": 0,
        "sentiment": 0,
        "popular": 0,
        "random": 1,
    }
    assert strategy.ratios_at(3, cold)["random"] == 1  # the ramp starts at s
    half = strategy.ratios_at(4, cold)  # t = 1/2, linear
    assert half == pytest.approx(
        {"hard": 0.2, "contextual": 0.1, "sentiment": 0.05, "popular": 0.05, "random": 0.6}
    )
    assert strategy.ratios_at(8, None)["random"] == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------- sources
def test_contextual_negatives_are_the_items_closest_to_the_users_centroid() -> None:
    angles = np.radians([0, 100, 15, 60, 30, 170, 45, 135])  # item index -> angle on the unit circle
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.arange(1, 9)[:, None]  # norms do not matter
    pos = csr([[0, 2], [5], []], 8)
    got = contextual_negatives(pos, emb, k=3)
    # centroid of 0 and 15 degrees is 7.5: 30 (item 4), 45 (6), 60 (3); from 170: 135 (7), 100 (1), 60 (3)
    assert row_sets(got) == [{4, 6, 3}, {7, 1, 3}, set()]


def test_contextual_negatives_in_small_blocks_equal_a_dense_reference() -> None:
    pos = random_positives(seed=1)
    emb = np.random.default_rng(2).normal(size=(pos.shape[1], 5))
    got = contextual_negatives(pos, emb, k=6, chunk_cells=7 * pos.shape[1])  # 7 users per block
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dense = pos.toarray() > 0
    for u in range(pos.shape[0]):
        if not dense[u].any() or dense[u].all():
            assert row_sets(got)[u] == set()
            continue
        scores = unit @ unit[dense[u]].mean(axis=0)
        scores[dense[u]] = -np.inf
        expected = set(np.argsort(-scores)[: min(6, int((~dense[u]).sum()))].tolist())
        assert row_sets(got)[u] == expected, u


def test_contextual_negatives_for_20k_items_stay_within_blocks_of_memory() -> None:
    n_items = 20_000
    rng = np.random.default_rng(3)
    pos = sp.random(200, n_items, density=0.002, format="csr", random_state=4, dtype=np.float32)
    emb = rng.normal(size=(n_items, 8)).astype(np.float32)
    tracemalloc.start()
    try:
        got = contextual_negatives(pos, emb, k=20, chunk_cells=1 << 18)  # 13 users a block
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # ~7 MB; one block of all 200 users takes ~60 MB, items x items 1.6 GB
    assert np.all(np.diff(got.indptr) == 20)
    assert got.multiply(pos).nnz == 0


def beauty_like_log() -> Interactions:
    """Six users, six items on a 1-5 scale; item sentiments are computed by hand in the tests below."""
    rows = [
        (0, 0, 5), (0, 1, 4), (0, 2, 1), (0, 4, 5),
        (1, 0, 5), (1, 2, 1), (1, 5, 1),
        (2, 0, 5), (2, 1, 5), (2, 2, 2), (2, 3, 2),
        (3, 2, 5), (3, 4, 1), (3, 5, 1),
        (4, 5, 1),
        (5, 5, 1),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]).astype({"rating": float})
    return Interactions.from_frame(frame, rating_scale=(1.0, 5.0), items=pd.Index(range(6), name="item_id"))


def test_item_sentiment_is_the_shrunk_mean_of_rating_sentiment() -> None:
    log = beauty_like_log()
    assert review_sentiment(log)[:4] == pytest.approx([1.0, 0.5, -1.0, 1.0])  # 5, 4, 1, 5 stars
    # item 0: three 5s -> 3 / (3 + 2); item 1: 4, 5 -> 1.5 / 4; item 2: 1, 1, 2, 5 -> -1.5 / 6;
    # item 3: one 2 -> -0.5 / 3; item 4: 5, 1 -> 0; item 5: four 1s -> -4 / 6
    expected = [0.6, 0.375, -0.25, -1 / 6, 0.0, -2 / 3]
    assert item_sentiment(log) == pytest.approx(expected)
    assert item_sentiment(log, prior_count=0)[3] == pytest.approx(-0.5)


def test_play_counts_have_no_sentiment() -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rating": [3.0, 9.0]})
    with pytest.raises(DataError, match="no sentiment"):
        review_sentiment(Interactions.from_frame(frame, kind="count"))


def test_sentiment_negatives_are_badly_reviewed_items_the_user_did_not_like() -> None:
    log = beauty_like_log()
    positives = log.subset(log.positive_mask(4.0)).to_csr()  # u0 {0, 1, 4}, u1 {0}, u2 {0, 1}, u3 {2}
    s = item_sentiment(log)
    got = sentiment_negatives(positives, s, k=2)
    # negative items, most negative first: 5 (-0.67), 2 (-0.25), 3 (-0.17); u3 liked item 2, so gets 5 and 3
    assert row_sets(got) == [{5, 2}, {5, 2}, {5, 2}, {5, 3}, {5, 2}, {5, 2}]
    assert row_sets(sentiment_negatives(positives, s, k=1)) == [{5}] * 6
    assert sentiment_negatives(positives, s, k=5, threshold=-0.5).nnz == 6  # only item 5 is below -0.5


def test_sentiment_negatives_with_embeddings_prefer_what_resembles_the_users_likes() -> None:
    log = beauty_like_log()
    positives = log.subset(log.positive_mask(4.0)).to_csr()
    angles = np.radians([0, 5, 90, 10, 2, 180])  # item 3 looks like u0's likes (0, 1, 4); item 5 does not
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    got = sentiment_negatives(positives, item_sentiment(log), k=1, item_embeddings=emb)
    assert row_sets(got)[0] == {3}
    assert row_sets(got)[4] == set()  # no positives, no centroid to resemble


def test_popular_negatives_are_the_most_popular_unseen_items() -> None:
    pos = csr([[0, 1], [0, 2], [0, 1, 3], [0], []], 6)  # popularity 4, 2, 1, 1, 0, 0
    got = popular_negatives(pos, k=2)
    assert row_sets(got) == [{2, 3}, {1, 3}, {2}, {1, 2}, {0, 1}]  # ties by index; unpopular items never


@pytest.mark.parametrize("name", ["contextual", "sentiment", "popular"])
def test_no_source_ever_holds_a_positive_and_rows_are_sorted_int32(name: str) -> None:
    pos = random_positives(seed=5)
    emb = np.random.default_rng(6).normal(size=(pos.shape[1], 4))
    sentiment = np.random.default_rng(7).uniform(-1, 1, size=pos.shape[1])
    sources = build_sources(pos, item_embeddings=emb, item_sentiment=sentiment, k=15)
    got = sources[name]
    assert got.shape == pos.shape and got.indices.dtype == np.int32 and got.has_sorted_indices
    assert got.multiply(pos).nnz == 0
    assert np.diff(got.indptr).max() <= 15
    assert np.diff(got.indptr)[0] == 0  # the user who has everything


def test_bad_source_arguments_are_named() -> None:
    pos = csr([[0], [1]], 3)
    with pytest.raises(ConfigError, match="k must be"):
        popular_negatives(pos, k=0)
    with pytest.raises(DataError, match="item_embeddings must have shape"):
        contextual_negatives(pos, np.ones((4, 2)), k=1)
    with pytest.raises(DataError, match="NaN"):
        contextual_negatives(pos, np.full((3, 2), np.nan), k=1)
    with pytest.raises(DataError, match="item_sentiment"):
        sentiment_negatives(pos, np.zeros(2), k=1)


def test_merge_sources_is_the_union_without_positives() -> None:
    pos = csr([[0], [1]], 4)
    merged = merge_sources({"hard": csr([[0, 2], []], 4), "popular": {1: [1, 3], 0: [3]}}, pos)
    assert row_sets(merged) == [{2, 3}, {3}]


# ---------------------------------------------------------------------------------------------- sampler
def banded_sampler(
    strategy: SamplingStrategy, dynamic: DynamicSamplingConfig | None = None
) -> MixedNegativeSampler:
    """50 users x 40 items: positives in 0-9, and every user has a non-empty row in every source."""
    rng = np.random.default_rng(8)
    pos = sp.csr_matrix((rng.random((50, 40)) < 0.5) * (np.arange(40) < 10), dtype=np.float32)
    band = {
        "hard": range(10, 20),
        "contextual": range(20, 30),
        "sentiment": range(30, 35),
        "popular": range(35, 40),
    }
    sources = {name: csr([list(items)] * 50, 40) for name, items in band.items()}
    return MixedNegativeSampler(pos, sources, strategy, dynamic)


@pytest.mark.parametrize(
    ("epoch", "difficulty"),
    [(9, 1.0), (2, 0.5)],  # d = 0 in epoch 1, 1 from epoch 3 on
)
def test_sampler_honours_the_ratios_at_the_epoch(epoch: int, difficulty: float) -> None:
    strategy = SamplingStrategy(0.25, 0.20, 0.15, 0.10)
    sampler = banded_sampler(
        strategy, DynamicSamplingConfig(warmup_epochs=0, ramp_epochs=2, start_difficulty=0)
    )
    n = 20_000
    users = np.random.default_rng(9).integers(0, 50, size=n)
    sampler.sample(users, epoch, np.random.default_rng(10))
    counts = sampler.last_counts
    assert sum(counts[k] for k in (*SOURCES, "random")) == n and counts["fallback"] == 0
    for name, ratio in strategy.ratios_at(epoch, sampler.dynamic).items():
        assert within_binomial(counts[name], n, ratio), (name, counts[name], n * ratio)
    assert strategy.ratios_at(epoch, sampler.dynamic)["hard"] == pytest.approx(0.25 * difficulty)


def test_a_source_only_strategy_draws_only_from_that_source() -> None:
    sampler = banded_sampler(SamplingStrategy(0.0, 0.0, 1.0, 0.0))
    out = sampler.sample(np.arange(50).repeat(40), epoch=1, rng=np.random.default_rng(11))
    assert set(out.tolist()) == set(range(30, 35))
    assert sampler.get_stats()["sentiment_share"] == 1.0


def test_uniform_draws_are_uniform_over_the_users_non_positives() -> None:
    pos = csr([[1, 3, 4]], 8)
    sampler = MixedNegativeSampler(pos, {}, SamplingStrategy(0, 0, 0, 0))
    n = 10_000
    out = sampler.sample(np.zeros(n, np.int64), 1, np.random.default_rng(12))
    values, counts = np.unique(out, return_counts=True)
    assert values.tolist() == [0, 2, 5, 6, 7]
    assert all(within_binomial(int(c), n, 0.2) for c in counts)


def test_sampled_negatives_are_never_positives_for_any_user() -> None:
    pos = random_positives(seed=13)
    emb = np.random.default_rng(14).normal(size=(pos.shape[1], 4))
    sentiment = np.random.default_rng(15).uniform(-1, 1, size=pos.shape[1])
    hard = sp.random(*pos.shape, density=0.3, format="csr", random_state=16)  # overlaps positives on purpose
    sources = build_sources(pos, hard=hard, item_embeddings=emb, item_sentiment=sentiment, k=10)
    sampler = MixedNegativeSampler(pos, sources, SamplingStrategy(0.2, 0.2, 0.2, 0.2))
    users = np.tile(np.arange(pos.shape[0]), 250)
    out = sampler.sample(users, epoch=1, rng=np.random.default_rng(17))
    dense = pos.toarray() > 0
    full = users == 0  # the user who has every item
    assert np.all(out[full] == -1) and sampler.last_counts["skipped"] == int(full.sum())
    assert np.all((out[~full] >= 0) & (out[~full] < pos.shape[1]))
    assert not dense[users[~full], out[~full]].any()
    assert np.all(out[users == 2] == 7)  # the only item left
    assert sampler.last_counts["fallback"] > 0  # users 0 and 1 have empty rows in some sources


def test_missing_sources_and_empty_rows_fall_back_to_uniform() -> None:
    pos = csr([[0], [1]], 5)
    sampler = MixedNegativeSampler(pos, {"hard": csr([[2], []], 5)}, SamplingStrategy(0.5, 0.5, 0.0, 0.0))
    out = sampler.sample(np.repeat([0, 1], 1000), epoch=1, rng=np.random.default_rng(18))
    c = sampler.last_counts
    assert c["hard"] + c["fallback"] + c["random"] == 2000
    assert within_binomial(c["hard"], 2000, 0.25)  # user 0 only; user 1's hard row is empty
    assert not np.any(out[:1000] == 0) and not np.any(out[1000:] == 1)
    assert sampler.counts == c  # first call: running totals equal the last counts


def test_sampler_rejects_unknown_sources_and_foreign_users() -> None:
    pos = csr([[0], [1]], 3)
    with pytest.raises(ConfigError, match="unknown negative sources"):
        MixedNegativeSampler(pos, {"similar": pos}, SamplingStrategy())
    sampler = MixedNegativeSampler(pos, {}, SamplingStrategy())
    with pytest.raises(DataError, match="user index 2"):
        sampler.sample(np.array([0, 2]), 1, np.random.default_rng(0))


def test_same_rng_same_draws() -> None:
    sampler = banded_sampler(SamplingStrategy())
    users = np.arange(50).repeat(10)
    a = sampler.sample(users, 3, np.random.default_rng(19))
    b = sampler.sample(users, 3, np.random.default_rng(19))
    assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------- text cache
FakeModel = tuple[Path, list[list[str]]]


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    """A model folder (a config.json) and an ``embed_texts`` that records its calls instead of encoding."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 3}')
    calls: list[list[str]] = []

    def fake_embed(texts: list[str], *, model_dir: object = None, batch_size: int = 64) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)

    monkeypatch.setattr(core.text, "embed_texts", fake_embed)
    return folder, calls


def test_second_call_loads_from_the_cache_without_the_model(tmp_path: Path, fake_model: FakeModel) -> None:
    folder, calls = fake_model
    cache = tmp_path / "cache"
    first = core.text.cached_text_embeddings(["lipstick", "mascara"], model_dir=folder, cache_dir=cache)
    second = core.text.cached_text_embeddings(["lipstick", "mascara"], model_dir=folder, cache_dir=cache)
    assert len(calls) == 1
    assert np.array_equal(first, second) and second.dtype == np.float32
    assert [p.suffix for p in cache.iterdir()] == [".npy"]  # no temporary file left behind


def test_cache_is_keyed_by_texts_and_by_model(tmp_path: Path, fake_model: FakeModel) -> None:
    folder, calls = fake_model
    cache = tmp_path / "cache"
    core.text.cached_text_embeddings(["a", "b"], model_dir=folder, cache_dir=cache)
    core.text.cached_text_embeddings(["b", "a"], model_dir=folder, cache_dir=cache)  # order matters
    core.text.cached_text_embeddings(["ab"], model_dir=folder, cache_dir=cache)  # no concatenation clash
    (folder / "config.json").write_text('{"hidden_size": 4}')  # another model in the same folder
    core.text.cached_text_embeddings(["a", "b"], model_dir=folder, cache_dir=cache)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"hidden_size": 4}')  # same config, another folder
    core.text.cached_text_embeddings(["a", "b"], model_dir=other, cache_dir=cache)
    assert len(calls) == 5 and len(list(cache.iterdir())) == 5
    core.text.cached_text_embeddings(["b", "a"], model_dir=folder, cache_dir=cache)
    assert len(calls) == 6  # config changed since ["b", "a"] was cached


def test_a_corrupt_cache_file_is_recomputed(tmp_path: Path, fake_model: FakeModel) -> None:
    folder, calls = fake_model
    cache = tmp_path / "cache"
    core.text.cached_text_embeddings(["x"], model_dir=folder, cache_dir=cache)
    (path,) = cache.iterdir()
    path.write_bytes(b"not an array")
    again = core.text.cached_text_embeddings(["x"], model_dir=folder, cache_dir=cache)
    assert len(calls) == 2 and again.shape == (1, 3)


def test_cache_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        core.text.cached_text_embeddings(["x"], model_dir=tmp_path, cache_dir=tmp_path / "cache")
