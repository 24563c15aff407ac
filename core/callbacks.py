"""Per-iteration callbacks: the seam through which early stopping, pruning and tracking reach training.

Both trainers (ALS, BPR) call every callback after each iteration / epoch with a :class:`TrainingStep`. A
callback may raise :class:`~core.errors.StopTraining` to end training early; anything else it raises (an
Optuna ``TrialPruned``, say) propagates to the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from core.errors import StopTraining
from core.evaluate import evaluate


@dataclass(frozen=True)
class TrainingStep:
    """State after one finished iteration (ALS) or epoch (BPR). Factors are live views: copy to keep."""

    step: int  # 1-based
    elapsed: float  # seconds since fit started
    loss: float | None
    user_factors: np.ndarray
    item_factors: np.ndarray
    learning_rate: float | None = None


Callback = Callable[[TrainingStep], None]


def as_callbacks(callback: Callback | Sequence[Callback] | None) -> list[Callback]:
    """Accept one callback, a list of them, or None."""
    if callback is None:
        return []
    if callable(callback):
        return [callback]
    return list(callback)


def run_callbacks(callbacks: Iterable[Callback], step: TrainingStep) -> None:
    for cb in callbacks:
        cb(step)


@dataclass
class TrainingHistory:
    """What happened during a fit, step by step; ``val_metrics`` holds the steps that were evaluated."""

    steps: list[int] = field(default_factory=list)
    losses: list[float | None] = field(default_factory=list)
    learning_rates: list[float | None] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_metrics: dict[str, list[float]] = field(default_factory=dict)

    def record(self, step: int, loss: float | None, learning_rate: float | None, duration: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self.learning_rates.append(learning_rate)
        self.durations.append(duration)

    def record_validation(self, step: int, metrics: dict[str, float]) -> None:
        self.val_steps.append(step)
        for name, value in metrics.items():
            self.val_metrics.setdefault(name, []).append(float(value))

    def get_best_epoch(self, metric: str = "ndcg@10") -> int:
        """Step with the highest validation ``metric`` (first one on ties)."""
        values = self.val_metrics.get(metric)
        if not values:
            raise KeyError(
                f"no validation values recorded for {metric!r}; recorded: {sorted(self.val_metrics)}"
            )
        return self.val_steps[int(np.argmax(values))]

    def to_dict(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "losses": self.losses,
            "learning_rates": self.learning_rates,
            "durations": self.durations,
            "val_steps": self.val_steps,
            "val_metrics": self.val_metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrainingHistory:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Snapshot:
    """The model as it stood after ``step`` steps: the factors it would have ended on had it been trained for
    ``step`` steps (its best evaluated step so far when restoring the best, else that step's own)."""

    step: int
    best_step: int
    best_value: float
    user_factors: np.ndarray
    item_factors: np.ndarray


class ValidationMonitor:
    """Evaluate on validation every ``every`` steps (and at ``last_step``) through the one evaluator; stop
    after ``patience`` evaluations without improvement; keep the best factors so that the model (ALS and BPR
    both do) ends on them when ``restore_best``.

    ``on_evaluate(step, metrics)`` is called after each evaluation: this is where a study reports the value
    to Optuna (and may raise ``TrialPruned``). ``keep_at`` names steps at which a :class:`Snapshot` is kept
    in ``snapshots``: a fit of N steps passes through every shorter fit of the same configuration (same seed,
    same first steps), so one training can stand for several step counts. ``users``: the rows evaluated (a
    study's fixed sample of validation users, :mod:`search.validation_sample`); default every row of
    ``truth`` with a relevant item.
    """

    def __init__(
        self,
        truth: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        *,
        metric: str = "ndcg@10",
        ks: Sequence[int] = (10,),
        every: int = 1,
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
        on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
        last_step: int | None = None,
        keep_at: Collection[int] = (),
        users: np.ndarray | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, but got {every=}.")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, but got {patience=}.")
        self.truth = truth
        self.exclude = exclude
        self.metric = metric
        self.ks = tuple(ks)
        self.every = every
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.on_evaluate = on_evaluate
        self.last_step = last_step
        self.keep_at = frozenset(int(k) for k in keep_at)
        self.snapshots: dict[int, Snapshot] = {}
        self.history = TrainingHistory()
        self.best_value = -np.inf
        self.best_step = 0
        self.best_factors: tuple[np.ndarray, np.ndarray] | None = None
        self._since_best = 0
        self._users = np.flatnonzero(np.diff(truth.indptr) > 0) if users is None else np.asarray(users)

    def __call__(self, step: TrainingStep) -> None:
        if step.step % self.every and step.step != self.last_step and step.step not in self.keep_at:
            return
        result = evaluate(
            step.user_factors, step.item_factors, self.truth, self.exclude, ks=self.ks, users=self._users
        )
        value = result.metrics[self.metric]
        self.history.record_validation(step.step, result.metrics)
        if value > self.best_value + self.min_delta:
            self.best_value, self.best_step, self._since_best = value, step.step, 0
            if self.restore_best:
                self.best_factors = (step.user_factors.copy(), step.item_factors.copy())
        else:
            self._since_best += 1
        if step.step in self.keep_at:
            u, v = (
                self.best_factors
                if self.restore_best and self.best_factors is not None
                else (
                    step.user_factors.copy(),
                    step.item_factors.copy(),
                )
            )
            self.snapshots[step.step] = Snapshot(step.step, self.best_step, self.best_value, u, v)
        if self.on_evaluate is not None:
            self.on_evaluate(step.step, result.metrics)
        if self.patience is not None and self._since_best >= self.patience:
            raise StopTraining(
                f"{self.metric} did not improve for {self.patience} evaluations "
                f"(best {self.best_value:.5f} at step {self.best_step})"
            )
