"""SparseRowOptimizer: each rule against a NumPy reference, untouched rows left alone, equality with torch's
dense optimizers when every row is touched, sparse clipping, and TorchBPR trained with ``sparse=True``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from core.bpr.optimizer import OptimizerConfig, make_optimizer  # noqa: E402
from core.bpr.sparse_optimizer import RULES, SparseRowOptimizer, clip_sparse_grad_norm_  # noqa: E402
from core.bpr.torch_trainer import TorchBPR  # noqa: E402
from core.callbacks import TrainingStep  # noqa: E402
from core.errors import ConfigError, StopTraining  # noqa: E402
from core.evaluate import evaluate  # noqa: E402
from tests.test_torch_bpr import clustered  # noqa: E402

LR, DECAY, MOMENTUM, BETAS, EPS = 0.1, 0.05, 0.9, (0.8, 0.9), 1e-3


def table(seed: int = 0, rows: int = 6, cols: int = 3) -> torch.nn.Parameter:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.Parameter(torch.randn(rows, cols, generator=gen, dtype=torch.float64))


def backward(weight: torch.Tensor, lookups: list[int], sparse: bool, seed: int) -> None:
    """A loss through ``F.embedding`` of ``lookups`` (rows may repeat), with fixed random weights."""
    idx = torch.tensor(lookups)
    gen = torch.Generator().manual_seed(100 + seed)
    coef = torch.randn(len(lookups), weight.shape[1], generator=gen, dtype=weight.dtype)
    (F.embedding(idx, weight, sparse=sparse) * coef).sum().backward()


def reference(rule: str, w: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The module docstring's rules in NumPy: ``steps`` of (touched rows, their summed gradient)."""
    w = w.copy()
    buf, total, m, v = (np.zeros_like(w) for _ in range(4))
    for t, (rows, g) in enumerate(steps, start=1):
        x = w[rows]
        if rule != "adamw":
            g = g + DECAY * x
        if rule == "sgd":
            buf[rows] = MOMENTUM * buf[rows] + g
            w[rows] = x - LR * buf[rows]
        elif rule == "adagrad":
            total[rows] += g * g
            w[rows] = x - LR * g / (np.sqrt(total[rows]) + EPS)
        else:
            b1, b2 = BETAS
            m[rows] = b1 * m[rows] + (1 - b1) * g
            v[rows] = b2 * v[rows] + (1 - b2) * g * g
            if rule == "adamw":
                x = x * (1 - LR * DECAY)
            denom = np.sqrt(v[rows]) / np.sqrt(1 - b2**t) + EPS
            w[rows] = x - LR / (1 - b1**t) * m[rows] / denom
    return w


def sparse_optimizer(rule: str, weight: torch.Tensor) -> SparseRowOptimizer:
    return SparseRowOptimizer(
        [weight], rule, lr=LR, weight_decay=DECAY, momentum=MOMENTUM, betas=BETAS, eps=EPS
    )


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_updates_the_touched_rows_as_documented_and_leaves_the_others(rule: str) -> None:
    weight = table()
    start = weight.detach().numpy().copy()
    optimizer = sparse_optimizer(rule, weight)
    batches = [[0, 2, 2, 5], [2, 3], [0, 5, 5, 5]]  # row 1 and 4 never touched; repeats add up
    steps = []
    for seed, lookups in enumerate(batches):
        optimizer.zero_grad()
        backward(weight, lookups, sparse=True, seed=seed)
        dense = weight.grad.to_dense().numpy()
        rows = np.unique(lookups)
        steps.append((rows, dense[rows]))
        optimizer.step()
    expected = reference(rule, start, steps)
    np.testing.assert_allclose(weight.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(weight.detach().numpy()[[1, 4]], start[[1, 4]])


@pytest.mark.parametrize(
    ("rule", "dense"),
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=LR, momentum=MOMENTUM, weight_decay=DECAY)),
        ("adagrad", lambda p: torch.optim.Adagrad(p, lr=LR, eps=EPS, weight_decay=DECAY)),
        ("adam", lambda p: torch.optim.Adam(p, lr=LR, betas=BETAS, eps=EPS, weight_decay=DECAY)),
        ("adamw", lambda p: torch.optim.AdamW(p, lr=LR, betas=BETAS, eps=EPS, weight_decay=DECAY)),
    ],
)
def test_when_every_step_touches_every_row_the_rule_is_torchs_dense_optimizer(rule, dense) -> None:
    lazy_weight, dense_weight = table(), table()
    lazy, full = sparse_optimizer(rule, lazy_weight), dense([dense_weight])
    for seed in range(4):
        lookups = [0, 1, 2, 3, 4, 5, 3, 0]
        for weight, optimizer, sparse in ((lazy_weight, lazy, True), (dense_weight, full, False)):
            optimizer.zero_grad()
            backward(weight, lookups, sparse=sparse, seed=seed)
            optimizer.step()
    torch.testing.assert_close(lazy_weight, dense_weight, rtol=1e-12, atol=1e-12)


