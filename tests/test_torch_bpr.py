"""TorchBPR: the learning-rate curves by hand, argument checks, exact resume, learning on a known structure,
the callback contract, negative sampling and the optimizer choices."""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from core.bpr.negative_sampler import UniformNegativeSampler  # noqa: E402
from core.bpr.optimizer import OptimizerConfig, learning_rate_at, make_optimizer  # noqa: E402
from core.bpr.torch_checkpoint import load_torch_checkpoint  # noqa: E402
from core.bpr.torch_net import BPRNet, EmbeddingDropout  # noqa: E402
from core.bpr.torch_trainer import TorchBPR  # noqa: E402
from core.callbacks import TrainingStep, ValidationMonitor  # noqa: E402
from core.errors import ConfigError, ModelFitError, StopTraining  # noqa: E402
from core.evaluate import evaluate  # noqa: E402
from tests.planted import clustered as planted_clusters  # noqa: E402

#: The planted clusters at a size where a few torch epochs learn them.
clustered = functools.partial(planted_clusters, n_users=120, n_items=48, per_user=8)


def opt(**kw) -> OptimizerConfig:
    kw.setdefault("optimizer", "adam")
    kw.setdefault("learning_rate", 0.05)
    kw.setdefault("user_weight_decay", 0.0)
    kw.setdefault("item_weight_decay", 0.0)
    kw.setdefault("scheduler", "constant")
    return OptimizerConfig(**kw)


def model(**kw) -> TorchBPR:
    kw.setdefault("factors", 8)
    kw.setdefault("epochs", 3)
    kw.setdefault("batch_size", 128)
    kw.setdefault("samples_per_epoch", 2)
    kw.setdefault("optimizer", opt())
    kw.setdefault("num_threads", 1)
    kw.setdefault("item_bias", False)  # the constructor default before core.defaults.BPR_DEFAULTS
    return TorchBPR(**kw)


# ---------------------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize(
    ("scheduler", "extra", "expected"),
    [
        ("constant", {}, {1: 1.0, 3: 1.0, 5: 1.0}),
        ("linear", {"min_lr": 0.2}, {1: 1.0, 2: 0.8, 3: 0.6, 5: 0.2}),
        ("cosine", {"min_lr": 0.0}, {1: 1.0, 2: (1 + math.cos(math.pi / 4)) / 2, 3: 0.5, 5: 0.0}),
        ("cosine", {"min_lr": 0.2}, {1: 1.0, 3: 0.6, 5: 0.2}),
        ("exponential", {"gamma": 0.5, "min_lr": 0.2}, {1: 1.0, 2: 0.5, 3: 0.25, 4: 0.2, 5: 0.2}),
    ],
)
def test_scheduler_curves_match_their_formulas(scheduler, extra, expected):
    config = OptimizerConfig(learning_rate=1.0, scheduler=scheduler, **extra)
    for epoch, value in expected.items():
        assert learning_rate_at(config, epoch, 5) == pytest.approx(value, abs=1e-12), epoch


def test_warmup_cosine_rises_linearly_then_follows_cosine_to_min_lr():
    config = OptimizerConfig(learning_rate=0.1, scheduler="warmup_cosine", warmup_epochs=2, min_lr=0.0)
    curve = [learning_rate_at(config, e, 10) for e in range(1, 11)]
    assert curve[0] == pytest.approx(0.05)  # lr / warmup_epochs
    assert curve[1] == pytest.approx(0.1)  # peak at the end of warmup
    assert curve[5] == pytest.approx(0.05)  # epoch 6: half way through the 8 cosine epochs
    assert curve[9] == pytest.approx(0.0)  # min_lr at the last epoch
    assert all(a >= b for a, b in itertools.pairwise(curve[1:]))  # monotone after the peak


def test_one_epoch_runs_at_the_full_rate_and_bad_epochs_are_refused():
    assert learning_rate_at(OptimizerConfig(learning_rate=0.3, scheduler="cosine"), 1, 1) == 0.3
    with pytest.raises(ConfigError, match="epoch"):
        learning_rate_at(OptimizerConfig(), 6, 5)
    with pytest.raises(ConfigError, match="epoch"):
        learning_rate_at(OptimizerConfig(), 0, 5)


