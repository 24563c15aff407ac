"""The epoch loop both BPR trainers share: per-epoch history and progress, callbacks, checkpoints, the
early stop a callback asks for and the best step a validation monitor restores.

A trainer (:class:`core.bpr.BPR`, :class:`core.bpr.torch_trainer.TorchBPR`) hands :func:`run_epochs` an
:class:`EpochTrainer`: one epoch's work and the checkpoint it writes; everything around them lives here
once, so the two trainers cannot drift apart in what an epoch records or when training ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from core.callbacks import Callback, TrainingHistory, TrainingStep, ValidationMonitor, run_callbacks
from core.errors import StopTraining

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Epoch:
    """What one epoch of training left: its mean loss, learning rate and seconds of training work, the
    factors after it (the scorer layout) and what the progress bar shows of it."""

    loss: float
    learning_rate: float
    seconds: float
    user_factors: np.ndarray
    item_factors: np.ndarray
    postfix: Mapping[str, object] = field(default_factory=dict)


class EpochTrainer(Protocol):
    """The trainer-specific part of the loop."""

    def train_epoch(self, epoch: int) -> Epoch:
        """Train 1-based ``epoch``; raise :class:`core.errors.ModelFitError` when it diverged."""
        ...

    def save_checkpoint(self, epoch: int, history: TrainingHistory) -> None:
        """Write what a resume after ``epoch`` needs (``history`` includes ``epoch``)."""
        ...


@dataclass(frozen=True)
class Trained:
    """The loop's outcome: the factors to keep (a monitor's best when it restores them), the best step,
    and whether (and why) a callback stopped training early."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    best_epoch: int
    stopped_early: bool
    stop_reason: str | None


@dataclass(frozen=True)
class EpochPlan:
    """Which epochs to run and what surrounds each: epochs ``start + 1 .. epochs``, timed from
    ``started``, a checkpoint every ``checkpoint_every`` epochs (0: none), progress under ``name``."""

    name: str
    start: int
    epochs: int
    started: float
    checkpoint_every: int
    show_progress: bool


def run_epochs(
    trainer: EpochTrainer,
    plan: EpochPlan,
    history: TrainingHistory,
    callbacks: list[Callback],
    factors: tuple[np.ndarray, np.ndarray],
) -> Trained:
    """Run the epochs of ``plan``, recording each in ``history`` (with the validations of every
    :class:`ValidationMonitor` in ``callbacks``). ``factors``: the factors before the first epoch to run
    (what a resumed fit that has nothing left to run keeps). A callback's :class:`StopTraining` ends training
    after that epoch's checkpoint."""
    monitors = [cb for cb in callbacks if isinstance(cb, ValidationMonitor)]
    merged = [0] * len(monitors)
    user_factors, item_factors = factors
    stop: StopTraining | None = None
    bar = tqdm(
        total=plan.epochs, initial=plan.start, disable=not plan.show_progress, desc=plan.name, unit="epoch"
    )
    try:
        for epoch in range(plan.start + 1, plan.epochs + 1):
            done = trainer.train_epoch(epoch)
            user_factors, item_factors = done.user_factors, done.item_factors
            history.record(epoch, float(done.loss), done.learning_rate, done.seconds)
            bar.update(1)
            bar.set_postfix(**done.postfix)
            step = TrainingStep(
                step=epoch,
                elapsed=time.perf_counter() - plan.started,
                loss=float(done.loss),
                user_factors=user_factors,
                item_factors=item_factors,
                learning_rate=done.learning_rate,
            )
            try:
                run_callbacks(callbacks, step)
            except StopTraining as exc:
                stop = exc
            for k, monitor in enumerate(monitors):
                merged[k] = merge_validation(history, monitor.history, merged[k])
            if plan.checkpoint_every and epoch % plan.checkpoint_every == 0:
                trainer.save_checkpoint(epoch, history)
            if stop is not None:
                log.info("%s stopped early after epoch %d: %s", plan.name, epoch, stop)
                break
    finally:
        bar.close()
    best_epoch = history.steps[-1] if history.steps else plan.start
    for monitor in monitors[:1]:
        if monitor.best_step:
            best_epoch = monitor.best_step
            if monitor.restore_best and monitor.best_factors is not None:
                user_factors, item_factors = monitor.best_factors
    reason = None if stop is None else str(stop)
    return Trained(user_factors, item_factors, best_epoch, stop is not None, reason)


def merge_validation(history: TrainingHistory, source: TrainingHistory, done: int) -> int:
    """Copy the validations of ``source`` past its first ``done`` into ``history``; returns how many are
    copied now."""
    for k in range(done, len(source.val_steps)):
        history.record_validation(source.val_steps[k], {m: v[k] for m, v in source.val_metrics.items()})
    return len(source.val_steps)
