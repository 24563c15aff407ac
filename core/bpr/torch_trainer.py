"""BPR in PyTorch: mini-batch training with a choice of optimizer, learning-rate curve, embedding dropout and
gradient clipping, for the cases the numba kernel (:class:`core.bpr.BPR`, plain SGD) does not cover.

This module imports torch; ``core.bpr`` does not import it, so ``import core`` stays torch-free. The estimator
speaks the same language as :class:`core.bpr.BPR`: sparse users x items input, ``float32`` factors in
``user_factors_`` / ``item_factors_`` (same item-bias layout), the same callbacks, history and errors.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from core.artifacts import atomic_write_bytes
from core.bpr.epochs import Epoch, EpochPlan, run_epochs
from core.bpr.model import (
    BPR,
    _is_int,
    _is_real,
    check_checkpointing,
    check_hard_bpr,
    initial_factors,
    per_row_regularization,
)
from core.bpr.sampler import positives_csr, user_of_interactions
from core.bpr.sparse_optimizer import SparseRowOptimizer, clip_sparse_grad_norm_
from core.callbacks import (
    Callback,
    TrainingHistory,
    as_callbacks,
)
from core.defaults import BPR_DEFAULTS
from core.errors import ConfigError, DataError, ModelFitError

log = logging.getLogger(__name__)

OptimizerName = Literal["sgd", "adagrad", "adam", "adamw"]
SchedulerName = Literal["constant", "linear", "cosine", "exponential", "warmup_cosine"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "adagrad", "adam", "adamw")
SCHEDULERS: tuple[str, ...] = ("constant", "linear", "cosine", "exponential", "warmup_cosine")
LOSSES: tuple[str, ...] = ("bpr", "hard_bpr")
CHECKPOINT_GLOB = "torch_bpr_epoch_*.pt"
_CHECKPOINT_FORMAT = "cftune.torch_bpr/1"
_MAX_REJECTION_ROUNDS = 64


# ---------------------------------------------------------------------------------------------- optimizer
@dataclass(frozen=True)
class OptimizerConfig:
    """How the factors are updated, checked when built so that a bad value fails before any training.

    ``user_weight_decay`` / ``item_weight_decay`` are the optimizer's weight decay on the user and the item
    embeddings (two param groups): the L2 of BPR. ``adam`` adds it to the gradient (coupled L2), ``adamw``
    shrinks the weights directly (decoupled, Loshchilov & Hutter 2019). ``momentum`` is used by ``sgd``,
    ``betas`` by ``adam`` / ``adamw``, ``eps`` by all but ``sgd``. The learning-rate curve is
    :func:`learning_rate_at`; ``grad_clip`` is the largest global gradient norm per step (None: no clipping).

    ``sparse=True`` updates only the embedding rows a batch touches
    (:class:`core.bpr.sparse_optimizer.SparseRowOptimizer`, the "lazy" form of the same rule): a step then
    costs the batch, not the whole table, which is what makes large catalogues trainable; an untouched row
    neither decays nor moves with its momentum that step (see that module for the exact rules).
    """

    optimizer: OptimizerName = "adamw"
    learning_rate: float = 0.01
    user_weight_decay: float = 0.01
    item_weight_decay: float = 0.01
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: SchedulerName = "warmup_cosine"
    warmup_epochs: int = 5
    min_lr: float = 1e-6
    gamma: float = 0.95
    grad_clip: float | None = 1.0
    sparse: bool = False

    def __post_init__(self) -> None:
        optimizer, scheduler, lr, min_lr = self.optimizer, self.scheduler, self.learning_rate, self.min_lr
        momentum, betas, eps, gamma = self.momentum, self.betas, self.eps, self.gamma
        warmup_epochs, grad_clip = self.warmup_epochs, self.grad_clip
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, but got {optimizer=}.")
        if scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {SCHEDULERS}, but got {scheduler=}.")
        if not _is_real(lr) or lr <= 0:
            raise ConfigError(f"learning_rate must be a finite number > 0, but got learning_rate={lr!r}.")
        for name in ("user_weight_decay", "item_weight_decay"):
            value = getattr(self, name)
            if not _is_real(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, but got {name}={value!r}.")
        if not _is_real(momentum) or not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), but got {momentum=}.")
        if (
            not isinstance(betas, tuple)
            or len(betas) != 2
            or not all(_is_real(b) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"betas must be a pair of numbers in [0, 1), but got {betas=}.")
        if not _is_real(eps) or eps <= 0:
            raise ConfigError(f"eps must be a finite number > 0, but got {eps=}.")
        if not _is_int(warmup_epochs) or warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be an integer >= 0, but got {warmup_epochs=}.")
        if not _is_real(min_lr) or not 0 <= min_lr <= lr:
            raise ConfigError(f"min_lr must be in [0, learning_rate={lr!r}], but got {min_lr=}.")
        if not _is_real(gamma) or not 0 < gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], but got {gamma=}.")
        if grad_clip is not None and (not _is_real(grad_clip) or grad_clip <= 0):
            raise ConfigError(f"grad_clip must be a finite number > 0 or None, but got {grad_clip=}.")
        if not isinstance(self.sparse, bool):
            raise ConfigError(f"sparse must be a bool, but got sparse={self.sparse!r}.")


def learning_rate_at(config: OptimizerConfig, epoch: int, epochs: int) -> float:
    """The learning rate of 1-based ``epoch`` out of ``epochs``: a pure function, so a resumed run (which
    recomputes it) follows the same curve as an uninterrupted one.

    With ``lr`` = ``config.learning_rate``, ``m`` = ``min_lr``, ``E`` = ``epochs``, ``W`` = ``warmup_epochs``
    and ``cos_to_m(t) = m + (lr - m) * (1 + cos(pi * t)) / 2`` (``lr`` at ``t = 0``, ``m`` at ``t = 1``):

    - ``constant``: ``lr``
    - ``linear``: ``lr + (m - lr) * (e - 1) / (E - 1)`` (``lr`` in epoch 1, ``m`` in epoch ``E``)
    - ``cosine``: ``cos_to_m((e - 1) / (E - 1))``
    - ``exponential``: ``max(m, lr * gamma ** (e - 1))``
    - ``warmup_cosine``: ``lr * e / W`` for ``e <= W`` (from ``lr / W`` up to ``lr``), then
      ``cos_to_m((e - W) / (E - W))`` (``m`` in epoch ``E``); ``W = 0`` is no warmup.

    With ``E = 1`` every curve gives ``lr`` (warmup: ``lr / W``).
    """
    if not _is_int(epochs) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, but got {epochs=}.")
    if not _is_int(epoch) or not 1 <= epoch <= epochs:
        raise ConfigError(f"epoch must be an integer in [1, {epochs}], but got {epoch=}.")
    lr, m = float(config.learning_rate), float(config.min_lr)

    def cos_to_min(t: float) -> float:
        return m + (lr - m) * (1.0 + math.cos(math.pi * t)) / 2.0

    progress = (epoch - 1) / (epochs - 1) if epochs > 1 else 0.0
    if config.scheduler == "constant":
        return lr
    if config.scheduler == "linear":
        return lr + (m - lr) * progress
    if config.scheduler == "cosine":
        return cos_to_min(progress)
    if config.scheduler == "exponential":
        return max(m, lr * float(config.gamma) ** (epoch - 1))
    warmup = int(config.warmup_epochs)
    if epoch <= warmup:
        return lr * epoch / warmup
    return cos_to_min((epoch - warmup) / (epochs - warmup))


def make_optimizer(
    config: OptimizerConfig, user_weights: torch.Tensor, item_weights: torch.Tensor
) -> torch.optim.Optimizer:
    """The optimizer of ``config`` with the users and the items in two param groups (own weight decay);
    with ``config.sparse`` its row-sparse form, which needs sparse gradients."""
    groups: list[dict[str, Any]] = [
        {"params": [user_weights], "weight_decay": float(config.user_weight_decay)},
        {"params": [item_weights], "weight_decay": float(config.item_weight_decay)},
    ]
    lr, eps, betas = float(config.learning_rate), float(config.eps), tuple(float(b) for b in config.betas)
    if config.sparse:
        momentum = float(config.momentum) if config.optimizer == "sgd" else 0.0
        pair = (float(config.betas[0]), float(config.betas[1]))
        return SparseRowOptimizer(groups, config.optimizer, lr=lr, momentum=momentum, betas=pair, eps=eps)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(config.momentum))
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, eps=eps)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps)  # type: ignore[arg-type]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- dropout
class EmbeddingDropout(nn.Module):
    """Inverted dropout on embedding coordinates: during training each coordinate is zeroed with probability
    ``p`` and the kept ones scaled by ``1 / (1 - p)``, so expected scores match evaluation, where it is the
    identity. Masks come from ``generator`` (when given) so that a seeded run is reproducible and resumable.
    """

    def __init__(self, p: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not _is_real(p) or not 0 <= p < 1:
            raise ConfigError(f"dropout must be in [0, 1), but got p={p!r}.")
        self.p = float(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)
        return x * mask / keep


class _BPRNet(nn.Module):
    """User and item embeddings; with ``item_bias`` the items' last column is their bias (no user column:
    the exported user factors get a column of ones, :class:`core.bpr.BPR`'s layout). ``sparse``: the
    lookups give sparse gradients (for :class:`SparseRowOptimizer`)."""

    def __init__(
        self,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        item_bias: bool,
        dropout: EmbeddingDropout,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.user_weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(user_factors, np.float32)))
        self.item_weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(item_factors, np.float32)))
        self.item_bias = item_bias
        self.dropout = dropout
        self.sparse = sparse

    def forward(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``x_ui - x_uj`` per triplet, and the rows it read (user, positive, negative; before dropout)."""
        if self.sparse:
            u = F.embedding(users, self.user_weight, sparse=True)
            vi = F.embedding(pos, self.item_weight, sparse=True)
            vj = F.embedding(neg, self.item_weight, sparse=True)
        else:
            u = self.user_weight[users]
            vi, vj = self.item_weight[pos], self.item_weight[neg]
        du = self.dropout(u)
        if not self.item_bias:
            return (du * (self.dropout(vi) - self.dropout(vj))).sum(dim=1), (u, vi, vj)
        diff = self.dropout(vi[:, :-1]) - self.dropout(vj[:, :-1])
        return (du * diff).sum(dim=1) + vi[:, -1] - vj[:, -1], (u, vi, vj)

    @torch.no_grad()
    def best_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Per column of ``candidates`` (``(n_candidates, batch)``, -1: none), the item the current factors
        score highest for its user (no dropout; the first of equal scores wins)."""
        u = self.user_weight[users]
        v = self.item_weight[candidates.clamp(min=0)]
        scores = (v[..., :-1] * u).sum(dim=-1) + v[..., -1] if self.item_bias else (v * u).sum(dim=-1)
        scores = scores.masked_fill(candidates < 0, float("-inf"))
        return candidates.gather(0, scores.argmax(dim=0, keepdim=True)).squeeze(0)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 numpy copies in the scorer layout (``U @ V.T`` includes the bias)."""
        users = self.user_weight.detach().to("cpu", copy=True).numpy()
        items = self.item_weight.detach().to("cpu", copy=True).numpy()
        if self.item_bias:
            users = np.hstack([users, np.ones((users.shape[0], 1), np.float32)])
        return users, items