def test_fit_applies_the_curve_to_every_epoch():
    train, _ = clustered()
    config = opt(scheduler="linear", learning_rate=0.05, min_lr=0.01)
    m = model(epochs=3, optimizer=config).fit(train)
    assert m.history_.learning_rates == pytest.approx([0.05, 0.03, 0.01])


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "rmsprop"),
        ("scheduler", "step"),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("user_weight_decay", -1e-3),
        ("item_weight_decay", float("inf")),
        ("momentum", 1.0),
        ("betas", (0.9, 1.0)),
        ("betas", (0.9,)),
        ("eps", 0.0),
        ("warmup_epochs", -1),
        ("warmup_epochs", 1.5),
        ("min_lr", 1.0),  # above learning_rate
        ("min_lr", -1e-6),
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("grad_clip", 0.0),
    ],
)
def test_optimizer_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        OptimizerConfig(**{"learning_rate": 0.01, field: value})


def test_optimizer_config_accepts_the_edges():
    OptimizerConfig(momentum=0.0, min_lr=0.01, learning_rate=0.01, gamma=1.0, grad_clip=None, warmup_epochs=0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("factors", 0),
        ("epochs", 0),
        ("batch_size", 0),
        ("dropout", 1.0),
        ("loss", "warp"),
        ("device", "tpu"),
    ],
)
def test_estimator_rejects_bad_values_naming_the_parameter(name, value):
    with pytest.raises(ConfigError, match=name):
        TorchBPR(**{name: value})


def test_cuda_without_a_gpu_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    train, _ = clustered()
    with pytest.raises(ConfigError, match="cuda"):
        model(device="cuda").fit(train)


def test_divergence_is_a_named_error():
    train, _ = clustered()
    config = opt(optimizer="sgd", learning_rate=1e30, momentum=0.0, grad_clip=None)
    with pytest.raises(ModelFitError, match=r"epoch 1 with lr=1e\+30"):
        model(optimizer=config, init_std=1.0).fit(train)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("item_bias", [False, True])
def test_fit_returns_self_with_finite_float32_factors(item_bias):
    train, _ = clustered()
    m = model(item_bias=item_bias)
    assert m.fit(train) is m
    width = 8 + item_bias
    assert m.user_factors_.shape == (120, width) and m.item_factors_.shape == (48, width)
    assert m.user_factors_.dtype == np.float32 and m.item_factors_.dtype == np.float32
    assert np.isfinite(m.user_factors_).all() and np.isfinite(m.item_factors_).all()
    if item_bias:
        np.testing.assert_array_equal(m.user_factors_[:, -1], 1.0)
        assert np.abs(m.item_factors_[:, -1]).max() > 0  # the bias was learned
    assert m.history_.steps == [1, 2, 3] and all(np.isfinite(m.history_.losses))
    assert m.best_epoch_ == 3 and not m.stopped_early_
    assert m.get_params()["factors"] == 8 and m.get_params()["item_bias"] is item_bias


def test_learns_the_planted_clusters_far_better_than_random():
    train, valid = clustered()
    m = model(epochs=8, dropout=0.1).fit(train)
    trained = evaluate(m.user_factors_, m.item_factors_, valid, train, ks=(10,)).metrics["recall@10"]
    rng = np.random.default_rng(1)
    random = evaluate(rng.normal(size=(120, 8)), rng.normal(size=(48, 8)), valid, train, ks=(10,))
    # random: 10 of the 40 unseen items -> recall ~0.25; the 4 unseen own-cluster items ranked first -> ~1
    assert random.metrics["recall@10"] < 0.4
    assert trained > 0.85
    assert m.history_.losses[-1] < m.history_.losses[0]


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam", "adamw"])
def test_every_optimizer_trains(name):
    train, _ = clustered()
    lr = {"sgd": 1.0, "adagrad": 0.1}.get(name, 0.05)
    m = model(optimizer=opt(optimizer=name, learning_rate=lr, user_weight_decay=1e-4, item_weight_decay=1e-4))
    m.fit(train)
    assert np.isfinite(m.user_factors_).all()
    assert m.history_.losses[-1] < math.log(2)  # below the loss of all-equal scores


