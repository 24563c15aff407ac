"""How :class:`core.bpr.torch_trainer.TorchBPR` updates the factors: the optimizer settings
(:class:`OptimizerConfig`), the learning-rate curve (:func:`learning_rate_at`) and the torch optimizer they
make (:func:`make_optimizer`). Imports torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from core.bpr.settings import is_int, is_real
from core.bpr.sparse_optimizer import SparseRowOptimizer
from core.errors import ConfigError

OptimizerName = Literal["sgd", "adagrad", "adam", "adamw"]
SchedulerName = Literal["constant", "linear", "cosine", "exponential", "warmup_cosine"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "adagrad", "adam", "adamw")
SCHEDULERS: tuple[str, ...] = ("constant", "linear", "cosine", "exponential", "warmup_cosine")


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
        if not is_real(lr) or lr <= 0:
            raise ConfigError(f"learning_rate must be a finite number > 0, but got learning_rate={lr!r}.")
        for name in ("user_weight_decay", "item_weight_decay"):
            value = getattr(self, name)
            if not is_real(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, but got {name}={value!r}.")
        if not is_real(momentum) or not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), but got {momentum=}.")
        if (
            not isinstance(betas, tuple)
            or len(betas) != 2
            or not all(is_real(b) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"betas must be a pair of numbers in [0, 1), but got {betas=}.")
        if not is_real(eps) or eps <= 0:
            raise ConfigError(f"eps must be a finite number > 0, but got {eps=}.")
        if not is_int(warmup_epochs) or warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be an integer >= 0, but got {warmup_epochs=}.")
        if not is_real(min_lr) or not 0 <= min_lr <= lr:
            raise ConfigError(f"min_lr must be in [0, learning_rate={lr!r}], but got {min_lr=}.")
        if not is_real(gamma) or not 0 < gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], but got {gamma=}.")
        if grad_clip is not None and (not is_real(grad_clip) or grad_clip <= 0):
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
    if not is_int(epochs) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, but got {epochs=}.")
    if not is_int(epoch) or not 1 <= epoch <= epochs:
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