# ---------------------------------------------------------------------------------------------- negatives
class NegativeSampler(Protocol):
    """Draws one negative item per user (never a train positive of that user; -1 skips the draw). For a
    resumed run to equal an uninterrupted one, draw only from ``rng`` (its state is checkpointed). With
    ``n_candidates > 1`` it is called that many times per epoch, with the same users and ``epoch``."""

    def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray: ...


def _positive_keys(positives: sp.csr_matrix) -> np.ndarray:
    """Sorted ``user * n_items + item`` of every positive: membership of many pairs by one searchsorted."""
    rows = user_of_interactions(positives).astype(np.int64)
    return rows * positives.shape[1] + positives.indices  # CSR rows ascending, indices sorted: already sorted


def _is_positive(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    wanted = users.astype(np.int64) * n_items + items
    if keys.size == 0:
        return np.zeros(wanted.shape, dtype=bool)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return keys[at] == wanted


class UniformNegativeSampler:
    """Uniform over the user's non-positive items, by rejection: draw for all, redraw the clashes
    (vectorised). Users with no negative at all get -1; after ``_MAX_REJECTION_ROUNDS`` rounds the few
    draws left (users who liked almost every item) are made exactly among their negatives."""

    def __init__(self, user_items: sp.spmatrix | sp.sparray) -> None:
        self.positives = positives_csr(user_items)
        self.n_items = int(self.positives.shape[1])
        self._keys = _positive_keys(self.positives)
        self._degree = np.diff(self.positives.indptr)

    def sample(self, users: np.ndarray, epoch: int, rng: np.random.Generator) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out = rng.integers(0, self.n_items, size=users.size, dtype=np.int64)
        todo = np.flatnonzero(self._degree[users] < self.n_items)
        out[self._degree[users] >= self.n_items] = -1
        for _ in range(_MAX_REJECTION_ROUNDS):
            todo = todo[_is_positive(self._keys, users[todo], out[todo], self.n_items)]
            if todo.size == 0:
                return out
            out[todo] = rng.integers(0, self.n_items, size=todo.size, dtype=np.int64)
        todo = todo[_is_positive(self._keys, users[todo], out[todo], self.n_items)]
        indptr, indices = self.positives.indptr, self.positives.indices
        for k in todo:
            row = indices[indptr[users[k]] : indptr[users[k] + 1]]
            out[k] = rng.choice(np.setdiff1d(np.arange(self.n_items), row))
        return out


# ---------------------------------------------------------------------------------------------- estimator
class TorchBPR:
    """Bayesian Personalized Ranking trained by mini-batches in PyTorch.

    Each epoch draws ``samples_per_epoch * nnz`` triplets: the positive uniformly among interactions, the
    negative from ``negative_sampler`` (None: :class:`UniformNegativeSampler`). ``n_candidates > 1`` is the
    kernel's adaptive sampling ("max of n", Rendle & Freudenthaler 2014): the sampler draws that many
    candidates per triplet and the batch trains on the one the current factors score highest (skipped draws
    are no candidates; the first of equal scores wins). The loss is
    ``mean(-log sigmoid(x_ui - x_uj))`` over a batch, ``x_ui = <u, v_i>`` (``+ b_i`` with ``item_bias``);
    ``loss="hard_bpr"`` takes the kernel's Hard-BPR loss instead, whose gradient fades for negatives scored
    far above the positive (``hard_bpr_a/b/c`` as in :class:`core.bpr.BPR`);
    L2 comes two ways: the optimizer's weight decay (:class:`OptimizerConfig`), and, as the kernel's, a
    per-triplet penalty on the rows the triplet reads, ``(r_u |u|^2 + r_i |v_i|^2 + r_j |v_j|^2) / 2`` with
    ``r_u, r_i, r_j`` = ``reg_user``, ``reg_pos``, ``reg_neg`` (None: ``regularization``; default 0), added
    to the loss before the batch mean: a row is regularized as often as it is read, whatever the batch size
    (weight decay shrinks every row alike at every step). The learning rate of each epoch is
    :func:`learning_rate_at`, set on every param group at the epoch's start. ``dropout`` applies
    :class:`EmbeddingDropout` to the user and item vectors of a batch (never to the bias).

    ``item_bias=True`` gives :class:`core.bpr.BPR`'s layout: a user column held at 1, the item's extra column
    its bias, so ``U @ V.T`` includes it. The settings shared with :class:`core.bpr.BPR` (``factors``,
    ``epochs``, ``samples_per_epoch``, ``item_bias``, ``init_std``, the loss, ``n_candidates``) default to
    :data:`core.defaults.BPR_DEFAULTS`.

    Reproducibility: factors start from :func:`core.bpr.initial_factors` (seeded by ``random_state``),
    sampling uses a numpy Generator and dropout a torch Generator seeded from it; both states, the optimizer
    state and the history are checkpointed, so on CPU with the same ``num_threads`` a resumed run equals the
    uninterrupted one bit for bit. ``num_threads=0`` leaves torch's thread count as it is.

    Early stopping is a callback, as for :class:`core.bpr.BPR`: a
    :class:`core.callbacks.ValidationMonitor` with ``patience`` / ``min_delta``.

    ``schedule_epochs`` (None: ``epochs``) is the length of the learning-rate curve: a fit of ``epochs=k,
    schedule_epochs=n`` runs exactly the first ``k`` epochs of a fit of ``n``, which is how a refit stops at a
    trial's best epoch without squeezing a cosine or linear curve into fewer epochs.
    """

    def __init__(
        self,
        factors: int = BPR_DEFAULTS.factors,
        epochs: int = BPR_DEFAULTS.epochs,
        batch_size: int = 4096,
        samples_per_epoch: int = BPR_DEFAULTS.samples_per_epoch,
        optimizer: OptimizerConfig | None = None,
        dropout: float = 0.0,
        item_bias: bool = BPR_DEFAULTS.item_bias,
        init_std: float = BPR_DEFAULTS.init_std,
        loss: str = BPR_DEFAULTS.loss,
        device: str = "cpu",
        random_state: int | None = 42,
        show_progress: bool = False,
        negative_sampler: NegativeSampler | None = None,
        num_threads: int = 0,
        hard_bpr_a: float = BPR_DEFAULTS.hard_bpr_a,
        hard_bpr_b: float = BPR_DEFAULTS.hard_bpr_b,
        hard_bpr_c: float = BPR_DEFAULTS.hard_bpr_c,
        schedule_epochs: int | None = None,
        regularization: float = 0.0,  # the optimizer's weight decay is its L2 by default
        reg_user: float | None = None,
        reg_pos: float | None = None,
        reg_neg: float | None = None,
        n_candidates: int = BPR_DEFAULTS.n_candidates,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.optimizer = optimizer
        self.dropout = dropout
        self.item_bias = item_bias
        self.init_std = init_std
        self.loss = loss
        self.device = device
        self.random_state = random_state
        self.show_progress = show_progress
        self.negative_sampler = negative_sampler
        self.num_threads = num_threads
        self.hard_bpr_a = hard_bpr_a
        self.hard_bpr_b = hard_bpr_b
        self.hard_bpr_c = hard_bpr_c
        self.schedule_epochs = schedule_epochs
        self.regularization = regularization
        self.reg_user = reg_user
        self.reg_pos = reg_pos
        self.reg_neg = reg_neg
        self.n_candidates = n_candidates
        self._check_params()

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        for name, low in (
            ("factors", 1),
            ("epochs", 1),
            ("batch_size", 1),
            ("samples_per_epoch", 1),
            ("n_candidates", 1),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, but got {name}={value!r}.")
        if self.optimizer is not None and not isinstance(self.optimizer, OptimizerConfig):
            raise ConfigError(
                f"optimizer must be an OptimizerConfig or None, but got optimizer={self.optimizer!r}."
            )
        if not _is_real(self.dropout) or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), but got dropout={self.dropout!r}.")
        if not isinstance(self.item_bias, bool):
            raise ConfigError(f"item_bias must be a bool, but got item_bias={self.item_bias!r}.")
        if not _is_real(self.init_std) or self.init_std <= 0:
            raise ConfigError(f"init_std must be a finite number > 0, but got init_std={self.init_std!r}.")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, but got loss={self.loss!r}.")
        schedule = self.schedule_epochs
        if schedule is not None and (not _is_int(schedule) or schedule < self.epochs):
            raise ConfigError(
                f"schedule_epochs must be None or an integer >= epochs={self.epochs}, but got {schedule=}."
            )
        check_hard_bpr(self.hard_bpr_a, self.hard_bpr_b, self.hard_bpr_c)
        reg = self.regularization
        if not _is_real(reg) or reg < 0:
            raise ConfigError(f"regularization must be a finite number >= 0, but got regularization={reg!r}.")
        for name in ("reg_user", "reg_pos", "reg_neg"):
            value = getattr(self, name)
            if value is not None and (not _is_real(value) or value < 0):
                raise ConfigError(f"{name} must be None or a finite number >= 0, but got {name}={value!r}.")
        device = self.device
        if not isinstance(device, str) or not (
            device in ("cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())
        ):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', but got {device=}.")
        random_state = self.random_state
        if random_state is not None and (not _is_int(random_state) or random_state < 0):
            raise ConfigError(f"random_state must be an integer >= 0 or None, but got {random_state=}.")
        if not isinstance(self.show_progress, bool):
            raise ConfigError(f"show_progress must be a bool, but got show_progress={self.show_progress!r}.")
        sampler = self.negative_sampler
        if sampler is not None and not callable(getattr(sampler, "sample", None)):
            raise ConfigError(
                f"negative_sampler must have a sample(users, epoch, rng) method, but got {sampler!r}."
            )
        if not _is_int(self.num_threads) or self.num_threads < 0:
            raise ConfigError(
                f"num_threads must be an integer >= 0, but got num_threads={self.num_threads!r}."
            )

    def _run_settings(self) -> dict[str, Any]:
        """What shapes the epochs after a checkpoint besides the optimizer (a resume warns on a change)."""
        return {
            "schedule_epochs": self.schedule_epochs or self.epochs,
            "batch_size": self.batch_size,
            "samples_per_epoch": self.samples_per_epoch,
            "dropout": self.dropout,
            "loss": self.loss,
            "hard_bpr": [self.hard_bpr_a, self.hard_bpr_b, self.hard_bpr_c],
            "regularization": list(self.regularizations()),
            "n_candidates": self.n_candidates,
        }

    def _ranking_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-triplet loss of ``x = x_ui - x_uj``: BPR's ``-log sigmoid(x)``, or Hard-BPR's
        ``log(1 + a) - log(sigmoid(c * x + b) + a)`` (the kernel's, :func:`core.bpr.kernel.hard_bpr_loss`)."""
        if self.loss == "bpr":
            return -F.logsigmoid(x)
        a, b, c = float(self.hard_bpr_a), float(self.hard_bpr_b), float(self.hard_bpr_c)
        if a == 0:
            return -F.logsigmoid(c * x + b)
        return math.log1p(a) - torch.log(torch.sigmoid(c * x + b) + a)

    def _penalty(self, u: torch.Tensor, vi: torch.Tensor, vj: torch.Tensor) -> torch.Tensor | float:
        """Per-triplet L2 of the rows it reads, ``(r_u |u|^2 + r_i |v_i|^2 + r_j |v_j|^2) / 2`` (the bias
        included): its gradient is the kernel's per-sample regularization, whatever the batch size."""
        reg_u, reg_i, reg_j = self.regularizations()
        penalty: torch.Tensor | float = 0.0
        for reg, rows in ((reg_u, u), (reg_i, vi), (reg_j, vj)):
            if reg:
                penalty = penalty + (0.5 * reg) * rows.pow(2).sum(dim=1)
        return penalty

    def regularizations(self) -> tuple[float, float, float]:
        """The per-triplet L2 weights of the user, the positive and the negative item."""
        return per_row_regularization(self.regularization, self.reg_user, self.reg_pos, self.reg_neg)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as given (what a tracker logs)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    @property
    def optimizer_config(self) -> OptimizerConfig:
        """``optimizer``, or the defaults when it is None."""
        return self.optimizer if self.optimizer is not None else OptimizerConfig()

    def _torch_device(self) -> torch.device:
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device={self.device!r} but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}); use device='cpu'"
            )
        return torch.device(self.device)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        user_items: sp.spmatrix | sp.sparray,
        *,
        callback: Callback | Sequence[Callback] | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        resume_from: str | Path | None = None,
    ) -> TorchBPR:
        """Train on ``user_items`` (users x items, nonzero = positive). Returns ``self``.

        ``callback`` (one or a list) is called after every epoch with a :class:`TrainingStep`; raising
        :class:`StopTraining` ends training with the current factors. A checkpoint is written every
        ``checkpoint_every`` epochs into ``checkpoint_dir``; ``resume_from`` (a checkpoint file, or a folder
        whose latest checkpoint is used) continues up to ``epochs``. Raises :class:`ModelFitError` when the
        loss or the factors stop being finite.
        """
        self._check_params()
        check_checkpointing(checkpoint_dir, checkpoint_every)
        device = self._torch_device()
        config = self.optimizer_config
        for message in BPR.validate(user_items):
            log.info("TorchBPR data: %s", message)

        started = time.perf_counter()
        pos = positives_csr(user_items)
        sampler: NegativeSampler = (
            self.negative_sampler if self.negative_sampler is not None else UniformNegativeSampler(pos)
        )
        seed = (
            self.random_state
            if self.random_state is not None
            else int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[arg-type]
        )
        previous_threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            return self._train(
                pos,
                sampler=sampler,
                seed=seed,
                device=device,
                config=config,
                started=started,
                callbacks=as_callbacks(callback),
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every,
                resume_from=resume_from,
            )
        finally:
            torch.set_num_threads(previous_threads)

    def _train(
        self,
        pos: sp.csr_matrix,
        *,
        sampler: NegativeSampler,
        seed: int,
        device: torch.device,
        config: OptimizerConfig,
        started: float,
        callbacks: list[Callback],
        checkpoint_dir: str | Path | None,
        checkpoint_every: int,
        resume_from: str | Path | None,
    ) -> TorchBPR:
        n_users, n_items = pos.shape
        rng = np.random.default_rng([seed, 1])  # [seed, 1]: not the stream initial_factors drew from
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        user_init, item_init = initial_factors(n_users, n_items, self.factors, std=self.init_std, seed=seed)
        if self.item_bias:
            item_init = np.hstack([item_init, np.zeros((n_items, 1), np.float32)])
        net = _BPRNet(
            user_init, item_init, self.item_bias, EmbeddingDropout(self.dropout, generator), config.sparse
        )
        net.to(device)
        optimizer = make_optimizer(config, net.user_weight, net.item_weight)
        history = TrainingHistory()
        start = 0
        if resume_from is not None:
            ckpt = load_torch_checkpoint(resume_from)
            start = self._restore(ckpt, net, optimizer, rng, generator, seed, config)
            history = TrainingHistory.from_dict(json.loads(ckpt["history"]))

        self.stopped_early_ = False
        self.stop_reason_: str | None = None
        epochs = _TorchEpochs(
            self, pos, (net, optimizer), sampler, (rng, generator), (seed, device, config), checkpoint_dir
        )
        plan = EpochPlan("TorchBPR", start, self.epochs, started, checkpoint_every, self.show_progress)
        trained = run_epochs(epochs, plan, history, callbacks, net.export())
        self.stopped_early_, self.stop_reason_ = trained.stopped_early, trained.stop_reason
        self.best_epoch_ = trained.best_epoch
        self.user_factors_ = trained.user_factors
        self.item_factors_ = trained.item_factors
        self.history_ = history
        self.seed_ = seed
        return self

    def _triplets(
        self,
        pos: sp.csr_matrix,
        user_of: np.ndarray,
        keys: np.ndarray,
        sampler: NegativeSampler,
        n_samples: int,
        epoch: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One epoch of (users, positives, negatives) as int64, the negatives ``(n_candidates, n)`` when
        ``n_candidates > 1`` (-1: a skipped draw); a triplet whose every draw was skipped is dropped."""
        n_items = pos.shape[1]
        picked = rng.integers(0, pos.nnz, size=n_samples)
        users = user_of[picked].astype(np.int64)
        items = pos.indices[picked].astype(np.int64)
        draws = [self._draw(sampler, users, epoch, rng, n_items) for _ in range(self.n_candidates)]
        negs = draws[0] if len(draws) == 1 else np.stack(draws)
        drawn = negs >= 0
        every_user = np.broadcast_to(users, negs.shape)
        clash = int(np.count_nonzero(_is_positive(keys, every_user[drawn], negs[drawn], n_items)))
        if clash:
            raise ConfigError(f"negative_sampler.sample returned {clash} negatives that are train positives")
        keep = drawn if negs.ndim == 1 else drawn.any(axis=0)
        if not keep.all():
            users, items, negs = users[keep], items[keep], negs[..., keep]
        return users, items, negs

    @staticmethod
    def _draw(
        sampler: NegativeSampler, users: np.ndarray, epoch: int, rng: np.random.Generator, n_items: int
    ) -> np.ndarray:
        """One negative per user from ``sampler``, checked: integers in [-1, n_items)."""
        negs = np.asarray(sampler.sample(users, epoch, rng))
        if negs.shape != users.shape or not np.issubdtype(negs.dtype, np.integer):
            raise ConfigError(
                f"negative_sampler.sample must return one integer item per user: got {negs.dtype} array of "
                f"shape {negs.shape} for {users.size} users"
            )
        negs = negs.astype(np.int64, copy=False)
        if negs.size and (negs.min() < -1 or negs.max() >= n_items):
            raise ConfigError(f"negative_sampler.sample returned items outside [-1, {n_items})")
        return negs

    def _restore(
        self,
        ckpt: dict[str, Any],
        net: _BPRNet,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        generator: torch.Generator,
        seed: int,
        config: OptimizerConfig,
    ) -> int:
        """Load a checkpoint into the freshly built state; returns the epoch it was taken after."""
        shapes = {name: tuple(t.shape) for name, t in ckpt["net"].items()}
        wanted = {name: tuple(p.shape) for name, p in net.state_dict().items()}
        if shapes != wanted:
            raise DataError(
                f"checkpoint weights {shapes} do not fit {wanted} "
                f"(factors={self.factors}, item_bias={self.item_bias}, data shape)"
            )
        saved_sparse = bool(json.loads(ckpt["optimizer_config"]).get("sparse", False))
        if ckpt["optimizer_name"] != config.optimizer or saved_sparse != config.sparse:
            raise ConfigError(
                f"checkpoint was trained with optimizer={ckpt['optimizer_name']!r}, sparse={saved_sparse}, "
                f"but this run uses optimizer={config.optimizer!r}, sparse={config.sparse}"
            )
        if int(ckpt["seed"]) != seed:
            log.warning("resuming with a different random_state: the run will not be exact")
        saved = {
            "n_candidates": 1,  # a checkpoint from before adaptive sampling drew one candidate
            **json.loads(ckpt.get("run", "{}")),
            "optimizer": json.loads(ckpt["optimizer_config"]),
        }
        now = {**self._run_settings(), "optimizer": json.loads(json.dumps(dataclasses.asdict(config)))}
        changed = sorted(k for k in saved if k in now and saved[k] != now[k])
        if changed:
            log.warning(
                "resuming with other %s than the checkpoint's: the run will not equal an uninterrupted one",
                ", ".join(changed),
            )
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        generator.set_state(ckpt["torch_rng"])
        return int(ckpt["epoch"])


class _TorchEpochs:
    """:class:`TorchBPR`'s part of the epoch loop (:func:`core.bpr.epochs.run_epochs`): one epoch of
    mini-batches, and the checkpoint after it."""

    def __init__(
        self,
        model: TorchBPR,
        pos: sp.csr_matrix,
        trained: tuple[_BPRNet, torch.optim.Optimizer],
        sampler: NegativeSampler,
        generators: tuple[np.random.Generator, torch.Generator],
        run: tuple[int, torch.device, OptimizerConfig],
        checkpoint_dir: str | Path | None,
    ) -> None:
        """``trained``: the net and its optimizer; ``generators``: the sampling and the dropout streams;
        ``run``: the fit's seed, device and optimizer settings."""
        self.model, self.pos, self.sampler = model, pos, sampler
        self.net, self.optimizer = trained
        self.rng, self.generator = generators
        self.seed, self.device, self.config = run
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.user_of, self.keys = user_of_interactions(pos), _positive_keys(pos)
        self.n_samples = model.samples_per_epoch * pos.nnz

    def train_epoch(self, epoch: int) -> Epoch:
        model, net, optimizer, config = self.model, self.net, self.optimizer, self.config
        lr = learning_rate_at(config, epoch, model.schedule_epochs or model.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        users, items, negs = model._triplets(
            self.pos, self.user_of, self.keys, self.sampler, self.n_samples, epoch, self.rng
        )
        u_t, i_t, j_t = (torch.from_numpy(a).to(self.device) for a in (users, items, negs))
        params = [net.user_weight, net.item_weight]
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for lo in range(0, users.size, model.batch_size):
            hi = min(users.size, lo + model.batch_size)
            optimizer.zero_grad(set_to_none=True)
            j_batch = j_t[lo:hi] if j_t.dim() == 1 else net.best_candidates(u_t[lo:hi], j_t[:, lo:hi])
            x, rows = net(u_t[lo:hi], i_t[lo:hi], j_batch)
            loss = (model._ranking_loss(x) + model._penalty(*rows)).mean()
            loss.backward()
            if config.grad_clip is not None and config.sparse:
                clip_sparse_grad_norm_(params, float(config.grad_clip))
            elif config.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, float(config.grad_clip))
            optimizer.step()
            loss_sum += loss.detach().double() * (hi - lo)
        net.eval()
        epoch_loss = float(loss_sum.item()) / users.size if users.size else float("nan")
        duration = time.perf_counter() - t0
        user_factors, item_factors = net.export()
        _check_finite(epoch, lr, epoch_loss, user_factors, item_factors)
        postfix = {"loss": f"{epoch_loss:.4f}", "lr": f"{lr:.2e}"}
        return Epoch(epoch_loss, lr, duration, user_factors, item_factors, postfix)

    def save_checkpoint(self, epoch: int, history: TrainingHistory) -> None:
        assert self.checkpoint_dir is not None
        save_torch_checkpoint(
            self.checkpoint_dir / f"torch_bpr_epoch_{epoch:04d}.pt",
            net=self.net,
            optimizer=self.optimizer,
            rng=self.rng,
            generator=self.generator,
            epoch=epoch,
            seed=self.seed,
            config=self.config,
            history=history,
            run=self.model._run_settings(),
        )


def _check_finite(
    epoch: int, lr: float, loss: float, user_factors: np.ndarray, item_factors: np.ndarray
) -> None:
    """Divergence is an error, never silently kept: name the epoch and the learning rate."""
    bad = [
        name
        for name, ok in (
            ("loss", math.isfinite(loss)),
            ("user factors", bool(np.isfinite(user_factors).all())),
            ("item factors", bool(np.isfinite(item_factors).all())),
        )
        if not ok
    ]
    if bad:
        raise ModelFitError(
            f"TorchBPR diverged at epoch {epoch} with lr={lr:g}: {', '.join(bad)} not finite "
            f"(loss={loss}); lower learning_rate or init_std, or set grad_clip"
        )


# ---------------------------------------------------------------------------------------------- checkpoints
def save_torch_checkpoint(
    path: Path,
    *,
    net: _BPRNet,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    generator: torch.Generator,
    epoch: int,
    seed: int,
    config: OptimizerConfig,
    history: TrainingHistory,
    run: dict[str, Any] | None = None,
) -> Path:
    """Everything a resume needs to continue bit for bit, written atomically (temp file + ``os.replace``);
    ``run``: the settings besides the optimizer that shape the remaining epochs, compared on resume."""
    state = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "seed": int(seed),
        "net": {name: t.detach().cpu() for name, t in net.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "optimizer_name": config.optimizer,
        "optimizer_config": json.dumps(dataclasses.asdict(config)),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": generator.get_state(),
        "history": json.dumps(history.to_dict()),
        "run": json.dumps(run or {}),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_torch_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file, or the latest one in a folder (tensors on CPU, no pickled code)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(CHECKPOINT_GLOB))
        if not found:
            raise DataError(f"no TorchBPR checkpoint ({CHECKPOINT_GLOB}) in {path}")
        path = found[-1]
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise DataError(f"{path} is not a TorchBPR checkpoint ({_CHECKPOINT_FORMAT})")
    return ckpt
