"""The BPR estimator: validation, seeding and the epoch loop around the compiled kernel.

Everything slow-but-rare lives here (casting, checks, seeding, progress, callbacks); every sample is drawn and
applied inside :func:`core.bpr.kernel.bpr_epoch`. The shared setting rules are :mod:`core.bpr.settings`, the
initial factors :mod:`core.bpr.initial`, the checkpoints :mod:`core.bpr.checkpoint`.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from core.bpr import kernel
from core.bpr.checkpoint import check_checkpointing, load_checkpoint, save_checkpoint
from core.bpr.epochs import Epoch, EpochPlan, run_epochs
from core.bpr.initial import PROJECTIONS, initial_factors
from core.bpr.sampler import HardNegatives, hard_negatives_csr, positives_csr, user_of_interactions
from core.bpr.settings import check_hard_bpr, is_int, is_real, per_row_regularization
from core.bpr.validation import validate_interactions
from core.callbacks import Callback, TrainingHistory, as_callbacks
from core.defaults import BPR_DEFAULTS
from core.errors import ConfigError, DataError, ModelFitError
from core.model import recommend_from_factors
from core.recommend import Recommendation

log = logging.getLogger(__name__)

#: The sampling and loss options a checkpoint records; older checkpoints lack them and ran these defaults.
_DEFAULT_OPTIONS: dict[str, Any] = {
    "n_candidates": 1,
    "n_negatives": 1,
    "loss": "bpr",
    "hard_bpr_a": 1.0,
    "hard_bpr_b": -1.0,
    "hard_bpr_c": 0.8,
}


def _numba_threads() -> int:
    """Threads numba's pool was started with (``NUMBA_NUM_THREADS``, all cores by default)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