def test_plain_sgd_equals_torch_sgd_bit_for_bit_even_on_a_partial_batch() -> None:
    lazy_weight, dense_weight = table(), table()
    lazy = SparseRowOptimizer([lazy_weight], "sgd", lr=LR)
    full = torch.optim.SGD([dense_weight], lr=LR)
    for seed, lookups in enumerate([[0, 2, 2], [5, 1]]):
        for weight, optimizer, sparse in ((lazy_weight, lazy, True), (dense_weight, full, False)):
            optimizer.zero_grad()
            backward(weight, lookups, sparse=sparse, seed=seed)
            optimizer.step()
    assert torch.equal(lazy_weight, dense_weight)


def test_dense_gradients_and_unknown_rules_are_refused() -> None:
    weight = table()
    with pytest.raises(ValueError, match="rule must be one of"):
        SparseRowOptimizer([weight], "rmsprop", lr=LR)
    optimizer = SparseRowOptimizer([weight], "adam", lr=LR)
    backward(weight, [0, 1], sparse=False, seed=0)
    with pytest.raises(ValueError, match="sparse gradients"):
        optimizer.step()


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_sparse_clipping_equals_torchs_clipping_of_the_dense_gradients(max_norm: float) -> None:
    users, items = table(0), table(1, rows=9)
    dense_users, dense_items = table(0), table(1, rows=9)
    for (u, i), sparse in (((users, items), True), ((dense_users, dense_items), False)):
        backward(u, [0, 0, 3], sparse=sparse, seed=0)
        backward(i, [8, 2, 2, 2], sparse=sparse, seed=1)
    norm = clip_sparse_grad_norm_([users, items], max_norm)
    dense_norm = torch.nn.utils.clip_grad_norm_([dense_users, dense_items], max_norm)
    assert norm == pytest.approx(float(dense_norm), rel=1e-12)
    torch.testing.assert_close(users.grad.to_dense(), dense_users.grad)
    torch.testing.assert_close(items.grad.to_dense(), dense_items.grad)


# ---------------------------------------------------------------------------------------------- TorchBPR
def sparse_model(**kw) -> TorchBPR:
    optimizer = kw.pop("optimizer", "adamw")
    config = OptimizerConfig(
        optimizer=optimizer,
        learning_rate={"sgd": 1.0, "adagrad": 0.1}.get(optimizer, 0.05),  # as test_every_optimizer_trains
        user_weight_decay=1e-4,
        item_weight_decay=1e-4,
        scheduler="constant",
        grad_clip=0.5,
        sparse=True,
    )
    kw.setdefault("epochs", 4)
    kw.setdefault("item_bias", False)  # the constructor default before core.defaults.BPR_DEFAULTS
    return TorchBPR(factors=8, batch_size=128, samples_per_epoch=2, num_threads=1, optimizer=config, **kw)


def test_make_optimizer_gives_the_row_sparse_form_with_both_weight_decays() -> None:
    users, items = table(0), table(1)
    config = OptimizerConfig(optimizer="adagrad", user_weight_decay=0.1, item_weight_decay=0.2, sparse=True)
    optimizer = make_optimizer(config, users, items)
    assert isinstance(optimizer, SparseRowOptimizer) and optimizer.rule == "adagrad"
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.2]
    with pytest.raises(ConfigError, match="sparse must be a bool"):
        OptimizerConfig(sparse="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam", "adamw"])
def test_sparse_torch_bpr_learns_the_planted_clusters(optimizer: str) -> None:
    train, valid = clustered()
    fitted = sparse_model(optimizer=optimizer, epochs=8).fit(train)
    recall = evaluate(fitted.user_factors_, fitted.item_factors_, valid, train, ks=(10,)).metrics["recall@10"]
    assert recall > 0.85  # random: 10 of the 40 unseen items -> ~0.25 (test_torch_bpr's planted test)
    assert fitted.history_.losses[-1] < fitted.history_.losses[0]


def test_sparse_checkpoint_then_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    train, _ = clustered()
    full = sparse_model(dropout=0.2, item_bias=True, regularization=0.01).fit(train)

    def interrupt(step: TrainingStep) -> None:
        if step.step == 2:
            raise StopTraining("simulated interruption")

    sparse_model(dropout=0.2, item_bias=True, regularization=0.01).fit(
        train, callback=interrupt, checkpoint_dir=tmp_path, checkpoint_every=2
    )
    resumed = sparse_model(dropout=0.2, item_bias=True, regularization=0.01).fit(train, resume_from=tmp_path)
    assert np.array_equal(resumed.user_factors_, full.user_factors_)
    assert np.array_equal(resumed.item_factors_, full.item_factors_)
    assert resumed.history_.losses == full.history_.losses
    dense = OptimizerConfig(optimizer="adamw", scheduler="constant", sparse=False)
    with pytest.raises(ConfigError, match="sparse=True"):
        TorchBPR(factors=8, epochs=4, item_bias=True, optimizer=dense).fit(train, resume_from=tmp_path)