def test_user_and_item_weight_decay_are_two_param_groups(tmp_path):
    users, items = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(4, 2))
    optimizer = make_optimizer(opt(user_weight_decay=0.1, item_weight_decay=0.2), users, items)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.2]
    assert optimizer.param_groups[0]["params"][0] is users and optimizer.param_groups[1]["params"][0] is items
    # and fit trains with them: the checkpoint's optimizer state says so
    train, _ = clustered()
    config = opt(optimizer="adamw", user_weight_decay=0.1, item_weight_decay=0.2)
    model(epochs=1, optimizer=config).fit(train, checkpoint_dir=tmp_path, checkpoint_every=1)
    groups = load_torch_checkpoint(tmp_path)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.2]


def test_embedding_dropout_is_inverted_and_off_at_eval():
    x = torch.ones(2000, 16)
    drop = EmbeddingDropout(0.25, torch.Generator().manual_seed(0))
    y = drop(x)
    assert torch.unique(y).tolist() == pytest.approx([0.0, 1 / 0.75])  # zeroed or scaled by 1 / (1 - p)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.02  # expectation kept
    drop.eval()
    assert drop(x) is x
    assert EmbeddingDropout(0.0)(x) is x
    with pytest.raises(ConfigError, match="dropout"):
        EmbeddingDropout(1.0)