class BPR:
    """Bayesian Personalized Ranking by SGD with hard-negative mixing, trained by a fused numba kernel.

    Each epoch draws ``samples_per_epoch * nnz`` triplets, rounded (any number > 0: a search budgets large
    logs in fractions, :mod:`search.step_budget`; see :mod:`core.bpr.kernel` for the sampling rule and the
    update). The learning rate of epoch ``e`` (1-based) is
    ``learning_rate * lr_decay ** ((e - 1) // lr_decay_every)``. The defaults are
    :data:`core.defaults.BPR_DEFAULTS` (256 factors with the item bias, a rate of 0.1 decaying by 0.8 every
    10 epochs, uniform negatives), the data-driven default's too.

    ``item_bias=True`` adds a learned per-item bias, as implicit's BPR does: factors get one more column,
    held at 1 for users, so that an item's last factor is its bias and every scorer (``U @ V.T``) adds it.
    Popularity then has its own parameter instead of taking up factors ("Revisiting BPR", Milogradskii et
    al. 2024, finds the bias among the parts that matter most).

    ``regularization`` is the L2 weight of every factor row a step touches; ``reg_user``, ``reg_pos`` and
    ``reg_neg`` (None: ``regularization``) set it apart for the user, the positive item and the negative item.

    Harder negatives and a loss for them (all off by default; the defaults train exactly as before):
    ``n_candidates > 1`` makes each negative the best-scored of that many draws (adaptive sampling, "max of
    n"); ``n_negatives > 1`` pairs each drawn positive with that many negatives, applied as separate triplet
    steps (an epoch then makes ``samples_per_epoch * nnz * n_negatives`` updates, and ``history_`` losses are
    per triplet); ``loss="hard_bpr"`` replaces ``-log sigmoid(x)`` by Hard-BPR's
    ``-log((sigmoid(c * x + b) + a) / (1 + a))`` with ``a, b, c = hard_bpr_a, hard_bpr_b, hard_bpr_c``, whose
    gradient fades for negatives scored far above the positive (likely unlabelled positives); its weights
    are smaller than BPR's (at ``x = 0``, 0.12 against 0.5 with the default ``a, b, c``), so it may want a
    larger ``learning_rate``. See :func:`core.bpr.kernel.bpr_epoch` for the exact rules.
    ``sampling_stats_["candidate_scores"]`` counts the candidate scores computed.

    Reproducibility: epoch ``e`` seeds thread ``t`` from ``SeedSequence([random_state, e])``, so with
    ``num_threads=1`` two fits with the same ``random_state`` give bit-identical factors, and a run resumed
    from a checkpoint equals the uninterrupted one. With more threads the lock-free (Hogwild) updates
    interleave differently each run; factors differ in the last bits and the validation NDCG@10 of repeated
    runs stays within 1% (relative). ``num_threads=0`` uses every core numba sees.

    Early stopping is a callback: pass a :class:`core.callbacks.ValidationMonitor` (``patience=...``) in
    ``callback``; its metrics land in ``history_``, its best factors are restored and ``best_epoch_`` is its
    best step.
    """

    def __init__(
        self,
        factors: int = BPR_DEFAULTS.factors,
        learning_rate: float = BPR_DEFAULTS.learning_rate,
        regularization: float = BPR_DEFAULTS.regularization,
        epochs: int = BPR_DEFAULTS.epochs,
        samples_per_epoch: float = BPR_DEFAULTS.samples_per_epoch,
        hard_ratio: float = BPR_DEFAULTS.hard_ratio,
        lr_decay: float = BPR_DEFAULTS.lr_decay,
        lr_decay_every: int = BPR_DEFAULTS.lr_decay_every,
        init_std: float = BPR_DEFAULTS.init_std,
        num_threads: int = 0,
        random_state: int | None = 42,
        show_progress: bool = True,
        item_bias: bool = BPR_DEFAULTS.item_bias,
        reg_user: float | None = None,
        reg_pos: float | None = None,
        reg_neg: float | None = None,
        n_candidates: int = BPR_DEFAULTS.n_candidates,
        n_negatives: int = BPR_DEFAULTS.n_negatives,
        loss: str = BPR_DEFAULTS.loss,
        hard_bpr_a: float = BPR_DEFAULTS.hard_bpr_a,
        hard_bpr_b: float = BPR_DEFAULTS.hard_bpr_b,
        hard_bpr_c: float = BPR_DEFAULTS.hard_bpr_c,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.epochs = epochs
        self.samples_per_epoch = samples_per_epoch
        self.hard_ratio = hard_ratio
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
        self.init_std = init_std
        self.num_threads = num_threads
        self.random_state = random_state
        self.show_progress = show_progress
        self.item_bias = item_bias
        self.reg_user = reg_user
        self.reg_pos = reg_pos
        self.reg_neg = reg_neg
        self.n_candidates = n_candidates
        self.n_negatives = n_negatives
        self.loss = loss
        self.hard_bpr_a = hard_bpr_a
        self.hard_bpr_b = hard_bpr_b
        self.hard_bpr_c = hard_bpr_c
        self._check_params()

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        factors, epochs, samples_per_epoch = self.factors, self.epochs, self.samples_per_epoch
        lr_decay_every, num_threads, random_state = self.lr_decay_every, self.num_threads, self.random_state
        learning_rate, regularization, hard_ratio = self.learning_rate, self.regularization, self.hard_ratio
        lr_decay, init_std, show_progress = self.lr_decay, self.init_std, self.show_progress
        if not is_int(factors) or factors < 1:
            raise ConfigError(f"factors must be an integer >= 1, but got {factors=}.")
        if not is_real(learning_rate) or learning_rate <= 0:
            raise ConfigError(f"learning_rate must be a finite number > 0, but got {learning_rate=}.")
        if not is_real(regularization) or regularization < 0:
            raise ConfigError(f"regularization must be a finite number >= 0, but got {regularization=}.")
        if not is_int(epochs) or epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, but got {epochs=}.")
        if not is_real(samples_per_epoch) or samples_per_epoch <= 0:
            raise ConfigError(f"samples_per_epoch must be a finite number > 0, but got {samples_per_epoch=}.")
        if not is_real(hard_ratio) or not 0 <= hard_ratio <= 1:
            raise ConfigError(f"hard_ratio must be in [0, 1], but got {hard_ratio=}.")
        if not is_real(lr_decay) or not 0 < lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], but got {lr_decay=}.")
        if not is_int(lr_decay_every) or lr_decay_every < 1:
            raise ConfigError(f"lr_decay_every must be an integer >= 1, but got {lr_decay_every=}.")
        if not is_real(init_std) or init_std <= 0:
            raise ConfigError(f"init_std must be a finite number > 0, but got {init_std=}.")
        if not is_int(num_threads) or num_threads < 0:
            raise ConfigError(f"num_threads must be an integer >= 0 (0 = all cores), but got {num_threads=}.")
        if random_state is not None and (not is_int(random_state) or random_state < 0):
            raise ConfigError(f"random_state must be an integer >= 0 or None, but got {random_state=}.")
        if not isinstance(show_progress, bool):
            raise ConfigError(f"show_progress must be a bool, but got {show_progress=}.")
        if not isinstance(self.item_bias, bool):
            raise ConfigError(f"item_bias must be a bool, but got item_bias={self.item_bias!r}.")
        for name in ("reg_user", "reg_pos", "reg_neg"):
            value = getattr(self, name)
            if value is not None and (not is_real(value) or value < 0):
                raise ConfigError(f"{name} must be a finite number >= 0 or None, but got {name}={value!r}.")
        for name in ("n_candidates", "n_negatives"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, but got {name}={value!r}.")
        if not isinstance(self.loss, str) or self.loss not in kernel.LOSSES:
            raise ConfigError(f"loss must be one of {tuple(kernel.LOSSES)}, but got loss={self.loss!r}.")
        check_hard_bpr(self.hard_bpr_a, self.hard_bpr_b, self.hard_bpr_c)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as given (what a tracker logs)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def learning_rate_at(self, epoch: int) -> float:
        """Step decay: the rate used in 1-based ``epoch``."""
        return float(self.learning_rate * self.lr_decay ** ((epoch - 1) // self.lr_decay_every))

    def _sampling_options(self) -> dict[str, Any]:
        """What, besides the seeding, decides which steps a fit takes (saved in checkpoints)."""
        options = {name: type(default)(getattr(self, name)) for name, default in _DEFAULT_OPTIONS.items()}
        if self.loss != "hard_bpr":  # a, b, c only matter to Hard-BPR
            options.update(
                {name: _DEFAULT_OPTIONS[name] for name in ("hard_bpr_a", "hard_bpr_b", "hard_bpr_c")}
            )
        return options

    def _threads(self) -> int:
        return self.num_threads or _numba_threads()

    def _epoch_seeds(self, seed: int, epoch: int, n_threads: int) -> np.ndarray:
        return kernel.fix_seeds(np.random.SeedSequence([seed, epoch]).generate_state(n_threads, np.uint64))

    # ------------------------------------------------------------------ data checks
    @staticmethod
    def validate(
        user_items: sp.spmatrix | sp.sparray, hard_negatives: HardNegatives | None = None
    ) -> list[str]:
        """Integrity report (:func:`core.bpr.validation.validate_interactions`): raises :class:`DataError` for
        what training cannot run on, returns warnings for what it can."""
        return validate_interactions(user_items, hard_negatives)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        user_items: sp.spmatrix | sp.sparray,
        *,
        hard_negatives: HardNegatives | None = None,
        callback: Callback | Sequence[Callback] | None = None,
        item_factors_init: np.ndarray | None = None,
        init_projection: str = "svd",
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        resume_from: str | Path | None = None,
    ) -> BPR:
        """Train on ``user_items`` (users x items, nonzero = positive). Returns ``self``.

        ``callback`` (one or a list) is called after every epoch with a :class:`TrainingStep`; raising
        :class:`StopTraining` ends training with the current factors. A checkpoint is written every
        ``checkpoint_every`` epochs into ``checkpoint_dir``; ``resume_from`` (a checkpoint file, or a folder
        whose latest checkpoint is used) continues up to ``epochs``. Raises :class:`ModelFitError` when the
        loss or the factors stop being finite.
        """
        self._check_params()
        if init_projection not in PROJECTIONS:
            raise ConfigError(f"init_projection must be one of {PROJECTIONS}, but got {init_projection=}.")
        check_checkpointing(checkpoint_dir, checkpoint_every)
        for message in self.validate(user_items, hard_negatives):
            log.info("BPR data: %s", message)

        started = time.perf_counter()
        pos = positives_csr(user_items)
        hard = hard_negatives_csr(hard_negatives, pos)
        n_threads = self._threads()
        seed = (
            self.random_state
            if self.random_state is not None
            else int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[arg-type]
        )
        callbacks = as_callbacks(callback)
        counts = np.zeros(4, dtype=np.int64)  # hard, random, skipped, candidate scores
        if resume_from is not None:
            start, user_factors, item_factors, history, saved_counts = self._resume(
                resume_from, pos.shape, seed, n_threads
            )
            counts[: saved_counts.shape[0]] += saved_counts  # older checkpoints hold 3 (no candidate scores)
        else:
            start, history = 0, TrainingHistory()
            user_factors, item_factors = self._initial(pos.shape, seed, item_factors_init, init_projection)
        epochs = _KernelEpochs(
            self, pos, hard, (user_factors, item_factors), (seed, n_threads), counts, checkpoint_dir
        )
        self.stopped_early_ = False
        self.stop_reason_: str | None = None
        plan = EpochPlan("BPR", start, self.epochs, started, checkpoint_every, self.show_progress)
        previous_threads = numba.get_num_threads()
        numba.set_num_threads(min(n_threads, _numba_threads()))
        try:
            trained = run_epochs(epochs, plan, history, callbacks, (user_factors, item_factors))
        finally:
            numba.set_num_threads(previous_threads)
        self.stopped_early_, self.stop_reason_ = trained.stopped_early, trained.stop_reason
        self.best_epoch_ = trained.best_epoch
        self.sampling_stats_ = _sampling_stats(counts)
        self.user_factors_ = trained.user_factors
        self.item_factors_ = trained.item_factors
        self.history_ = history
        self.seed_ = seed
        return self

    def _initial(
        self, shape: tuple[int, int], seed: int, item_factors_init: np.ndarray | None, projection: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """A fresh fit's factors, with implicit's item-bias layout (a user column of ones; its item column
        is the bias) when ``item_bias``."""
        n_users, n_items = shape
        user_factors, item_factors = initial_factors(
            n_users,
            n_items,
            self.factors,
            std=self.init_std,
            seed=seed,
            item_factors_init=item_factors_init,
            projection=projection,
        )
        if self.item_bias:
            user_factors = np.hstack([user_factors, np.ones((n_users, 1), np.float32)])
            item_factors = np.hstack([item_factors, np.zeros((n_items, 1), np.float32)])
        return user_factors, item_factors

    def _resume(
        self, resume_from: str | Path, shape: tuple[int, int], seed: int, n_threads: int
    ) -> tuple[int, np.ndarray, np.ndarray, TrainingHistory, np.ndarray]:
        """A checkpoint's epoch, factors, history and sampling counts, checked against this fit (a different
        seeding or sampling is a warning: the run continues, but not exactly)."""
        n_users, n_items = shape
        ckpt = load_checkpoint(resume_from)
        user_factors = np.ascontiguousarray(ckpt["user_factors"], dtype=np.float32)
        item_factors = np.ascontiguousarray(ckpt["item_factors"], dtype=np.float32)
        width = self.factors + self.item_bias
        if user_factors.shape != (n_users, width) or item_factors.shape != (n_items, width):
            raise DataError(
                f"checkpoint factors {user_factors.shape} / {item_factors.shape} do not fit {n_users} "
                f"users x {n_items} items with factors={self.factors}, item_bias={self.item_bias}"
            )
        if int(ckpt["seed"]) != seed or int(ckpt["num_threads"]) != n_threads:
            log.warning("resuming with a different random_state or num_threads: the run will not be exact")
        options = self._sampling_options()
        saved = _DEFAULT_OPTIONS | json.loads(str(ckpt.get("options", "{}")))  # older: the defaults
        if saved != options:
            log.warning("resuming a run trained with %s under %s: the run will not be exact", saved, options)
        history = TrainingHistory.from_dict(json.loads(str(ckpt["history"])))
        return int(ckpt["epoch"]), user_factors, item_factors, history, ckpt["counts"]

    def with_steps(self, steps: int) -> BPR:
        """A copy with ``epochs=steps`` (:meth:`core.model.Model.with_steps`)."""
        out = copy.copy(self)
        out.epochs = steps
        return out

    def recommend(
        self, users: Sequence[int], user_items: sp.csr_matrix | None = None, k: int = 10
    ) -> list[Recommendation]:
        """Top ``k`` items of ``users``, ``user_items`` left out (:meth:`core.model.Model.recommend`)."""
        return recommend_from_factors(self, users, user_items, k)

    # core.model.Model's members, set by fit; the run metadata the kernel does not measure stays None
    user_factors_: np.ndarray
    item_factors_: np.ndarray
    history_: TrainingHistory
    stopped_early_: bool | str | None
    best_epoch_: int | None
    fit_seconds_: float | None = None
    peak_rss_mb_: float | None = None
    n_iterations_: int | None = None


class _KernelEpochs:
    """:class:`BPR`'s part of the epoch loop (:func:`core.bpr.epochs.run_epochs`): one kernel call per
    epoch, and the checkpoint after it."""

    def __init__(
        self,
        model: BPR,
        pos: sp.csr_matrix,
        hard: sp.csr_matrix,
        factors: tuple[np.ndarray, np.ndarray],
        seeding: tuple[int, int],
        counts: np.ndarray,
        checkpoint_dir: str | Path | None,
    ) -> None:
        """``seeding``: the fit's seed and thread count; ``counts`` (hard, random, skipped, candidate
        scores) is added to in place."""
        self.model, self.counts = model, counts
        self.seed, self.n_threads = seeding
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.user_factors, self.item_factors = factors
        self.arrays = (
            pos.indptr.astype(np.int64),
            pos.indices,
            user_of_interactions(pos),
            hard.indptr.astype(np.int64),
            hard.indices,
        )
        self.n_samples = max(1, round(model.samples_per_epoch * pos.nnz))  # an integer count: the same draws
        self.hard_threshold = kernel.hard_threshold_of(model.hard_ratio)
        self.regs = per_row_regularization(model.regularization, model.reg_user, model.reg_pos, model.reg_neg)
        self.options = model._sampling_options()
        self.seeds = np.zeros(0, dtype=np.uint64)
        self.learning_rate = 0.0

    def train_epoch(self, epoch: int) -> Epoch:
        model = self.model
        lr = model.learning_rate_at(epoch)
        self.seeds = model._epoch_seeds(self.seed, epoch, self.n_threads)
        self.learning_rate = lr
        reg_u, reg_i, reg_j = self.regs
        t0 = time.perf_counter()
        loss_sum, correct, skipped, n_hard, n_random, n_scored = kernel.bpr_epoch(
            *self.arrays,
            self.user_factors,
            self.item_factors,
            lr,
            reg_u,
            self.hard_threshold,
            self.seeds,
            self.n_samples,
            user_cols=model.factors,  # the user columns learned: all but the bias's ones
            reg_pos=reg_i,
            reg_neg=reg_j,
            n_candidates=int(model.n_candidates),
            n_negatives=int(model.n_negatives),
            loss=kernel.LOSSES[model.loss],
            loss_a=float(model.hard_bpr_a),
            loss_b=float(model.hard_bpr_b),
            loss_c=float(model.hard_bpr_c),
        )
        duration = time.perf_counter() - t0
        used = self.n_samples * model.n_negatives - skipped
        loss = loss_sum / used if used else float("nan")
        _check_finite(epoch, lr, loss, self.user_factors, self.item_factors)
        self.counts += (n_hard, n_random, skipped, n_scored)
        postfix = {"loss": f"{loss:.4f}", "correct": f"{correct / max(used, 1):.1%}", "skipped": skipped}
        return Epoch(float(loss), lr, duration, self.user_factors, self.item_factors, postfix)

    def save_checkpoint(self, epoch: int, history: TrainingHistory) -> None:
        assert self.checkpoint_dir is not None
        save_checkpoint(
            self.checkpoint_dir / f"bpr_epoch_{epoch:04d}.npz",
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            epoch=epoch,
            learning_rate=self.learning_rate,
            seed=self.seed,
            num_threads=self.n_threads,
            seeds=self.seeds,
            counts=self.counts,
            history=history,
            options=self.options,
        )


def _sampling_stats(counts: np.ndarray) -> dict[str, Any]:
    """``sampling_stats_`` of the hard / random / skipped / candidate-score ``counts``."""
    total = int(counts[0] + counts[1])
    return {
        "hard_count": int(counts[0]),
        "random_count": int(counts[1]),
        "skipped_count": int(counts[2]),
        "hard_ratio": counts[0] / total if total else 0.0,
        "random_ratio": counts[1] / total if total else 0.0,
        "candidate_scores": int(counts[3]),
    }


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
            f"BPR diverged at epoch {epoch} with learning_rate={lr:g}: {', '.join(bad)} not finite "
            f"(loss={loss}); lower learning_rate or init_std, or raise regularization"
        )
