"""The torch network :class:`core.bpr.torch_trainer.TorchBPR` trains: user and item embeddings
(:class:`BPRNet`) and the dropout on them (:class:`EmbeddingDropout`). Imports torch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.bpr.settings import is_real
from core.errors import ConfigError


class EmbeddingDropout(nn.Module):
    """Inverted dropout on embedding coordinates: during training each coordinate is zeroed with probability
    ``p`` and the kept ones scaled by ``1 / (1 - p)``, so expected scores match evaluation, where it is the
    identity. Masks come from ``generator`` (when given) so that a seeded run is reproducible and resumable.
    """

    def __init__(self, p: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not is_real(p) or not 0 <= p < 1:
            raise ConfigError(f"dropout must be in [0, 1), but got p={p!r}.")
        self.p = float(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)
        return x * mask / keep


class BPRNet(nn.Module):
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
