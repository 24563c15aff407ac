"""Row-sparse ("lazy") versions of SGD, Adagrad, Adam and AdamW for embedding tables.

A mini-batch touches a few thousand rows of an embedding table; torch's dense optimizers still read and write
every row (and its moment buffers) at every step, so a step costs the table's size, not the batch's. On a
catalogue of 17k items with 256 factors that is most of the training time. :class:`SparseRowOptimizer` takes
the sparse gradients of ``F.embedding(..., sparse=True)`` and updates only the rows they name, the way
``torch.optim.SparseAdam``, TensorFlow's LazyAdam and per-sample SGD BPR (:class:`core.bpr.BPR`) do.

What "lazy" changes, compared with the dense optimizer of the same name, for a row a step does not touch:
its weight does not decay, and its momentum / moments neither move it nor decay. For a touched row:

- weight decay: ``sgd``, ``adagrad`` and ``adam`` add ``weight_decay * w`` to the row's gradient (coupled L2,
  as torch's optimizers do); ``adamw`` shrinks the row by ``1 - lr * weight_decay`` (decoupled);
- ``sgd``: ``buf = momentum * buf + g`` (``buf`` starts at 0), ``w -= lr * buf``;
- ``adagrad``: ``sum += g**2``, ``w -= lr * g / (sqrt(sum) + eps)`` (torch's Adagrad, no lr decay);
- ``adam`` / ``adamw``: torch's Adam moments with the bias correction of the parameter's step count (as
  SparseAdam: one count per table, advanced on every step that touches it).

With ``weight_decay=0`` and ``momentum=0``, ``sgd`` equals torch's dense SGD exactly (a test holds it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

#: The update rules :class:`SparseRowOptimizer` implements.
RULES: tuple[str, ...] = ("sgd", "adagrad", "adam", "adamw")


class SparseRowOptimizer(torch.optim.Optimizer):
    """One of :data:`RULES`, applied to the rows a sparse gradient names (see the module's docstring).

    Param groups take ``lr``, ``weight_decay``, ``momentum``, ``betas`` and ``eps`` like torch's optimizers;
    gradients must be sparse COO tensors of the parameter's shape (uncoalesced is fine: duplicates add up).
    ``state_dict`` / ``load_state_dict`` are torch's, so a checkpoint resumes bit for bit.
    """

    def __init__(
        self,
        params: Iterable[Any],
        rule: str,
        *,
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, but got {rule=}.")
        self.rule = rule
        defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "betas": betas, "eps": eps}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Update the rows each parameter's sparse gradient names; parameters without a gradient stay."""
        if closure is not None:
            raise ValueError("SparseRowOptimizer.step takes no closure")
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if not grad.is_sparse:
                    raise ValueError("SparseRowOptimizer needs sparse gradients (F.embedding(sparse=True))")
                grad = grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                if rows.numel():
                    self._update(param, self.state[param], rows, values, group)

    def _update(
        self,
        param: torch.Tensor,
        state: dict[str, Any],
        rows: torch.Tensor,
        g: torch.Tensor,
        group: dict[str, Any],
    ) -> None:
        lr, decay, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
        w = param.index_select(0, rows)
        if decay and self.rule != "adamw":
            g = g.add(w, alpha=decay)
        if self.rule == "sgd":
            momentum = float(group["momentum"])
            if momentum:
                buf = state.setdefault("momentum_buffer", torch.zeros_like(param))
                g = buf.index_select(0, rows).mul_(momentum).add_(g)
                buf.index_copy_(0, rows, g)
            param.index_copy_(0, rows, w.add_(g, alpha=-lr))
            return
        if self.rule == "adagrad":
            total = state.setdefault("sum", torch.zeros_like(param))
            s = total.index_select(0, rows).addcmul_(g, g)
            total.index_copy_(0, rows, s)
            param.index_copy_(0, rows, w.addcdiv_(g, s.sqrt_().add_(eps), value=-lr))
            return
        beta1, beta2 = (float(b) for b in group["betas"])
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        t = float(state["step"])
        m = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(g, alpha=1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        if self.rule == "adamw" and decay:
            w.mul_(1 - lr * decay)
        denom = v.sqrt().div_(math.sqrt(1 - beta2**t)).add_(eps)
        param.index_copy_(0, rows, w.addcdiv_(m, denom, value=-lr / (1 - beta1**t)))


def clip_sparse_grad_norm_(params: Iterable[torch.Tensor], max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_`` for sparse gradients (coalesced in place, so that rows named twice
    count once): the global L2 norm is the same as the dense gradient's. Returns the norm before clipping."""
    grads = []
    for param in params:
        if param.grad is not None:
            param.grad = param.grad.coalesce()
            grads.append(param.grad)
    if not grads:
        return 0.0
    norm = math.sqrt(sum(float(torch.linalg.vector_norm(g.values())) ** 2 for g in grads))
    scale = float(max_norm) / (norm + 1e-6)
    if scale < 1.0:
        for g in grads:
            g.values().mul_(scale)
    return norm
