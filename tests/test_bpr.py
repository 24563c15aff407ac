"""BPR: the sampling rule, the kernel against a slow reference, training contracts (seeding, divergence,
checkpoints, early stopping) and argument checks."""

from __future__ import annotations

import hashlib

import llvmlite.binding
import numba
import numpy as np
import pytest
import scipy.sparse as sp

from core.bpr import (
    BPR,
    HardNegativeMixer,
    TripletSampler,
    bpr_epoch,
    bpr_step_reference,
    kernel,
    sample_triplets,
)
from core.bpr.sampler import hard_negatives_csr, positives_csr, user_of_interactions
from core.callbacks import TrainingStep, ValidationMonitor
from core.errors import ConfigError, DataError, ModelFitError, StopTraining
from core.evaluate import evaluate
from tests.planted import clustered


def other_cluster_hard(train: sp.csr_matrix, n_clusters: int = 4, k: int = 10) -> sp.csr_matrix:
    """Hard negatives: the first ``k`` items of the next cluster, plus (to be dropped) one own positive."""
    n_users, n_items = train.shape
    size = n_items // n_clusters
    rows, cols = [], []
    for u in range(n_users):
        nxt = (u % n_clusters + 1) % n_clusters
        rows += [u] * (k + 1)
        cols += [*range(nxt * size, nxt * size + k), int(train.indices[train.indptr[u]])]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=train.shape)


#: The constructor defaults before core.defaults.BPR_DEFAULTS (issue 19): what these tests were written and
#: pinned against, spelled out so that their numbers stay.
OLD_CONSTRUCTOR = dict(factors=64, learning_rate=0.05, hard_ratio=0.3, lr_decay=1.0, item_bias=False)


def quiet(**kw) -> BPR:
    kw.setdefault("show_progress", False)
    return BPR(**{**OLD_CONSTRUCTOR, **kw})


# ---------------------------------------------------------------------------------------------- sampling
def test_mixer_ratio_matches_hard_ratio_on_a_large_sample():
    train, _ = clustered()
    mixer = HardNegativeMixer(other_cluster_hard(train), hard_ratio=0.3, seed=1)
    sampler = TripletSampler(train, mixer, samples_per_epoch=200, seed=2)
    triplets = sampler.sample_epoch()
    stats = mixer.get_stats()
    n = sampler.n_samples
    assert triplets.shape == (n, 3)
    assert stats["hard_count"] + stats["random_count"] == n
    # binomial sd at n = 576k is 0.0006: 0.005 is > 8 sd
    assert stats["hard_ratio"] == pytest.approx(0.3, abs=0.005)
    assert stats["random_ratio"] == pytest.approx(0.7, abs=0.005)


@pytest.mark.parametrize("hard_ratio", [0.0, 0.3, 1.0])
def test_never_a_positive_as_negative(hard_ratio):
    train, _ = clustered(per_user=20)  # 20 of 24 cluster items liked: many collisions to reject
    mixer = HardNegativeMixer(other_cluster_hard(train), hard_ratio=hard_ratio, seed=3)
    triplets = TripletSampler(train, mixer, samples_per_epoch=50, seed=4).sample_epoch()
    pos = positives_csr(train)
    u, i, j = triplets.T
    assert np.all(np.asarray(pos[u, i]).ravel() == 1)
    assert np.all(np.asarray(pos[u, j]).ravel() == 0)
    assert np.all((j >= 0) & (j < train.shape[1]))


def test_hard_draws_come_from_the_users_hard_set_minus_positives():
    train, _ = clustered()
    hard = other_cluster_hard(train)
    mixer = HardNegativeMixer(hard, hard_ratio=1.0, seed=5)
    triplets = TripletSampler(train, mixer, samples_per_epoch=20, seed=6).sample_epoch()
    clean = hard_negatives_csr(hard, positives_csr(train))
    u, _, j = triplets.T
    assert np.all(np.asarray(clean[u, j]).ravel() == 1)
    assert mixer.get_stats()["hard_ratio"] == 1.0