# ---------------------------------------------------------------------------------------------- resume
def test_checkpoint_then_resume_equals_the_uninterrupted_run(tmp_path: Path):
    train, _ = clustered()
    params = {
        "epochs": 4,
        "dropout": 0.2,
        "item_bias": True,
        "optimizer": opt(optimizer="adamw", grad_clip=0.5),
    }
    full = model(**params).fit(train)

    def interrupt(step: TrainingStep) -> None:
        if step.step == 2:
            raise StopTraining("simulated interruption")

    model(**params).fit(train, callback=interrupt, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["torch_bpr_epoch_0002.pt"]  # no temp file left
    resumed = model(**params).fit(train, resume_from=tmp_path)
    assert torch.equal(torch.from_numpy(resumed.user_factors_), torch.from_numpy(full.user_factors_))
    assert torch.equal(torch.from_numpy(resumed.item_factors_), torch.from_numpy(full.item_factors_))
    assert resumed.history_.steps == [1, 2, 3, 4]
    assert resumed.history_.losses == full.history_.losses


def test_resume_refuses_another_shape_or_optimizer(tmp_path: Path):
    train, _ = clustered()
    model(epochs=1).fit(train, checkpoint_dir=tmp_path, checkpoint_every=1)
    with pytest.raises(Exception, match="do not fit"):
        model(factors=4).fit(train, resume_from=tmp_path)
    with pytest.raises(ConfigError, match="optimizer"):
        model(optimizer=opt(optimizer="sgd")).fit(train, resume_from=tmp_path / "torch_bpr_epoch_0001.pt")


def test_resume_warns_when_the_curve_or_the_loss_differ_from_the_checkpoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    train, _ = clustered()
    model(epochs=2).fit(train, checkpoint_dir=tmp_path, checkpoint_every=1)
    first = tmp_path / "torch_bpr_epoch_0001.pt"
    with caplog.at_level("WARNING"):
        model(epochs=2).fit(train, resume_from=first)
    assert "will not equal" not in caplog.text
    with caplog.at_level("WARNING"):
        model(epochs=3, loss="hard_bpr", optimizer=opt(learning_rate=0.01)).fit(train, resume_from=first)
    assert "other loss, optimizer, schedule_epochs than the checkpoint's" in caplog.text


# ---------------------------------------------------------------------------------------------- callbacks
def test_callbacks_run_once_per_epoch_with_numpy_factors():
    train, _ = clustered()
    seen: list[TrainingStep] = []
    model(epochs=3, item_bias=True).fit(train, callback=[seen.append])
    assert [s.step for s in seen] == [1, 2, 3]
    assert all(s.learning_rate == 0.05 and np.isfinite(s.loss) for s in seen)
    assert all(isinstance(s.user_factors, np.ndarray) and s.user_factors.dtype == np.float32 for s in seen)
    assert seen[0].user_factors.shape == (120, 9) and seen[0].item_factors.shape == (48, 9)


def test_stop_training_ends_the_fit_after_that_epoch():
    train, _ = clustered()

    def stop_at_two(step: TrainingStep) -> None:
        if step.step == 2:
            raise StopTraining("enough")

    m = model(epochs=5).fit(train, callback=stop_at_two)
    assert m.history_.steps == [1, 2]
    assert m.stopped_early_ and m.stop_reason_ == "enough" and m.best_epoch_ == 2


def test_validation_monitor_stops_early_with_min_delta_and_restores_the_best():
    train, valid = clustered()
    # no later epoch can beat the first by a whole unit of ndcg: patience 2 stops after epoch 3
    monitor = ValidationMonitor(valid, train, metric="ndcg@10", patience=2, min_delta=1.0)
    m = model(epochs=6).fit(train, callback=monitor)
    assert m.stopped_early_ and m.history_.steps == [1, 2, 3]
    assert m.history_.val_steps == [1, 2, 3] and len(m.history_.val_metrics["ndcg@10"]) == 3
    assert m.best_epoch_ == 1
    assert monitor.best_factors is not None
    np.testing.assert_array_equal(m.user_factors_, monitor.best_factors[0])


def test_validation_monitor_without_min_delta_keeps_training_while_improving():
    train, valid = clustered()
    monitor = ValidationMonitor(valid, train, metric="ndcg@10", patience=3)
    m = model(epochs=4).fit(train, callback=monitor)
    assert not m.stopped_early_ and m.history_.val_steps == [1, 2, 3, 4]
    assert m.best_epoch_ == m.history_.get_best_epoch("ndcg@10")


# ---------------------------------------------------------------------------------------------- negatives
def test_uniform_sampler_never_returns_a_train_positive():
    rng = np.random.default_rng(0)
    dense = rng.random((30, 20)) < 0.5
    dense[0] = True  # liked everything: no negative exists
    dense[1] = True
    dense[1, 7] = False  # liked all but item 7
    sampler = UniformNegativeSampler(sp.csr_matrix(dense.astype(np.float32)))
    users = np.repeat(np.arange(30), 500)
    negs = sampler.sample(users, 1, rng)
    assert np.all(negs[users == 0] == -1)
    assert np.all(negs[users == 1] == 7)
    rest = users >= 2
    assert not dense[users[rest], negs[rest]].any()
    # uniform over each user's negatives: every negative of user 2 shows up
    assert set(negs[users == 2]) == set(np.flatnonzero(~dense[2]))


def test_a_custom_negative_sampler_is_used():
    train, _ = clustered(n_clusters=4)

    class NextCluster:
        """The first item of the next cluster: never a positive in the clustered data."""

        def __init__(self) -> None:
            self.calls: list[tuple[int, int]] = []

        def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
            self.calls.append((epoch, users.size))
            return ((users % 4 + 1) % 4) * 12

    sampler = NextCluster()
    model(epochs=2, negative_sampler=sampler).fit(train)
    assert sampler.calls == [(1, 2 * train.nnz), (2, 2 * train.nnz)]


def test_a_negative_sampler_returning_positives_is_refused():
    train, _ = clustered()

    class Positives:
        def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
            return train.indices[train.indptr[users]].astype(np.int64)

    with pytest.raises(ConfigError, match="train positives"):
        model(negative_sampler=Positives()).fit(train)


def test_the_hard_bpr_loss_is_the_kernels() -> None:
    from core.bpr.kernel import hard_bpr_loss

    x = np.linspace(-6.0, 6.0, 25)
    model = TorchBPR(loss="hard_bpr", hard_bpr_a=1.0, hard_bpr_b=-1.0, hard_bpr_c=0.8)
    got = model._ranking_loss(torch.tensor(x, dtype=torch.float64)).numpy()
    expected, _ = hard_bpr_loss(x, 1.0, -1.0, 0.8)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    plain = TorchBPR(loss="hard_bpr", hard_bpr_a=0.0, hard_bpr_b=0.0, hard_bpr_c=1.0)  # reduces to BPR
    bpr = TorchBPR(loss="bpr")
    t = torch.tensor(x, dtype=torch.float64)
    np.testing.assert_allclose(plain._ranking_loss(t).numpy(), bpr._ranking_loss(t).numpy(), rtol=1e-12)
    with pytest.raises(ConfigError, match="hard_bpr_c"):
        TorchBPR(loss="hard_bpr", hard_bpr_c=0.0)


def test_a_fit_stopped_early_on_a_longer_curve_equals_the_longer_fit_at_that_epoch():
    """A refit at a trial's best epoch k keeps the trial's learning-rate curve (schedule_epochs): it is the
    longer run as it stood after epoch k, even for a cosine curve that depends on the total."""
    train, _ = clustered()
    cosine = opt(scheduler="cosine", min_lr=0.0)
    snapshots: dict[int, np.ndarray] = {}
    model(epochs=6, optimizer=cosine).fit(
        train, callback=lambda s: snapshots.setdefault(s.step, s.item_factors.copy())
    )
    short = model(epochs=3, schedule_epochs=6, optimizer=cosine).fit(train)
    np.testing.assert_array_equal(short.item_factors_, snapshots[3])
    squeezed = model(epochs=3, optimizer=cosine).fit(train)  # its own 3-epoch curve: another model
    assert not np.array_equal(squeezed.item_factors_, snapshots[3])
    assert short.history_.learning_rates == [learning_rate_at(cosine, e, 6) for e in (1, 2, 3)]
    with pytest.raises(ConfigError, match="schedule_epochs"):
        model(epochs=6, schedule_epochs=5)


# ------------------------------------------------------------------------------------------ per-triplet L2
def test_the_per_triplet_l2_has_the_kernels_per_sample_gradient():
    m = model(regularization=0.2, reg_neg=0.05)
    assert m.regularizations() == (0.2, 0.2, 0.05)
    gen = torch.Generator().manual_seed(0)
    u, vi, vj = (torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    m._penalty(u, vi, vj).sum().backward()
    # the kernel's step: u += lr * (z * (vi - vj) - reg * u), so the penalty's gradient is reg * row, per read
    torch.testing.assert_close(u.grad, 0.2 * u.detach())
    torch.testing.assert_close(vi.grad, 0.2 * vi.detach())
    torch.testing.assert_close(vj.grad, 0.05 * vj.detach())
    assert model()._penalty(u, vi, vj) == 0.0  # default: none, the loss as before


@pytest.mark.parametrize("sparse", [False, True])
def test_per_triplet_l2_shrinks_the_factors_and_is_checked(sparse: bool):
    train, _ = clustered()
    plain = model(optimizer=opt(sparse=sparse), epochs=4).fit(train)
    shrunk = model(optimizer=opt(sparse=sparse), epochs=4, regularization=0.5).fit(train)
    assert np.linalg.norm(shrunk.item_factors_) < 0.5 * np.linalg.norm(plain.item_factors_)
    with pytest.raises(ConfigError, match="regularization must be a finite number >= 0"):
        model(regularization=-0.1)
    with pytest.raises(ConfigError, match="reg_pos must be None or a finite number >= 0"):
        model(reg_pos=float("nan"))


# ------------------------------------------------------------------------------------- adaptive sampling
@pytest.mark.parametrize("item_bias", [False, True])
def test_best_candidates_is_the_argmax_of_the_current_scores(item_bias: bool):
    rng = np.random.default_rng(3)
    width = 5 + item_bias
    net = BPRNet(
        rng.normal(size=(7, 5)).astype(np.float32),
        rng.normal(size=(11, width)).astype(np.float32),
        item_bias,
        EmbeddingDropout(0.5),  # dropout never applies to the choice
    )
    users = rng.integers(0, 7, size=40)
    candidates = rng.integers(-1, 11, size=(4, 40))
    candidates[:, 0] = [3, 3, -1, 3]  # equal scores: the first wins
    candidates[:, 1] = [-1, -1, 9, -1]  # one drawn: that one
    chosen = net.best_candidates(torch.from_numpy(users), torch.from_numpy(candidates)).numpy()
    users_np, items_np = net.export()
    scores = np.einsum("nf,cnf->cn", users_np[users], items_np[np.maximum(candidates, 0)])
    scores[candidates < 0] = -np.inf
    np.testing.assert_array_equal(chosen, candidates[scores.argmax(axis=0), np.arange(40)])
    assert chosen[0] == 3 and chosen[1] == 9


def test_adaptive_sampling_draws_n_candidates_and_drops_only_triplets_without_any():
    train, _ = clustered(n_clusters=4)

    class SomeSkipped:
        """Another cluster's first item (never a positive); users 0 mod 5 get no negative at all, even users
        none on the first draw."""

        def __init__(self) -> None:
            self.calls = 0

        def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
            self.calls += 1
            out = ((users % 4 + 1 + (self.calls - 1) % 3) % 4) * 12
            out[users % 5 == 0] = -1
            if self.calls == 1:
                out[users % 2 == 0] = -1
            return out.astype(np.int64)

    sampler = SomeSkipped()
    m = model(epochs=1, n_candidates=3, negative_sampler=sampler)
    pos = train.tocsr()
    from core.bpr.negative_sampler import positive_keys
    from core.bpr.sampler import user_of_interactions

    users, items, negs = m._triplets(
        pos, user_of_interactions(pos), positive_keys(pos), sampler, 500, 1, np.random.default_rng(0)
    )
    assert sampler.calls == 3 and negs.shape == (3, users.size) and items.shape == users.shape
    assert users.size < 500 and not (users % 5 == 0).any()  # a triplet with no candidate is gone
    even = users % 2 == 0
    assert even.any() and (negs[0, even] == -1).all() and (negs[1:, even] >= 0).all()  # the rest stays
    assert (negs[:, ~even] >= 0).all()


def test_adaptive_sampling_trains_resumes_exactly_and_defaults_to_one_draw(tmp_path: Path):
    train, valid = clustered()

    class Counting(UniformNegativeSampler):
        calls = 0

        def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
            Counting.calls += 1
            return super().sample(users, epoch, rng)

    model(epochs=2, negative_sampler=Counting(train)).fit(train)
    assert Counting.calls == 2  # n_candidates=1: one draw per epoch, the run as before
    Counting.calls = 0
    params = {"epochs": 6, "n_candidates": 4, "item_bias": True, "optimizer": opt(sparse=True)}
    full = model(**params, negative_sampler=Counting(train)).fit(train)
    assert Counting.calls == 6 * 4
    recall = evaluate(full.user_factors_, full.item_factors_, valid, train, ks=(10,)).metrics["recall@10"]
    assert recall > 0.85

    def interrupt(step: TrainingStep) -> None:
        if step.step == 3:
            raise StopTraining("simulated interruption")

    model(**params).fit(train, callback=interrupt, checkpoint_dir=tmp_path, checkpoint_every=3)
    resumed = model(**params).fit(train, resume_from=tmp_path)
    plain = model(**params).fit(train)
    np.testing.assert_array_equal(resumed.item_factors_, plain.item_factors_)
    np.testing.assert_array_equal(resumed.user_factors_, plain.user_factors_)
    assert load_torch_checkpoint(tmp_path)["run"].count('"n_candidates": 4') == 1
    with pytest.raises(ConfigError, match="n_candidates must be an integer >= 1"):
        model(n_candidates=0)


def test_each_batch_trains_on_the_candidates_the_net_scores_highest(monkeypatch: pytest.MonkeyPatch):
    train, _ = clustered()
    chosen: list[torch.Tensor] = []
    trained: list[torch.Tensor] = []
    pick, forward = BPRNet.best_candidates, BPRNet.forward

    def spy_pick(self: BPRNet, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        assert candidates.shape == (3, users.numel())
        chosen.append(pick(self, users, candidates))
        return chosen[-1]

    def spy_forward(self: BPRNet, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
        trained.append(neg.clone())
        return forward(self, users, pos, neg)

    monkeypatch.setattr(BPRNet, "best_candidates", spy_pick)
    monkeypatch.setattr(BPRNet, "forward", spy_forward)
    model(epochs=2, n_candidates=3).fit(train)
    assert len(trained) == len(chosen) == 2 * math.ceil(2 * train.nnz / 128)
    assert all(torch.equal(a, b) for a, b in zip(trained, chosen, strict=True))


def test_identical_candidates_train_as_one_draw():
    """A sampler that ignores ``rng`` gives n equal candidates: extra draws leave the random stream as one
    draw's, so the fit equals ``n_candidates=1`` bit for bit."""
    train, _ = clustered(n_clusters=4)

    class NextCluster:
        def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
            return (((users % 4 + 1 + epoch % 3) % 4) * 12 + users % 3).astype(np.int64)

    params = {"epochs": 3, "item_bias": True, "dropout": 0.1, "negative_sampler": NextCluster()}
    one, three = model(**params).fit(train), model(**params, n_candidates=3).fit(train)
    np.testing.assert_array_equal(one.user_factors_, three.user_factors_)
    np.testing.assert_array_equal(one.item_factors_, three.item_factors_)
