"""ALS on implicit feedback: ``implicit``'s CPU conjugate-gradient solver with presets, a per-iteration
callback (the early-stopping and pruning hook), checkpoints and resume, and text-embedding initialisation.

Weights follow Hu, Koren & Volinsky (2008): an observed cell weighs ``C = 1 + alpha * confidence`` (its
preference is 1), an unobserved one weighs 1 (preference 0); ``confidence`` comes from :mod:`core.confidence`
(rating + review quality by default). ``implicit`` takes the stored value itself as an observed cell's weight,
so :func:`confidence_weights` stores ``1 + alpha * confidence`` and ``implicit`` gets ``alpha=1``: an observed
cell never weighs less than a missing one, whatever alpha.
"""

from __future__ import annotations

import copy
import json
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from core.artifacts import atomic_write_npz
from core.callbacks import (
    Callback,
    TrainingHistory,
    TrainingStep,
    ValidationMonitor,
    as_callbacks,
    run_callbacks,
)
from core.errors import ConfigError, ModelFitError, StopTraining
from core.initialization import Projection, project_item_factors
from core.model import recommend_from_factors
from core.recommend import Recommendation


def confidence_weights(confidence: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """The matrix ``implicit`` fits (with its own ``alpha=1``): ``1 + alpha * confidence`` on observed cells.

    ``implicit`` weighs an observed cell by its stored value and a missing one by 1, so storing the bare
    ``alpha * confidence`` would let a small alpha make an observed cell count less than a missing one. Stored
    zeros stay unobserved; a negative confidence (``implicit``'s "disliked") is refused.
    """
    weights = sp.csr_matrix(confidence, dtype=np.float32, copy=True)
    weights.eliminate_zeros()
    if weights.data.size and weights.data.min() < 0:
        raise ConfigError(f"confidence must be >= 0, but got a value of {float(weights.data.min())}.")
    weights.data = (1.0 + np.float32(alpha) * weights.data).astype(np.float32)
    return weights


@dataclass(frozen=True)
class ALSPreset:
    factors: int
    regularization: float
    alpha: float
    iterations: int
    description: str


#: The seed's five presets.
PRESETS: dict[str, ALSPreset] = {
    "default": ALSPreset(64, 0.01, 10.0, 15, "rating + review-quality confidence (1-6)"),
    "normalized": ALSPreset(64, 0.01, 40.0, 15, "confidence normalised to 0-1"),
    "high_quality": ALSPreset(128, 0.05, 10.0, 20, "more expressive embeddings"),
    "fast": ALSPreset(32, 0.01, 10.0, 10, "quick training, less accurate"),
    "sparse_data": ALSPreset(64, 0.1, 5.0, 15, "few interactions per user (>= 2 threshold)"),
}


def preset_params(name: str) -> dict[str, Any]:
    """The constructor parameters of one of :data:`PRESETS`; an unknown name is a :class:`ConfigError`."""
    if name not in PRESETS:
        raise ConfigError(f"unknown ALS preset {name!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[name]
    return {
        "factors": p.factors,
        "regularization": p.regularization,
        "alpha": p.alpha,
        "iterations": p.iterations,
    }


class ALS:
    """Alternating least squares for implicit feedback.

    Parameters are stored as given and checked in :meth:`fit` (scikit-learn style); learned state ends in
    ``_``: ``user_factors_``, ``item_factors_``, ``history_``, ``n_iterations_``, ``stopped_early_``,
    ``fit_seconds_``, ``peak_rss_mb_``, ``best_epoch_`` (:class:`core.model.Model`).
    """

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    history_: TrainingHistory
    fit_seconds_: float | None
    peak_rss_mb_: float | None
    n_iterations_: int | None
    stopped_early_: bool | str | None
    best_epoch_: int | None

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 10.0,
        iterations: int = 15,
        *,
        random_state: int = 42,
        num_threads: int = 0,
        calculate_training_loss: bool = False,
        show_progress: bool = True,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        self.show_progress = show_progress

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ALS:
        """One of :data:`PRESETS`, with any parameter overridden."""
        return cls(**{**preset_params(name), **overrides})

    def get_params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "random_state": self.random_state,
            "num_threads": self.num_threads,
            "calculate_training_loss": self.calculate_training_loss,
        }

    def _check_params(self) -> None:
        if not isinstance(self.factors, int | np.integer) or self.factors < 1:
            raise ConfigError(f"factors must be a positive integer, but got factors={self.factors!r}.")
        if not self.regularization >= 0:
            raise ConfigError(f"regularization must be >= 0, but got regularization={self.regularization!r}.")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, but got alpha={self.alpha!r}.")
        if not isinstance(self.iterations, int | np.integer) or self.iterations < 1:
            raise ConfigError(
                f"iterations must be a positive integer, but got iterations={self.iterations!r}."
            )
        if self.num_threads < 0:
            raise ConfigError(f"num_threads must be >= 0, but got num_threads={self.num_threads!r}.")

    def fit(
        self,
        user_items: sp.csr_matrix,
        *,
        callback: Callback | Sequence[Callback] | None = None,
        item_factors_init: np.ndarray | None = None,
        init_projection: Projection = "svd",
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        resume_from: str | Path | None = None,
    ) -> ALS:
        """Fit on a users x items matrix of confidence values (zeros = unobserved); an observed cell weighs
        ``1 + alpha * confidence`` (:func:`confidence_weights`).

        ``callback`` runs after every iteration with a :class:`TrainingStep`; raising ``StopTraining`` ends
        the fit with the factors of that iteration. ``item_factors_init`` (n_items x d) seeds the item
        factors, projected to ``factors`` dims. A checkpoint is written every ``checkpoint_every`` iterations;
        ``resume_from`` continues from one and gives the same factors as an uninterrupted fit.
        """
        self._check_params()
        if checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, but got {checkpoint_every=}.")
        if checkpoint_every and checkpoint_dir is None:
            raise ConfigError("checkpoint_every needs a checkpoint_dir")
        user_items = sp.csr_matrix(user_items, dtype=np.float32)
        if user_items.data.size and not np.all(np.isfinite(user_items.data)):
            raise ModelFitError("confidence matrix contains NaN or inf")
        weights = confidence_weights(user_items, self.alpha)
        n_users, n_items = user_items.shape
        callbacks = as_callbacks(callback)
        start, history = 0, TrainingHistory()
        user_factors, item_factors = self._initial_factors(
            n_users, n_items, item_factors_init, init_projection
        )
        if resume_from is not None:
            user_factors, item_factors, start, history = self._load_checkpoint(
                Path(resume_from), n_users, n_items
            )
        solver = self._solver(user_factors, item_factors, start)
        checkpoints = (
            None
            if checkpoint_dir is None or not checkpoint_every
            else (Path(checkpoint_dir), checkpoint_every)
        )
        self.stopped_early_ = None
        t0 = time.perf_counter()
        with (
            threadpool_limits(1, "blas"),
            tqdm(
                total=self.iterations,
                initial=start,
                desc="ALS",
                disable=not self.show_progress,
                leave=False,
            ) as progress,
        ):
            on_iteration = self._on_iteration(solver, start, history, callbacks, checkpoints, t0, progress)
            try:
                if solver.iterations:
                    solver.fit(weights, show_progress=False, callback=on_iteration)
            except StopTraining as stop:
                self.stopped_early_ = str(stop)
        self._finish(solver, callbacks, history, start, t0)
        return self

    def _initial_factors(
        self, n_users: int, n_items: int, item_factors_init: np.ndarray | None, init_projection: Projection
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform [0, 0.01) float32 factors from ``random_state``; item factors projected from
        ``item_factors_init`` when given (its explained variance kept in ``init_explained_variance_``)."""
        rng = np.random.default_rng(self.random_state)
        user_factors = (rng.random((n_users, self.factors), dtype=np.float32) * 0.01).astype(np.float32)
        item_factors = (rng.random((n_items, self.factors), dtype=np.float32) * 0.01).astype(np.float32)
        self.init_explained_variance_: float | None = None
        if item_factors_init is not None:
            if item_factors_init.shape[0] != n_items:
                raise ConfigError(
                    f"item_factors_init has {item_factors_init.shape[0]} rows "
                    f"but the matrix has {n_items} items"
                )
            item_factors, self.init_explained_variance_ = project_item_factors(
                item_factors_init, self.factors, method=init_projection
            )
        return user_factors, item_factors

    def _solver(
        self, user_factors: np.ndarray, item_factors: np.ndarray, start: int
    ) -> AlternatingLeastSquares:
        """``implicit``'s solver for the iterations left after ``start``, starting from these factors."""
        with threadpool_limits(1, "blas"):  # implicit warns (rightly) about a threaded BLAS at construction
            solver = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,  # the weights already hold 1 + alpha * confidence
                iterations=max(0, self.iterations - start),
                calculate_training_loss=self.calculate_training_loss,
                num_threads=self.num_threads,
                random_state=self.random_state,
            )
        solver.user_factors = user_factors
        solver.item_factors = item_factors
        return solver

    def _on_iteration(
        self,
        solver: AlternatingLeastSquares,
        start: int,
        history: TrainingHistory,
        callbacks: list[Callback],
        checkpoints: tuple[Path, int] | None,
        t0: float,
        progress: tqdm,
    ) -> Callable[[int, float, float | None], None]:
        """``implicit``'s per-iteration hook: check the factors, record, checkpoint, run the callbacks."""
        last = [t0]

        def on_iteration(iteration: int, _elapsed: float, loss: float | None) -> None:
            now = time.perf_counter()
            step_no = start + iteration + 1
            u, v = solver.user_factors, solver.item_factors
            if not (np.isfinite(u).all() and np.isfinite(v).all()):
                raise ModelFitError(
                    f"ALS diverged at iteration {step_no}: NaN or inf in the factors "
                    f"(regularization={self.regularization}, alpha={self.alpha})"
                )
            history.record(step_no, None if loss is None else float(loss), None, now - last[0])
            last[0] = now
            if checkpoints is not None and step_no % checkpoints[1] == 0:
                self._save_checkpoint(checkpoints[0], step_no, u, v, history)
            run_callbacks(callbacks, TrainingStep(step_no, now - t0, loss, u, v))
            progress.update(1)

        return on_iteration

    def _finish(
        self,
        solver: AlternatingLeastSquares,
        callbacks: list[Callback],
        history: TrainingHistory,
        start: int,
        t0: float,
    ) -> None:
        """The learned state: the solver's factors (or a monitor's best), the history and the run metadata."""
        self.user_factors_ = np.asarray(solver.user_factors)
        self.item_factors_ = np.asarray(solver.item_factors)
        self.best_epoch_ = None
        for monitor in (cb for cb in callbacks if isinstance(cb, ValidationMonitor)):
            history.val_steps, history.val_metrics = monitor.history.val_steps, monitor.history.val_metrics
            if monitor.restore_best and monitor.best_factors is not None:
                self.user_factors_, self.item_factors_ = monitor.best_factors
                self.best_epoch_ = monitor.best_step
        self.history_ = history
        self.n_iterations_ = history.steps[-1] if history.steps else start
        self.fit_seconds_ = time.perf_counter() - t0
        self.peak_rss_mb_ = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def with_steps(self, steps: int) -> ALS:
        """A copy with ``iterations=steps`` (:meth:`core.model.Model.with_steps`)."""
        out = copy.copy(self)
        out.iterations = steps
        return out

    def recommend(
        self, users: Sequence[int], user_items: sp.csr_matrix | None = None, k: int = 10
    ) -> list[Recommendation]:
        """Top ``k`` items of ``users``, ``user_items`` left out (:meth:`core.model.Model.recommend`)."""
        return recommend_from_factors(self, users, user_items, k)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(
        self, directory: Path, step: int, u: np.ndarray, v: np.ndarray, history: TrainingHistory
    ) -> Path:
        return atomic_write_npz(
            directory / f"als_checkpoint_{step:04d}.npz",
            user_factors=u,
            item_factors=v,
            iteration=np.array(step),
            factors=np.array(self.factors),
            history=np.array(json.dumps(history.to_dict())),
        )

    def _load_checkpoint(
        self, path: Path, n_users: int, n_items: int
    ) -> tuple[np.ndarray, np.ndarray, int, TrainingHistory]:
        if path.is_dir():
            found = sorted(path.glob("als_checkpoint_*.npz"))
            if not found:
                raise ConfigError(f"no ALS checkpoint in {path}")
            path = found[-1]
        with np.load(path) as ckpt:
            u, v = ckpt["user_factors"], ckpt["item_factors"]
            step = int(ckpt["iteration"])
            history = TrainingHistory.from_dict(json.loads(str(ckpt["history"])))
        if u.shape != (n_users, self.factors) or v.shape != (n_items, self.factors):
            raise ConfigError(
                f"checkpoint {path} holds factors {u.shape} / {v.shape}, which do not fit a "
                f"{n_users} x {n_items} matrix with factors={self.factors}"
            )
        return np.ascontiguousarray(u), np.ascontiguousarray(v), step, history
