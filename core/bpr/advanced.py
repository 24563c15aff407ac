"""The seed's advanced BPR as one estimator with flat settings: the torch trainer, its optimizer and
learning-rate curve, and its mixed negative sources, as a ``--param`` or a search space gives them.

:class:`FlatTorchBPR` is what ``trainer=torch`` builds in :mod:`core.train`; :func:`negative_sources` builds
the per-user candidate rows its sampler draws from, out of the data being fitted only. torch is imported on
first use (:func:`torch_modules`), so importing this module, and checking a parameter, stays torch-free.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.bpr import strategy
from core.bpr.strategy import DynamicSamplingConfig, MixedNegativeSampler, SamplingStrategy
from core.callbacks import Callback, TrainingHistory
from core.defaults import BPR_DEFAULTS
from core.errors import ConfigError
from core.home import home
from core.interactions import Interactions
from core.model import recommend_from_factors
from core.recommend import Recommendation
from core.split import hard_negatives
from core.text import item_text_embeddings

#: The torch trainer's named choices, as :mod:`core.bpr.optimizer` and :mod:`core.bpr.strategy` define
#: them (copied so that a parameter is checked without importing torch; a test holds them equal).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adagrad", "adam", "adamw")
SCHEDULERS: tuple[str, ...] = ("constant", "linear", "cosine", "exponential", "warmup_cosine")
CURRICULA: tuple[str, ...] = ("none", "linear", "cosine", "exponential")
#: Negative sources of the torch trainer, each with its ``<source>_ratio`` parameter.
NEGATIVE_SOURCES: tuple[str, ...] = ("hard", "contextual", "sentiment", "popular")


def torch_modules() -> tuple[Any, Any]:
    """:mod:`core.bpr.optimizer` and :mod:`core.bpr.torch_trainer`, imported on first use; a missing torch
    is a one-line error."""
    # lazy: importing torch takes ~3.6 s, which a parameter check, a search space or ALS should not pay
    try:
        from core.bpr import optimizer, torch_trainer
    except ImportError as exc:
        raise ConfigError(
            f"trainer=torch needs PyTorch ({exc.name} is missing): install the text extra, "
            "pip install -e '.[text]'"
        ) from None
    return optimizer, torch_trainer


@dataclass(eq=False, repr=False)  # compared and shown as an estimator: by identity, not by settings
class FlatTorchBPR:
    """The torch trainer (:class:`core.bpr.torch_trainer.TorchBPR`) with every setting a flat keyword: the
    form a ``--param`` or a search space gives (a number, a bool or a name), and the form ``get_params``
    returns for a run folder or a tracker (JSON as it is).

    - TorchBPR's own: ``factors``, ``epochs``, ``batch_size``, ``samples_per_epoch``, ``dropout``,
      ``item_bias``, ``init_std``, ``loss`` with ``hard_bpr_a/b/c``, the per-triplet L2 ``regularization``
      with ``reg_user`` / ``reg_pos`` / ``reg_neg`` and adaptive sampling's ``n_candidates`` (the kernel's
      names and meaning), ``device``,
      ``random_state``, ``show_progress``, ``num_threads``;
    - its :class:`~core.bpr.optimizer.OptimizerConfig`, field by field (``betas`` as ``beta1``,
      ``beta2``): ``optimizer`` (:data:`OPTIMIZERS`), ``learning_rate``, ``user_weight_decay``,
      ``item_weight_decay``, ``momentum``, ``eps``, ``scheduler`` (:data:`SCHEDULERS`), ``warmup_epochs``,
      ``min_lr``, ``gamma``, ``grad_clip``, ``sparse`` (update only the rows a batch touches);
    - negative sampling (:mod:`core.bpr.strategy`): ``<source>_ratio`` for each of :data:`NEGATIVE_SOURCES`
      (a :class:`~core.bpr.strategy.SamplingStrategy`: shares of the draws, the rest uniform, summing to at
      most 1), ``curriculum`` (:data:`CURRICULA`; not ``none``: a
      :class:`~core.bpr.strategy.DynamicSamplingConfig` with ``curriculum_warmup``, ``curriculum_ramp`` and
      ``curriculum_start`` as its warmup_epochs, ramp_epochs and start_difficulty; ignored when ``none``),
      and ``source_size``, the candidates per user in each source.

    Defaults are TorchBPR's and OptimizerConfig's (a test holds them equal), those shared with the kernel
    from :data:`core.defaults.BPR_DEFAULTS`; every ratio defaults to 0: plain
    uniform negatives, TorchBPR's own sampler. Constructing checks every value (and imports torch).

    :meth:`fit` takes the sources, per-user candidate rows built from the training data
    (:func:`negative_sources`, which :func:`core.fit.fit_model` calls), one for each ratio above 0. The
    fitted attributes are TorchBPR's, plus ``fit_seconds_`` and ``sampling_stats_`` (the mixed sampler's
    shares of its draws: with ``n_candidates > 1`` a ratio is a share of the candidates, and a source whose
    items score high wins more than its share of the negatives trained on).
    """

    factors: int = BPR_DEFAULTS.factors
    epochs: int = BPR_DEFAULTS.epochs
    batch_size: int = 4096
    samples_per_epoch: float = BPR_DEFAULTS.samples_per_epoch
    dropout: float = 0.0
    item_bias: bool = BPR_DEFAULTS.item_bias
    init_std: float = BPR_DEFAULTS.init_std
    loss: str = BPR_DEFAULTS.loss
    hard_bpr_a: float = BPR_DEFAULTS.hard_bpr_a
    hard_bpr_b: float = BPR_DEFAULTS.hard_bpr_b
    hard_bpr_c: float = BPR_DEFAULTS.hard_bpr_c
    optimizer: str = "adamw"
    learning_rate: float = 0.01
    user_weight_decay: float = 0.01
    item_weight_decay: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    scheduler: str = "warmup_cosine"
    warmup_epochs: int = 5
    min_lr: float = 1e-6
    gamma: float = 0.95
    grad_clip: float | None = 1.0
    sparse: bool = False
    regularization: float = 0.0
    reg_user: float | None = None
    reg_pos: float | None = None
    reg_neg: float | None = None
    n_candidates: int = BPR_DEFAULTS.n_candidates
    hard_ratio: float = BPR_DEFAULTS.hard_ratio
    contextual_ratio: float = 0.0
    sentiment_ratio: float = 0.0
    popular_ratio: float = 0.0
    curriculum: str = "none"
    curriculum_warmup: int = 5
    curriculum_ramp: int = 10
    curriculum_start: float = 0.3
    source_size: int = 50
    device: str = "cpu"
    random_state: int | None = 42
    show_progress: bool = False
    num_threads: int = 0
    schedule_epochs: int | None = None

    def __post_init__(self) -> None:
        """Check every value: the ratios and the curriculum here, the rest by building the trainer."""
        self.strategy()
        self.dynamic()
        source_size = self.source_size
        if isinstance(source_size, bool) or not isinstance(source_size, int) or source_size < 1:
            raise ConfigError(f"source_size must be an integer >= 1, but got {source_size=}.")
        self.trainer()  # TorchBPR and OptimizerConfig check the rest

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as given (what a run folder and a tracker record)."""
        return {
            name: getattr(self, name)
            for name in inspect.signature(type(self).__init__).parameters
            if name != "self"
        }

    def ratios(self) -> dict[str, float]:
        """Share of the draws from each of :data:`NEGATIVE_SOURCES` (the rest is uniform)."""
        return {name: getattr(self, f"{name}_ratio") for name in NEGATIVE_SOURCES}

    def strategy(self) -> Any:
        """The ratios as a :class:`core.bpr.strategy.SamplingStrategy` (checked: each in [0, 1], sum <= 1)."""
        return SamplingStrategy(**{f"{name}_ratio": value for name, value in self.ratios().items()})

    def dynamic(self) -> Any:
        """The curriculum as a :class:`core.bpr.strategy.DynamicSamplingConfig`, or None for ``none``."""
        if self.curriculum not in CURRICULA:
            raise ConfigError(
                f"curriculum must be one of {CURRICULA}, but got curriculum={self.curriculum!r}."
            )
        if self.curriculum == "none":
            return None
        return DynamicSamplingConfig(
            enabled=True,
            schedule=self.curriculum,  # type: ignore[arg-type]
            warmup_epochs=self.curriculum_warmup,
            ramp_epochs=self.curriculum_ramp,
            start_difficulty=self.curriculum_start,
        )

    def trainer(self, negative_sampler: Any = None) -> Any:
        """An unfitted :class:`core.bpr.torch_trainer.TorchBPR` of these settings."""
        optim, tt = torch_modules()
        config = optim.OptimizerConfig(
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            user_weight_decay=self.user_weight_decay,
            item_weight_decay=self.item_weight_decay,
            momentum=self.momentum,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            scheduler=self.scheduler,
            warmup_epochs=self.warmup_epochs,
            min_lr=self.min_lr,
            gamma=self.gamma,
            grad_clip=self.grad_clip,
            sparse=self.sparse,
        )
        return tt.TorchBPR(
            factors=self.factors,
            epochs=self.epochs,
            batch_size=self.batch_size,
            samples_per_epoch=self.samples_per_epoch,
            optimizer=config,
            dropout=self.dropout,
            item_bias=self.item_bias,
            init_std=self.init_std,
            loss=self.loss,
            hard_bpr_a=self.hard_bpr_a,
            hard_bpr_b=self.hard_bpr_b,
            hard_bpr_c=self.hard_bpr_c,
            device=self.device,
            random_state=self.random_state,
            show_progress=self.show_progress,
            negative_sampler=negative_sampler,
            num_threads=self.num_threads,
            schedule_epochs=self.schedule_epochs,
            regularization=self.regularization,
            reg_user=self.reg_user,
            reg_pos=self.reg_pos,
            reg_neg=self.reg_neg,
            n_candidates=self.n_candidates,
        )

    def negative_sampler(self, user_items: sp.csr_matrix, sources: Mapping[str, sp.csr_matrix | None]) -> Any:
        """A :class:`core.bpr.strategy.MixedNegativeSampler` over the sources of the ratios above 0, or None
        (TorchBPR's uniform sampler) when every ratio is 0. A ratio above 0 without its source is an error."""
        wanted = [name for name, ratio in self.ratios().items() if ratio > 0]
        if not wanted:
            return None
        missing = [name for name in wanted if sources.get(name) is None]
        if missing:
            name = missing[0]
            raise ConfigError(
                f"{name}_ratio={getattr(self, f'{name}_ratio')} needs a {name!r} negative source; "
                "core.bpr.advanced.negative_sources builds one from the training data"
            )
        chosen = {name: sources[name] for name in wanted}
        return MixedNegativeSampler(user_items, chosen, self.strategy(), self.dynamic())

    def fit(
        self,
        user_items: sp.csr_matrix,
        *,
        sources: Mapping[str, sp.csr_matrix | None] | None = None,
        callback: Callback | Sequence[Callback] | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        resume_from: str | Path | None = None,
    ) -> FlatTorchBPR:
        """Train on ``user_items`` (users x items, nonzero = positive), negatives from ``sources``. Returns
        ``self``; callbacks, checkpoints, errors as :meth:`core.bpr.torch_trainer.TorchBPR.fit`."""
        sampler = self.negative_sampler(user_items, sources or {})
        t0 = time.perf_counter()
        fitted = self.trainer(sampler).fit(
            user_items,
            callback=callback,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume_from=resume_from,
        )
        for name in ("user_factors_", "item_factors_", "history_", "best_epoch_", "stopped_early_", "seed_"):
            setattr(self, name, getattr(fitted, name))
        self.stop_reason_: str | None = fitted.stop_reason_
        self.fit_seconds_ = time.perf_counter() - t0
        self.sampling_stats_: dict[str, float] | None = None if sampler is None else sampler.get_stats()
        return self

    def with_steps(self, steps: int) -> FlatTorchBPR:
        """A copy with ``epochs=steps`` on this configuration's learning-rate curve: ``schedule_epochs`` keeps
        the curve's length (as :func:`core.params.stopped_at` does), so the copy takes exactly the same first
        steps (:meth:`core.model.Model.with_steps`)."""
        out = copy.copy(self)
        if out.schedule_epochs is None:
            out.schedule_epochs = self.epochs  # the curve it follows
        out.epochs = steps
        return out

    def recommend(
        self, users: Sequence[int], user_items: sp.csr_matrix | None = None, k: int = 10
    ) -> list[Recommendation]:
        """Top ``k`` items of ``users``, ``user_items`` left out (:meth:`core.model.Model.recommend`)."""
        return recommend_from_factors(self, users, user_items, k)

    # core.model.Model's members, set by fit; ``fit_seconds_`` is measured, the rest stays None. Not
    # constructor parameters (init=False), so get_params and the parameter registry never see them.
    user_factors_: np.ndarray = field(init=False, repr=False, compare=False)
    item_factors_: np.ndarray = field(init=False, repr=False, compare=False)
    history_: TrainingHistory = field(init=False, repr=False, compare=False)
    stopped_early_: bool | str | None = field(init=False, repr=False, compare=False)
    best_epoch_: int | None = field(init=False, repr=False, compare=False)
    fit_seconds_: float | None = field(default=None, init=False, repr=False, compare=False)
    peak_rss_mb_: float | None = field(default=None, init=False, repr=False, compare=False)
    n_iterations_: int | None = field(default=None, init=False, repr=False, compare=False)


