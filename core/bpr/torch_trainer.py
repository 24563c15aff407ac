"""BPR in PyTorch: mini-batch training with a choice of optimizer, learning-rate curve, embedding dropout and
gradient clipping, for the cases the numba kernel (:class:`core.bpr.BPR`, plain SGD) does not cover.

This module imports torch; ``core.bpr`` does not import it, so ``import core`` stays torch-free. The estimator
speaks the same language as :class:`core.bpr.BPR`: sparse users x items input, ``float32`` factors in
``user_factors_`` / ``item_factors_`` (same item-bias layout), the same callbacks, history and errors.
Its parts: the optimizer and learning-rate curve (:mod:`core.bpr.optimizer`), the network
(:mod:`core.bpr.torch_net`), the negatives (:mod:`core.bpr.negative_sampler`) and the checkpoints
(:mod:`core.bpr.torch_checkpoint`).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from core.bpr.checkpoint import check_checkpointing
from core.bpr.epochs import Epoch, EpochPlan, run_epochs
from core.bpr.initial import initial_factors
from core.bpr.negative_sampler import (
    NegativeSampler,
    UniformNegativeSampler,
    draw_negatives,
    is_positive,
    positive_keys,
)
from core.bpr.optimizer import OptimizerConfig, learning_rate_at, make_optimizer
from core.bpr.sampler import positives_csr, user_of_interactions
from core.bpr.settings import check_hard_bpr, is_int, is_real, per_row_regularization
from core.bpr.sparse_optimizer import clip_sparse_grad_norm_
from core.bpr.torch_checkpoint import load_torch_checkpoint, restore_torch_checkpoint, save_torch_checkpoint
from core.bpr.torch_net import BPRNet, EmbeddingDropout
from core.bpr.validation import validate_interactions
from core.callbacks import Callback, TrainingHistory, as_callbacks
from core.defaults import BPR_DEFAULTS
from core.errors import ConfigError, ModelFitError

log = logging.getLogger(__name__)

LOSSES: tuple[str, ...] = ("bpr", "hard_bpr")


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
        samples_per_epoch: float = BPR_DEFAULTS.samples_per_epoch,
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
            ("n_candidates", 1),
        ):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, but got {name}={value!r}.")
        per = self.samples_per_epoch
        if not is_real(per) or per <= 0:
            raise ConfigError(f"samples_per_epoch must be a finite number > 0, but got {per!r}.")
        if self.optimizer is not None and not isinstance(self.optimizer, OptimizerConfig):
            raise ConfigError(
                f"optimizer must be an OptimizerConfig or None, but got optimizer={self.optimizer!r}."
            )
        if not is_real(self.dropout) or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), but got dropout={self.dropout!r}.")
        if not isinstance(self.item_bias, bool):
            raise ConfigError(f"item_bias must be a bool, but got item_bias={self.item_bias!r}.")
        if not is_real(self.init_std) or self.init_std <= 0:
            raise ConfigError(f"init_std must be a finite number > 0, but got init_std={self.init_std!r}.")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, but got loss={self.loss!r}.")
        schedule = self.schedule_epochs
        if schedule is not None and (not is_int(schedule) or schedule < self.epochs):
            raise ConfigError(
                f"schedule_epochs must be None or an integer >= epochs={self.epochs}, but got {schedule=}."
            )
        check_hard_bpr(self.hard_bpr_a, self.hard_bpr_b, self.hard_bpr_c)
        reg = self.regularization
        if not is_real(reg) or reg < 0:
            raise ConfigError(f"regularization must be a finite number >= 0, but got regularization={reg!r}.")
        for name in ("reg_user", "reg_pos", "reg_neg"):
            value = getattr(self, name)
            if value is not None and (not is_real(value) or value < 0):
                raise ConfigError(f"{name} must be None or a finite number >= 0, but got {name}={value!r}.")
        device = self.device
        if not isinstance(device, str) or not (
            device in ("cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())
        ):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', but got {device=}.")
        random_state = self.random_state
        if random_state is not None and (not is_int(random_state) or random_state < 0):
            raise ConfigError(f"random_state must be an integer >= 0 or None, but got {random_state=}.")
        if not isinstance(self.show_progress, bool):
            raise ConfigError(f"show_progress must be a bool, but got show_progress={self.show_progress!r}.")
        sampler = self.negative_sampler
        if sampler is not None and not callable(getattr(sampler, "sample", None)):
            raise ConfigError(
                f"negative_sampler must have a sample(users, epoch, rng) method, but got {sampler!r}."
            )
        if not is_int(self.num_threads) or self.num_threads < 0:
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
        for message in validate_interactions(user_items):
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
        net = BPRNet(
            user_init, item_init, self.item_bias, EmbeddingDropout(self.dropout, generator), config.sparse
        )
        net.to(device)
        optimizer = make_optimizer(config, net.user_weight, net.item_weight)
        history = TrainingHistory()
        start = 0
        if resume_from is not None:
            ckpt = load_torch_checkpoint(resume_from)
            start = restore_torch_checkpoint(
                ckpt,
                net,
                optimizer,
                streams=(rng, generator),
                seed=seed,
                config=config,
                run=self._run_settings(),
                shape_of=f"factors={self.factors}, item_bias={self.item_bias}",
            )
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
        draws = [draw_negatives(sampler, users, epoch, rng, n_items) for _ in range(self.n_candidates)]
        negs = draws[0] if len(draws) == 1 else np.stack(draws)
        drawn = negs >= 0
        every_user = np.broadcast_to(users, negs.shape)
        clash = int(np.count_nonzero(is_positive(keys, every_user[drawn], negs[drawn], n_items)))
        if clash:
            raise ConfigError(f"negative_sampler.sample returned {clash} negatives that are train positives")
        keep = drawn if negs.ndim == 1 else drawn.any(axis=0)
        if not keep.all():
            users, items, negs = users[keep], items[keep], negs[..., keep]
        return users, items, negs


class _TorchEpochs:
    """:class:`TorchBPR`'s part of the epoch loop (:func:`core.bpr.epochs.run_epochs`): one epoch of
    mini-batches, and the checkpoint after it."""

    def __init__(
        self,
        model: TorchBPR,
        pos: sp.csr_matrix,
        trained: tuple[BPRNet, torch.optim.Optimizer],
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
        self.user_of, self.keys = user_of_interactions(pos), positive_keys(pos)
        self.n_samples = max(1, round(model.samples_per_epoch * pos.nnz))  # as the kernel's trainer counts

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