def test_uniform_fallback_for_users_without_hard_negatives():
    train, _ = clustered()
    hard = other_cluster_hard(train).tolil()
    hard[::2] = 0  # even users have no hard negatives
    mixer = HardNegativeMixer(hard.tocsr(), hard_ratio=1.0, seed=7)
    users = np.repeat(np.arange(train.shape[0]), 50)
    neg = mixer.sample_negatives(users, train)
    stats = mixer.get_stats()
    assert stats["random_count"] == 50 * train.shape[0] // 2
    assert stats["hard_count"] == 50 * train.shape[0] // 2
    even = users % 2 == 0
    # fallback is uniform over unseen items: spread over (nearly) every unseen item, not one cluster
    assert np.unique(neg[even]).size > 0.9 * (train.shape[1] - 24 // 2)


def test_mixer_accepts_a_mapping_of_sets():
    train, _ = clustered()
    sets = {u: {0, 1, 2} for u in range(train.shape[0]) if u % 4 != 0}
    mixer = HardNegativeMixer(sets, hard_ratio=1.0, seed=8)
    neg = mixer.sample_negatives(np.arange(1, train.shape[0], 4), train)
    assert set(np.unique(neg)) <= {0, 1, 2}


def test_mixer_rejects_bad_ratio():
    with pytest.raises(ValueError, match="hard_ratio"):
        HardNegativeMixer(None, hard_ratio=1.5)


def test_skipped_when_a_user_liked_every_item():
    train = sp.csr_matrix(np.ones((3, 5), np.float32))
    train[0, 0] = 0
    train.eliminate_zeros()
    mixer = HardNegativeMixer(None, hard_ratio=0.0, seed=9)
    triplets = TripletSampler(train, mixer, samples_per_epoch=20).sample_epoch()
    assert mixer.get_stats()["skipped_count"] > 0
    assert np.all(triplets[:, 2] == 0) and np.all(triplets[:, 0] == 0)


# ---------------------------------------------------------------------------------------------- kernel
def _kernel_inputs(train, hard, hard_ratio=0.3):
    pos = positives_csr(train)
    h = hard_negatives_csr(hard, pos)
    arrays = (pos.indptr.astype(np.int64), pos.indices, user_of_interactions(pos), h.indptr.astype(np.int64))
    return (*arrays, h.indices), pos.shape[1], kernel.hard_threshold_of(hard_ratio)


def test_kernel_equals_slow_reference_on_the_same_draws():
    train, _ = clustered(n_users=40, n_items=32, per_user=5)
    arrays, n_items, thr = _kernel_inputs(train, other_cluster_hard(train, k=3))
    rng = np.random.default_rng(0)
    u0 = rng.normal(0, 0.1, (40, 8)).astype(np.float32)
    v0 = rng.normal(0, 0.1, (32, 8)).astype(np.float32)
    seed = kernel.fix_seeds(np.array([12345], np.uint64))
    n = 2000

    triplets, kinds = sample_triplets(*arrays, n_items, thr, n, seed.copy())
    u_ref, v_ref = u0.copy(), v0.copy()
    loss_ref, correct_ref = bpr_step_reference(triplets, u_ref, v_ref, 0.1, 0.01)

    u_fast, v_fast = u0.copy(), v0.copy()
    loss, correct, skipped, n_hard, n_random, scored = bpr_epoch(
        *arrays, u_fast, v_fast, 0.1, 0.01, thr, seed, n, user_cols=8, reg_pos=0.01, reg_neg=0.01
    )

    assert skipped == np.count_nonzero(kinds == kernel.KIND_SKIPPED)
    assert n_hard == np.count_nonzero(kinds == kernel.KIND_HARD) > 0
    assert n_random == np.count_nonzero(kinds == kernel.KIND_RANDOM)
    assert scored == 0  # one candidate: nothing to score
    assert correct == correct_ref
    assert loss == pytest.approx(loss_ref, rel=1e-4)
    np.testing.assert_allclose(u_fast, u_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(v_fast, v_ref, rtol=1e-4, atol=1e-6)
    assert not np.allclose(u_fast, u0)


def test_reference_step_follows_the_seed_rules_by_hand():
    # one triplet, numbers by hand: x = 1*0.5 - 1*(-0.5) = 1, z = 1 - sigmoid(1)
    u = np.array([[1.0]], np.float32)
    v = np.array([[0.5], [-0.5]], np.float32)
    loss, correct = bpr_step_reference(np.array([[0, 0, 1]]), u, v, 0.1, 0.0)
    z = 1 - 1 / (1 + np.exp(-1.0))
    assert loss == pytest.approx(np.log1p(np.exp(-1.0)))
    assert correct == 1
    assert u[0, 0] == pytest.approx(1 + 0.1 * z * 1.0)
    assert v[0, 0] == pytest.approx(0.5 + 0.1 * z)
    assert v[1, 0] == pytest.approx(-0.5 - 0.1 * z)


def _resolved(width: int, regularization: float, options: dict) -> dict[str, float]:
    """The kernel's ``user_cols`` / ``reg_pos`` / ``reg_neg`` for the reference's ``options`` (which may
    leave them out: all columns, ``regularization``)."""
    return {
        "user_cols": options.get("user_cols", width),
        "reg_pos": options.get("reg_pos", regularization),
        "reg_neg": options.get("reg_neg", regularization),
    }


def _kernel_equals_reference(seed: int, bias: bool = False, **options: float) -> np.ndarray:
    """One kernel epoch and the NumPy reference on the same draws agree (loss, factors); the kernel's user
    factors. ``options``: the kernel's ``user_cols``, ``reg_pos``, ``reg_neg``."""
    train, _ = clustered(n_users=40, n_items=32, per_user=5)
    arrays, n_items, thr = _kernel_inputs(train, other_cluster_hard(train, k=3))
    rng = np.random.default_rng(seed)
    u0 = rng.normal(0, 0.1, (40, 8)).astype(np.float32)
    v0 = rng.normal(0, 0.1, (32, 8)).astype(np.float32)
    if bias:
        u0 = np.hstack([u0, np.ones((40, 1), np.float32)])
        v0 = np.hstack([v0, np.zeros((32, 1), np.float32)])
    seeds = kernel.fix_seeds(np.array([seed + 1], np.uint64))
    triplets, _ = sample_triplets(*arrays, n_items, thr, 2000, seeds.copy())
    u_ref, v_ref = u0.copy(), v0.copy()
    loss_ref, correct_ref = bpr_step_reference(triplets, u_ref, v_ref, 0.1, 0.001, **options)  # type: ignore[arg-type]
    u_fast, v_fast = u0.copy(), v0.copy()
    resolved = _resolved(u0.shape[1], 0.001, options)
    loss, correct, *_ = bpr_epoch(*arrays, u_fast, v_fast, 0.1, 0.001, thr, seeds, 2000, **resolved)
    assert correct == correct_ref
    assert loss == pytest.approx(loss_ref, rel=1e-4)
    np.testing.assert_allclose(u_fast, u_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(v_fast, v_ref, rtol=1e-4, atol=1e-6)
    assert not bias or np.any(v_fast[:, 8] != 0.0)  # the bias was learned
    return u_fast


def test_kernel_with_item_bias_equals_the_reference_and_holds_the_users_bias_column_at_one():
    users = _kernel_equals_reference(776, bias=True, user_cols=8)
    assert np.all(users[:, 8] == 1.0)


def test_item_bias_step_by_hand():
    # one factor plus the bias column: x = 1*(0.5 - -0.5) + (0.2 - 0) = 1.2, z = 1 - sigmoid(1.2)
    u = np.array([[1.0, 1.0]], np.float32)
    v = np.array([[0.5, 0.2], [-0.5, 0.0]], np.float32)
    loss, _ = bpr_step_reference(np.array([[0, 0, 1]]), u, v, 0.1, 0.01, user_cols=1)
    z = 1 - 1 / (1 + np.exp(-1.2))
    assert loss == pytest.approx(np.log1p(np.exp(-1.2)) + 0.01 * (1.0 + 0.25 + 0.04 + 0.25), rel=1e-6)
    assert u[0, 1] == 1.0  # held
    assert u[0, 0] == pytest.approx(1 + 0.1 * (z * 1.0 - 0.01))
    assert v[0, 1] == pytest.approx(0.2 + 0.1 * (z - 0.01 * 0.2))  # the positive's bias rises
    assert v[1, 1] == pytest.approx(0.1 * -z)  # the negative's falls


def test_separate_regularization_by_hand_and_against_the_reference():
    # one factor: x = 1 * (0.5 - -0.5) = 1; user, positive and negative each with their own L2 weight
    u = np.array([[1.0]], np.float32)
    v = np.array([[0.5], [-0.5]], np.float32)
    loss, _ = bpr_step_reference(np.array([[0, 0, 1]]), u, v, 0.1, 0.01, reg_pos=0.02, reg_neg=0.03)
    z = 1 - 1 / (1 + np.exp(-1.0))
    assert loss == pytest.approx(np.log1p(np.exp(-1.0)) + 0.01 * 1.0 + 0.02 * 0.25 + 0.03 * 0.25, rel=1e-6)
    assert u[0, 0] == pytest.approx(1 + 0.1 * (z * 1.0 - 0.01 * 1.0))
    assert v[0, 0] == pytest.approx(0.5 + 0.1 * (z - 0.02 * 0.5))
    assert v[1, 0] == pytest.approx(-0.5 + 0.1 * (-z - 0.03 * -0.5))

    _kernel_equals_reference(98, reg_pos=0.05, reg_neg=0.2)
    _kernel_equals_reference(97, bias=True, user_cols=8, reg_pos=0.0, reg_neg=0.3)


def test_role_regularization_defaults_to_regularization_and_is_checked():
    train, _ = clustered(n_users=60, n_items=32, per_user=5)
    kw = {"factors": 4, "epochs": 2, "hard_ratio": 0.0, "num_threads": 1, "show_progress": False}
    same = BPR(regularization=0.01, **kw).fit(train)
    spelled = BPR(regularization=0.5, reg_user=0.01, reg_pos=0.01, reg_neg=0.01, **kw).fit(train)
    np.testing.assert_array_equal(same.item_factors_, spelled.item_factors_)
    with pytest.raises(ConfigError, match="reg_neg must be a finite number >= 0 or None"):
        BPR(reg_neg=-1.0)


def test_item_bias_learns_popularity():
    """Users of no particular taste pick popular items: with one factor, the bias column carries the order."""
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 40
    p = 1.0 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(n_items, 6, replace=False, p=p / p.sum())
        rows += [u] * 6
        cols += list(items)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    model = quiet(factors=1, epochs=20, hard_ratio=0.0, item_bias=True, num_threads=1)
    model.fit(train)
    assert model.user_factors_.shape == (n_users, 2) and np.all(model.user_factors_[:, 1] == 1.0)
    counts = np.asarray(train.sum(axis=0)).ravel()
    bias = model.item_factors_[:, 1]
    assert set(np.argsort(-bias)[:4]) == set(np.argsort(-counts)[:4])  # the head; the tail's counts are noise
    assert np.corrcoef(bias, np.log1p(counts))[0, 1] > 0.8


# -------------------------------------------------------------------------------------------- defaults pinned
# Factors of small fixed fits, computed with the kernel as it was before n_candidates / n_negatives / loss
# existed (commit a8b04da, numba 0.68.1; the constructor defaults of then spelled out in _PINNED_BASE):
# sha256(U.tobytes() + V.tobytes())[:16], then sum |V| and the last epoch's loss. The hashes depend on the
# instructions LLVM picks (FMA, vector width), so they are kept per CPU target (NUMBA_CPU_NAME=generic /
# haswell / skylake-avx512, and the rocketlake host they were taken on); on other targets or numba versions
# the fits are compared to the float64 sums only (targets differ by ~1e-7).
_PINNED_BASE = dict(learning_rate=0.05, regularization=1e-4, samples_per_epoch=5, lr_decay=1.0, init_std=0.01)
_PINNED_FITS = {
    "f3_hard": dict(factors=3, epochs=3, hard_ratio=0.3),
    "f8_bias_regs": dict(factors=8, epochs=3, hard_ratio=0.3, item_bias=True, reg_pos=0.002, reg_neg=0.01),
    "f16_uniform": dict(factors=16, epochs=3, hard_ratio=0.0, learning_rate=0.1),
    "f5_bias": dict(factors=5, epochs=3, hard_ratio=0.5, item_bias=True),
}
_PINNED_HASHES = {
    "rocketlake": {
        "f3_hard": "cc6099d911401396",
        "f8_bias_regs": "da434a14885372fd",
        "f16_uniform": "7f37cc95f0751619",
        "f5_bias": "12687d1247355f2c",
    },
    "skylake-avx512": {
        "f3_hard": "cc6099d911401396",
        "f8_bias_regs": "da434a14885372fd",
        "f16_uniform": "7f37cc95f0751619",
        "f5_bias": "12687d1247355f2c",
    },
    "haswell": {
        "f3_hard": "cc6099d911401396",
        "f8_bias_regs": "a104803dc835adc1",
        "f16_uniform": "a178107ed38f03ab",
        "f5_bias": "cf2c87254a91f529",
    },
    "generic": {
        "f3_hard": "fa98130e8126a03b",
        "f8_bias_regs": "0dd268dda4833477",
        "f16_uniform": "4cb023fa887b9651",
        "f5_bias": "872fb439daef7a0e",
    },
}
_PINNED_SUMS = {  # (sum |V|, last loss) on the rocketlake host
    "f3_hard": (8.996794681064785, 0.6888602997859319),
    "f8_bias_regs": (32.870420548002585, 0.6603687307486932),
    "f16_uniform": (184.48197595379315, 0.35194887632297145),
    "f5_bias": (34.901295459480025, 0.6110160301377376),
}


def _numba_target() -> str:
    name = numba.config.CPU_NAME  # type: ignore[attr-defined]
    if not name or name == "host":
        name = llvmlite.binding.get_host_cpu_name()
    return f"{name}" if numba.__version__ == "0.68.1" else f"{name}@numba-{numba.__version__}"


@pytest.mark.parametrize("name", list(_PINNED_FITS))
def test_defaults_train_bit_for_bit_as_before_the_new_options(name):
    """Default n_candidates / n_negatives / loss take the specialised loop: same factors, bit for bit."""
    train, _ = clustered(n_users=60, n_items=40, n_clusters=4, per_user=6)
    hard = other_cluster_hard(train, k=5)
    params = {**_PINNED_BASE, **_PINNED_FITS[name]}
    model = quiet(num_threads=1, random_state=5, **params).fit(train, hard_negatives=hard)
    digest = hashlib.sha256(model.user_factors_.tobytes() + model.item_factors_.tobytes()).hexdigest()[:16]
    pinned = _PINNED_HASHES.get(_numba_target())
    if pinned is not None:
        assert digest == pinned[name]
    total, last_loss = _PINNED_SUMS[name]
    assert np.abs(model.item_factors_).astype(np.float64).sum() == pytest.approx(total, rel=1e-5)
    assert model.history_.losses[-1] == pytest.approx(last_loss, rel=1e-5)
    assert model.sampling_stats_["candidate_scores"] == 0


# ---------------------------------------------------------------------------------------------- new options
def _candidates_equal_reference(
    seed: int,
    n_candidates: int,
    n_negatives: int,
    bias: bool = False,
    hard_ratio: float = 0.3,
    n: int = 1500,
    **options,
):
    """One kernel epoch with candidates / several negatives / a loss, and the NumPy reference on the same
    draws, agree (loss, correct, candidate scores, factors). Returns the draws and the reference's picks."""
    train, _ = clustered(n_users=40, n_items=32, per_user=5)
    arrays, n_items, thr = _kernel_inputs(train, other_cluster_hard(train, k=3), hard_ratio)
    rng = np.random.default_rng(seed)
    u0 = rng.normal(0, 0.3, (40, 8)).astype(np.float32)
    v0 = rng.normal(0, 0.3, (32, 8)).astype(np.float32)
    if bias:
        u0 = np.hstack([u0, np.ones((40, 1), np.float32)])
        v0 = np.hstack([v0, np.zeros((32, 1), np.float32)])
    seeds = kernel.fix_seeds(np.array([seed + 1], np.uint64))
    users, positives, candidates, kinds = kernel.sample_candidates(
        *arrays, n_items, thr, n, n_candidates, n_negatives, seeds.copy()
    )
    u_ref, v_ref = u0.copy(), v0.copy()
    loss_ref, correct_ref, scored_ref, chosen = kernel.bpr_candidates_reference(
        users, positives, candidates, u_ref, v_ref, 0.1, 0.001, **options
    )
    u_fast, v_fast = u0.copy(), v0.copy()
    resolved = _resolved(u0.shape[1], 0.001, options)
    loss_code = kernel.LOSSES[options.get("loss", "bpr")]
    abc = [options.get("loss_a", 0.0), options.get("loss_b", 0.0), options.get("loss_c", 1.0)]
    loss, correct, skipped, n_hard, n_random, scored = bpr_epoch(
        *arrays,
        u_fast,
        v_fast,
        0.1,
        0.001,
        thr,
        seeds,
        n,
        **resolved,
        n_candidates=n_candidates,
        n_negatives=n_negatives,
        loss=loss_code,
        loss_a=abc[0],
        loss_b=abc[1],
        loss_c=abc[2],
    )
    assert skipped == np.count_nonzero(chosen < 0)
    assert n_hard + n_random + skipped == n * n_negatives
    assert scored == scored_ref == (np.count_nonzero(candidates >= 0) if n_candidates > 1 else 0)
    assert correct == correct_ref
    assert loss == pytest.approx(loss_ref, rel=1e-4)
    np.testing.assert_allclose(u_fast, u_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(v_fast, v_ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(v_fast, v0)
    return train, users, positives, candidates, kinds, chosen


def test_adaptive_sampling_updates_the_best_scored_candidate():
    # one sample, 8 candidates: the only item rows that move are the positive's and the top candidate's
    train, _ = clustered(n_users=40, n_items=32, per_user=5)
    arrays, n_items, thr = _kernel_inputs(train, other_cluster_hard(train, k=3), 0.0)
    rng = np.random.default_rng(3)
    u0 = rng.normal(0, 0.5, (40, 4)).astype(np.float32)
    v0 = rng.normal(0, 0.5, (32, 4)).astype(np.float32)
    for seed in range(1, 11):
        seeds = kernel.fix_seeds(np.array([seed], np.uint64))
        users, positives, candidates, _ = kernel.sample_candidates(
            *arrays, n_items, thr, 1, 8, 1, seeds.copy()
        )
        u, i, cands = int(users[0]), int(positives[0]), candidates[0, 0]
        best = int(cands[np.argmax(v0[cands].astype(np.float64) @ u0[u])])
        uf, vf = u0.copy(), v0.copy()
        *_, scored = bpr_epoch(
            *arrays, uf, vf, 0.1, 0.0, thr, seeds, 1, user_cols=4, reg_pos=0.0, reg_neg=0.0, n_candidates=8
        )
        assert scored == 8
        moved = set(np.flatnonzero(np.any(vf != v0, axis=1)).tolist())
        assert moved == {i, best}


def test_adaptive_sampling_equals_the_reference():
    _candidates_equal_reference(11, n_candidates=4, n_negatives=1)
    _candidates_equal_reference(12, n_candidates=3, n_negatives=1, bias=True, user_cols=8, reg_neg=0.01)


def test_several_negatives_equal_the_reference():
    *_, chosen = _candidates_equal_reference(21, n_candidates=1, n_negatives=3)
    assert chosen.shape[1] == 3
    _candidates_equal_reference(22, n_candidates=2, n_negatives=4, bias=True, user_cols=8, reg_pos=0.0)


def test_hard_bpr_loss_and_gradient_by_hand():
    a, b, c = 1.0, -1.0, 0.8
    x = np.array([-8.0, -3.0, -0.5, 0.0, 0.7, 4.0])
    sig = 1.0 / (1.0 + np.exp(-(c * x + b)))
    ell, z = kernel.hard_bpr_loss(x, a, b, c)
    np.testing.assert_allclose(ell, -np.log((sig + a) / (1 + a)), rtol=1e-12)
    h = 1e-6  # z is minus the derivative of the loss
    numeric = (kernel.hard_bpr_loss(x + h, a, b, c)[0] - kernel.hard_bpr_loss(x - h, a, b, c)[0]) / (2 * h)
    np.testing.assert_allclose(z, -numeric, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(z, c * sig * (1 - sig) / (sig + a), rtol=1e-12)
    # a negative scored far above the positive (a likely unlabelled positive) barely moves, unlike BPR
    bpr_weight = 1.0 / (1.0 + np.exp(x))
    assert z[0] < 0.002 < 0.99 < bpr_weight[0]
    assert z[0] < z[1] < z[2] and z[-1] < z[3]  # a bump, not BPR's monotone weight
    # a = 0, b = 0, c = 1 is BPR, also far out where sigmoid(t) underflows
    ell0, z0 = kernel.hard_bpr_loss(np.array([-800.0, -3.0, 2.0]), 0.0, 0.0, 1.0)
    np.testing.assert_allclose(ell0, np.logaddexp(0.0, -np.array([-800.0, -3.0, 2.0])), rtol=1e-12)
    np.testing.assert_allclose(z0, [1.0, 1 / (1 + np.exp(-3.0)), 1 / (1 + np.exp(2.0))], rtol=1e-12)

    # one reference step: x = 1 * (0.5 - -0.5) = 1, the weight z replaces BPR's 1 - sigmoid(x)
    u = np.array([[1.0]], np.float32)
    v = np.array([[0.5], [-0.5]], np.float32)
    loss, correct = bpr_step_reference(
        np.array([[0, 0, 1]]), u, v, 0.1, 0.0, loss="hard_bpr", loss_a=a, loss_b=b, loss_c=c
    )
    s1 = 1.0 / (1.0 + np.exp(-(c * 1.0 + b)))
    z1 = c * s1 * (1 - s1) / (s1 + a)
    assert loss == pytest.approx(-np.log((s1 + a) / (1 + a)))
    assert correct == 1
    assert u[0, 0] == pytest.approx(1 + 0.1 * z1 * 1.0)
    assert v[0, 0] == pytest.approx(0.5 + 0.1 * z1)
    assert v[1, 0] == pytest.approx(-0.5 - 0.1 * z1)


def test_hard_bpr_kernel_equals_the_reference():
    _candidates_equal_reference(31, 1, 1, loss="hard_bpr", loss_a=1.0, loss_b=-1.0, loss_c=0.8)
    _candidates_equal_reference(
        32, 1, 1, bias=True, user_cols=8, loss="hard_bpr", loss_a=0.0, loss_b=0.5, loss_c=2.0
    )
    _candidates_equal_reference(33, 4, 2, loss="hard_bpr", loss_a=0.5, loss_b=0.0, loss_c=1.0)


def test_general_loop_with_bpr_weights_matches_the_specialised_one():
    # hard_bpr with a = 0, b = 0, c = 1 is BPR, run by the general loop: same draws, same steps
    train, _ = clustered(n_users=40, n_items=32, per_user=5)
    arrays, _, thr = _kernel_inputs(train, other_cluster_hard(train, k=3))
    rng = np.random.default_rng(4)
    u0 = rng.normal(0, 0.1, (40, 8)).astype(np.float32)
    v0 = rng.normal(0, 0.1, (32, 8)).astype(np.float32)
    seeds = kernel.fix_seeds(np.array([77], np.uint64))
    up, vp = u0.copy(), v0.copy()
    regs = dict(user_cols=8, reg_pos=0.001, reg_neg=0.001)
    plain = bpr_epoch(*arrays, up, vp, 0.1, 0.001, thr, seeds, 3000, **regs)
    ug, vg = u0.copy(), v0.copy()
    general = bpr_epoch(*arrays, ug, vg, 0.1, 0.001, thr, seeds, 3000, **regs, loss=kernel.LOSS_HARD_BPR)
    assert general[1:] == plain[1:]  # correct, skipped, hard, random, scored
    assert general[0] == pytest.approx(plain[0], rel=1e-5)
    np.testing.assert_allclose(ug, up, rtol=1e-4, atol=1e-6)  # float32 rounding of a different formula
    np.testing.assert_allclose(vg, vp, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("hard_ratio", [0.0, 0.3, 1.0])
def test_candidates_are_never_positives(hard_ratio):
    # what the kernel trained on (it equals the reference on these draws): no candidate, no pick is a positive
    train, users, positives, candidates, _, chosen = _candidates_equal_reference(
        41, n_candidates=3, n_negatives=2, hard_ratio=hard_ratio
    )
    pos = positives_csr(train)
    assert np.all(np.asarray(pos[users, positives]).ravel() == 1)
    drawn = candidates >= 0
    assert np.all(np.asarray(pos[np.repeat(users, 6)[drawn.ravel()], candidates[drawn]]).ravel() == 0)
    picked = chosen >= 0
    assert np.all(np.asarray(pos[np.repeat(users, 2)[picked.ravel()], chosen[picked]]).ravel() == 0)
    # on crowded data, 20 of 24 cluster items liked: many collisions to reject, none gets through
    crowded, _ = clustered(per_user=20)
    arrays, n_items, thr = _kernel_inputs(crowded, other_cluster_hard(crowded), hard_ratio)
    state = kernel.fix_seeds(np.array([5], np.uint64))
    users, _, candidates, kinds = kernel.sample_candidates(*arrays, n_items, thr, 4000, 4, 3, state)
    drawn = candidates >= 0
    assert drawn.mean() > 0.99
    u = np.repeat(users, 12)[drawn.ravel()]
    assert np.all(np.asarray(positives_csr(crowded)[u, candidates[drawn]]).ravel() == 0)
    if hard_ratio == 1.0:
        assert np.all(kinds == kernel.KIND_HARD)


@pytest.mark.parametrize(
    "options",
    [
        {"n_candidates": 4},
        {"n_negatives": 3},
        {"loss": "hard_bpr"},
        {"n_candidates": 3, "n_negatives": 2, "loss": "hard_bpr", "item_bias": True},
    ],
)
def test_each_option_still_learns_the_clusters(options):
    train, valid = clustered()
    model = quiet(factors=16, epochs=20, learning_rate=0.1, num_threads=1, **options)
    model.fit(train, hard_negatives=other_cluster_hard(train))
    ndcg = evaluate(model.user_factors_, model.item_factors_, valid, train, ks=(10,)).metrics["ndcg@10"]
    assert ndcg > 0.3  # random ranking of 96 items gives about 0.08
    stats = model.sampling_stats_
    negatives = options.get("n_negatives", 1)
    assert (
        stats["hard_count"] + stats["random_count"] + stats["skipped_count"] == 20 * 5 * train.nnz * negatives
    )
    assert (stats["candidate_scores"] > 0) == (options.get("n_candidates", 1) > 1)


def test_checkpoints_record_the_options_and_resume_exactly(tmp_path, caplog):
    train, _ = clustered()
    params = dict(factors=8, epochs=4, num_threads=1, n_candidates=3, n_negatives=2, loss="hard_bpr")
    full = quiet(**params).fit(train)
    quiet(**params).fit(train, checkpoint_dir=tmp_path, checkpoint_every=2, callback=_stop_at(2))
    resumed = quiet(**params).fit(train, resume_from=tmp_path / "bpr_epoch_0002.npz")
    np.testing.assert_array_equal(resumed.item_factors_, full.item_factors_)
    assert resumed.sampling_stats_ == full.sampling_stats_
    with caplog.at_level("WARNING"):
        quiet(**{**params, "n_candidates": 1}).fit(train, resume_from=tmp_path)
    assert "will not be exact" in caplog.text


def test_resume_from_a_checkpoint_written_before_the_options(tmp_path):
    train, _ = clustered()
    params = dict(factors=8, epochs=4, num_threads=1)
    full = quiet(**params).fit(train)
    quiet(**params).fit(train, checkpoint_dir=tmp_path, checkpoint_every=2, callback=_stop_at(2))
    path = tmp_path / "bpr_epoch_0002.npz"
    with np.load(path) as data:  # the old layout: no options, three counts
        old = {k: data[k] for k in data.files if k != "options"}
    old["counts"] = old["counts"][:3]
    np.savez(path, **old)
    resumed = quiet(**params).fit(train, resume_from=path)
    np.testing.assert_array_equal(resumed.item_factors_, full.item_factors_)
    assert resumed.sampling_stats_ == full.sampling_stats_


def _stop_at(epoch: int):
    def stop(step: TrainingStep) -> None:
        if step.step == epoch:
            raise StopTraining("simulated interruption")

    return stop


# ---------------------------------------------------------------------------------------------- training
def test_learns_the_clusters():
    train, valid = clustered()
    model = quiet(factors=16, epochs=30, learning_rate=0.1, num_threads=1).fit(
        train, hard_negatives=other_cluster_hard(train)
    )
    ndcg = evaluate(model.user_factors_, model.item_factors_, valid, train, ks=(10,)).metrics["ndcg@10"]
    assert ndcg > 0.3  # random ranking of 96 items gives about 0.08; cluster-aware about 0.4
    assert model.history_.losses[-1] < model.history_.losses[0]
    assert model.user_factors_.dtype == np.float32
    assert 0.25 < model.sampling_stats_["hard_ratio"] < 0.35


def test_single_thread_runs_are_identical():
    train, _ = clustered()
    hard = other_cluster_hard(train)
    a = quiet(factors=8, epochs=5, num_threads=1, random_state=3).fit(train, hard_negatives=hard)
    b = quiet(factors=8, epochs=5, num_threads=1, random_state=3).fit(train, hard_negatives=hard)
    c = quiet(factors=8, epochs=5, num_threads=1, random_state=4).fit(train, hard_negatives=hard)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert a.history_.losses == b.history_.losses
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_divergence_names_epoch_and_learning_rate(tmp_path):
    train, _ = clustered()
    model = quiet(factors=8, epochs=5, learning_rate=1.0, regularization=10.0, init_std=1.0, num_threads=1)
    with pytest.raises(ModelFitError, match=r"epoch 1 with learning_rate=1\b"):
        model.fit(train, checkpoint_dir=tmp_path, checkpoint_every=1)
    assert not hasattr(model, "user_factors_")
    assert not list(tmp_path.iterdir())  # nothing saved


def test_checkpoint_resume_equals_uninterrupted_run(tmp_path):
    train, _ = clustered()
    hard = other_cluster_hard(train)
    params = dict(factors=8, epochs=6, num_threads=1, lr_decay=0.5, lr_decay_every=2, random_state=11)
    full = quiet(**params).fit(train, hard_negatives=hard)

    def stop_at_3(step: TrainingStep) -> None:
        if step.step == 3:
            raise StopTraining("simulated interruption")

    part = quiet(**params).fit(
        train, hard_negatives=hard, checkpoint_dir=tmp_path, checkpoint_every=3, callback=stop_at_3
    )
    assert part.stopped_early_ and len(part.history_.steps) == 3
    resumed = quiet(**params).fit(train, hard_negatives=hard, resume_from=tmp_path)
    np.testing.assert_array_equal(resumed.user_factors_, full.user_factors_)
    np.testing.assert_array_equal(resumed.item_factors_, full.item_factors_)
    assert resumed.history_.steps == [1, 2, 3, 4, 5, 6]
    assert resumed.history_.losses == full.history_.losses
    assert resumed.sampling_stats_ == full.sampling_stats_


def test_lr_decay_schedule_in_history():
    train, _ = clustered()
    model = quiet(factors=4, epochs=5, learning_rate=0.08, lr_decay=0.5, lr_decay_every=2, num_threads=1)
    model.fit(train)
    assert model.history_.learning_rates == pytest.approx([0.08, 0.08, 0.04, 0.04, 0.02])
    assert len(model.history_.durations) == 5


def test_callback_gets_every_epoch_and_can_stop():
    train, _ = clustered()
    seen: list[TrainingStep] = []

    def cb(step: TrainingStep) -> None:
        seen.append(step)
        if step.step == 2:
            raise StopTraining("enough")

    model = quiet(factors=4, epochs=10, num_threads=1).fit(train, callback=cb)
    assert [s.step for s in seen] == [1, 2]
    assert seen[1].elapsed >= seen[0].elapsed > 0
    assert seen[0].loss is not None and seen[0].learning_rate == 0.05
    assert model.stopped_early_ and model.stop_reason_ == "enough"
    assert model.best_epoch_ == 2


def test_early_stopping_on_validation_ndcg():
    train, valid = clustered()
    monitor = ValidationMonitor(valid, train, metric="ndcg@10", ks=(10,), patience=2)
    # a decaying-to-nothing learning rate stalls the metric, so patience must trigger before epoch 60
    model = quiet(factors=16, epochs=60, learning_rate=0.2, lr_decay=0.1, lr_decay_every=4, num_threads=1)
    model.fit(train, callback=[monitor])
    assert model.stopped_early_
    assert len(model.history_.steps) < 60
    best = model.history_.get_best_epoch("ndcg@10")
    assert model.best_epoch_ == best == monitor.best_step
    got = evaluate(model.user_factors_, model.item_factors_, valid, train, ks=(10,)).metrics["ndcg@10"]
    assert got == pytest.approx(monitor.best_value)  # best factors restored


def test_item_factors_from_a_projected_matrix():
    train, _ = clustered()
    emb = np.random.default_rng(0).normal(size=(train.shape[1], 40))
    for method in ("svd", "pca"):
        model = quiet(factors=8, epochs=1, num_threads=1, learning_rate=1e-6).fit(
            train, item_factors_init=emb, init_projection=method
        )
        assert model.item_factors_.shape == (train.shape[1], 8)
        assert model.item_factors_.std() == pytest.approx(0.01, rel=0.05)
    # 40 embedding dims for 64 factors: the projection fills 40 columns, the rest start at zero
    wide = quiet(factors=64, epochs=1, num_threads=1, learning_rate=1e-9).fit(train, item_factors_init=emb)
    assert np.abs(wide.item_factors_[:, 40:]).max() < 1e-6
    with pytest.raises(ValueError, match="NaN or inf"):
        quiet(factors=8, epochs=1).fit(train, item_factors_init=np.full_like(emb, np.nan))


# ---------------------------------------------------------------------------------------------- checks
def test_validate_reports_and_raises():
    train, _ = clustered()
    hard = other_cluster_hard(train)
    lil = train.tolil()
    lil[5] = 0
    messages = BPR.validate(lil.tocsr(), hard)
    assert any("1 of 240 users have no positives" in m for m in messages)
    assert any("239 hard negatives are also positives" in m for m in messages)
    with pytest.raises(DataError, match="shape"):
        BPR.validate(train, hard[:, :10])
    broken = train.copy()
    broken.indices[3] = 500
    with pytest.raises(DataError, match="outside"):
        BPR.validate(broken)
    with pytest.raises(DataError, match="no positive"):
        BPR.validate(sp.csr_matrix((3, 4)))
    with pytest.raises(DataError, match="sparse"):
        BPR.validate(np.ones((3, 4)))


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("factors", 0),
        ("factors", 2.5),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("regularization", -1e-9),
        ("epochs", 0),
        ("samples_per_epoch", 0),
        ("hard_ratio", -0.01),
        ("hard_ratio", 1.01),
        ("lr_decay", 0.0),
        ("lr_decay", 1.5),
        ("lr_decay_every", 0),
        ("init_std", 0.0),
        ("num_threads", -1),
        ("random_state", -1),
        ("show_progress", "yes"),
        ("n_candidates", 0),
        ("n_candidates", 2.0),
        ("n_negatives", 0),
        ("n_negatives", True),
        ("loss", "warp"),
        ("loss", None),
        ("hard_bpr_a", -0.1),
        ("hard_bpr_b", float("inf")),
        ("hard_bpr_c", 0.0),
    ],
)
def test_each_argument_checked_with_its_name(name, bad):
    with pytest.raises(ValueError, match=rf"but got {name}="):
        BPR(**{name: bad})


@pytest.mark.parametrize(
    ("name", "edge"),
    [
        ("hard_ratio", 0.0),
        ("hard_ratio", 1.0),
        ("lr_decay", 1.0),
        ("regularization", 0.0),
        ("num_threads", 0),
        ("n_candidates", 1),
        ("n_negatives", 1),
        ("loss", "hard_bpr"),
        ("hard_bpr_a", 0.0),
        ("hard_bpr_b", -5.0),
    ],
)
def test_edges_accepted(name, edge):
    assert BPR(**{name: edge}).get_params()[name] == edge


def test_get_params_round_trip():
    model = BPR(factors=32, hard_ratio=0.5, random_state=7)
    params = model.get_params()
    assert params["factors"] == 32 and params["hard_ratio"] == 0.5 and params["random_state"] == 7
    assert BPR(**params).get_params() == params