def text_cache_dir() -> Path:
    """Where item text embeddings are cached (:func:`core.text.cached_text_embeddings`): under
    :func:`core.home.home`, with every other store."""
    return home() / "text-embeddings"


def negative_sources(
    part: Interactions,
    matrix: sp.csr_matrix,
    estimator: FlatTorchBPR,
    *,
    positive_threshold: float,
    cached: Callable[[tuple[object, ...], Callable[[], sp.csr_matrix]], sp.csr_matrix] | None = None,
) -> dict[str, sp.csr_matrix]:
    """The torch trainer's negative sources for the ratios above 0, from ``part`` (the data being fitted,
    never a held-out part) and its training ``matrix`` (the positives), ``estimator.source_size`` items a
    user each:

    - ``hard``: :func:`core.split.hard_negatives` (the user's low ratings, unseen popular items), as the
      kernel's hard_ratio uses;
    - ``contextual``: :func:`core.bpr.strategy.contextual_negatives` over sentence embeddings of the item
      titles (:func:`core.text.item_text_embeddings`, cached on disk under :func:`text_cache_dir`); data
      without titles (Amazon reviews) is a :class:`ConfigError`;
    - ``sentiment``: :func:`core.bpr.strategy.sentiment_negatives` of the items' mean rating sentiment
      (:func:`core.bpr.strategy.item_sentiment` over every rating of ``part``, low ones included): the most
      negatively reviewed items the user did not like; play counts (no ratings) are a :class:`ConfigError`;
    - ``popular``: :func:`core.bpr.strategy.popular_negatives` by the items' interaction counts in ``part``.

    ``cached(key, make)`` (:func:`core.fit.fit_model` passes :meth:`core.prepare.Prepared.on_train`, the key
    extended by what the matrix was built with) keeps what a search would otherwise build again for every
    trial.
    """

    def keep(key: tuple[object, ...], make: Callable[[], sp.csr_matrix]) -> sp.csr_matrix:
        return make() if cached is None else cached(key, make)

    k, ratios = estimator.source_size, estimator.ratios()
    out: dict[str, sp.csr_matrix] = {}
    if ratios["hard"] > 0:
        out["hard"] = keep(("hard",), lambda: hard_negatives(part, positive_threshold=positive_threshold))
    if ratios["contextual"] > 0:
        if part.item_titles is None:
            raise ConfigError(
                f"contextual_ratio={ratios['contextual']} needs item titles to embed, but {part.source} has "
                "none (MovieLens, Last.fm and the synthetic data have them): set contextual_ratio=0"
            )

        def contextual() -> sp.csr_matrix:
            embeddings = item_text_embeddings(part, cache_dir=text_cache_dir())
            return strategy.contextual_negatives(matrix, embeddings, k)

        out["contextual"] = keep(("contextual", k), contextual)
    if ratios["sentiment"] > 0:
        if part.kind != "rating":
            raise ConfigError(
                f"sentiment_ratio={ratios['sentiment']} needs ratings to tell good reviews from bad, but "
                f"{part.source} holds play counts: set sentiment_ratio=0"
            )
        out["sentiment"] = keep(
            ("sentiment", k),
            lambda: strategy.sentiment_negatives(matrix, strategy.item_sentiment(part), k),
        )
    if ratios["popular"] > 0:
        counts = np.bincount(part.item_idx, minlength=part.n_items)
        out["popular"] = keep(
            ("popular", k), lambda: strategy.popular_negatives(matrix, k, popularity=counts)
        )
    return out
