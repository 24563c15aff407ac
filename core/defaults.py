"""Default hyperparameters from the data's shape: what ``python -m core.train`` uses without ``--preset``;
and :data:`BPR_DEFAULTS`, the one declared BPR default that the constructors and the data rule share.

One fixed configuration cannot serve MovieLens (68 interactions per user, density 4%) and a shop log where
most users bought twice (density 0.2%): the seed's ALS default lost to popularity on the second kind and its
BPR default on the first. So the defaults are a pure function of a few statistics of the training data
(:class:`DataStats`), simple enough to state in a line each:

ALS (Hu et al. weights, ``C = 1 + alpha * confidence``)
    - ``alpha = 39 / mean confidence``: an average observed cell weighs 40 missing ones (a small weight of
      the unobserved cells, as in Rendle et al. 2022's tuned iALS), whatever the confidence scale.
    - ``regularization = 40 * density ** -0.25 * clip(interactions per item / 30, 1, 3)``: strong, on the
      scale of the observed weight, and stronger on sparser matrices, whose few co-occurrences per pair are
      noisier (160 at density 1/256). implicit puts one weight on every row, while an item row's data term
      grows with the item's interactions; weighted-lambda ALS (Zhou et al. 2008; Rendle et al. 2022's
      frequency-scaled regularization) scales each row's weight with its count. One global weight can only
      follow the mean: where items average more than 30 training interactions it grows with them, up to 3x.
      On the ``bench/shapes.py`` design shapes with 35-300 per item this lifted default ALS from 0.97x to
      1.66x popularity (s10), 1.72x to 2.66x (s16), 5.89x to 7.30x (s24), 4.08x to 4.90x (s13). The 30 and
      the 3 were set on the design set's scan (3x is the largest multiple it measured); on the check set 12
      of the 13 shapes it touched gained, and s26 (taste rank 51 over 356 items) fell from 1.84x to 1.06x.
    - ``factors = 128``, ``iterations = 15``: many factors cost little once regularization is strong.

BPR (on the liked interactions, uniform negatives)
    - ``regularization = min(0.03, 1 / liked per user)``: per-sample L2, applied at every update of a row, so
      a user row with ``h`` liked interactions is shrunk ``samples_per_epoch * h`` times an epoch, by
      ``exp(-learning_rate * regularization * samples_per_epoch * h)`` in all. The rule holds that exponent
      at or below 0.5 (a shrink to 0.61 an epoch from the L2 alone). The previous rule,
      ``min(0.1, 2.5e-4 / density)``, put every sparse log at or near 0.1 whatever its histories: exponent
      1.7 on Last.fm (34.5 liked per user), 0.9 and 1.3 on the ``bench/shapes.py`` design shapes s15 and
      s29, which lost 26%, 53% and 24% of test NDCG@10 to the best value of a scan over 0.001-0.1. The cap
      0.03 is where most design shapes peaked: 0.1 tested worse than 0.03 on 13 of the 20.
    - ``epochs = clip(4e6 / liked interactions, 20, 100)``: about 20 million sampled triplets in all (5 per
      liked interaction per epoch), so small logs train long enough and large ones stay fast.
    - ``item_bias = True``, ``factors = 256``, ``learning_rate = 0.1`` decaying by 0.8 every 10 epochs: a
      learned item bias carries popularity, so the factors are free for taste ("Revisiting BPR", Milogradskii
      et al. 2024); without it BPR stayed at 0.97-1.12x popularity on the large, sparse catalogues.
    - ``hard_ratio = 0``: hard negatives lowered test NDCG on every dataset measured.
    - the rest (the three above, ``factors``, ``learning_rate``, ``lr_decay``, ``item_bias``) is
      :data:`BPR_DEFAULTS`, which the estimators' constructors default to as well.

The constants were measured on MovieLens-100K, Last.fm, Amazon Beauty, the embedded synthetic log, planted
low-rank logs of several shapes (``README.md``, "Defaults that adapt to the data") and the design set of
``bench/shapes.py`` (``README.md``, "Defaults on shapes nobody tuned on").

What no statistic here decides, whether a log has taste to learn beyond popularity at all, its validation
split does: both models are served with a popularity blend whose weight validation picks (:mod:`core.blend`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.confidence import ConfidenceMode, confidence
from core.errors import ConfigError
from core.interactions import POSITIVE_THRESHOLD, Interactions

#: ALS: the average observed cell weighs this many missing ones.
ALS_OBSERVED_WEIGHT = 40.0
#: ALS: above this many training interactions per item, the regularization grows with them ...
ALS_ITEM_COUNT_KNEE = 30.0
#: ... up to this multiple.
ALS_MAX_ITEM_COUNT_SCALE = 3.0
#: BPR: sampled triplets per liked interaction and epoch (the estimator's ``samples_per_epoch``).
BPR_SAMPLES_PER_EPOCH = 5
#: BPR: the L2 shrink exponent of a mean user row per epoch, ``lr * reg * samples_per_epoch * h``, at most.
BPR_SHRINK_PER_EPOCH = 0.5
#: BPR: the per-sample L2 weight of short histories (the cap of the shrink rule).
BPR_MAX_REGULARIZATION = 0.03


@dataclass(frozen=True)
class BPRDefaults:
    """The BPR settings a fit takes when not told otherwise, declared once: :class:`core.bpr.BPR`'s
    constructor defaults; the shared ones (the model's form, sampling and loss) also those of the torch
    trainer (:class:`core.bpr.torch_trainer.TorchBPR`, :class:`core.bpr.advanced.FlatTorchBPR`); and
    :func:`bpr_defaults` takes them, setting only the data-relative ``regularization`` and ``epochs``.

    ``regularization`` and ``epochs`` here are what a constructor falls back to without data; the learning
    rate, its decay and ``n_negatives`` are the kernel's SGD only (the torch trainer has its optimizer's).
    """

    factors: int = 256
    epochs: int = 50
    samples_per_epoch: int = BPR_SAMPLES_PER_EPOCH
    item_bias: bool = True
    init_std: float = 0.01
    hard_ratio: float = 0.0
    n_candidates: int = 1
    loss: str = "bpr"
    hard_bpr_a: float = 1.0
    hard_bpr_b: float = -1.0
    hard_bpr_c: float = 0.8
    # the kernel's SGD
    learning_rate: float = 0.1
    lr_decay: float = 0.8
    lr_decay_every: int = 10
    regularization: float = 1e-4
    n_negatives: int = 1


#: The one BPR default (see :class:`BPRDefaults`).
BPR_DEFAULTS = BPRDefaults()
#: The settings :func:`bpr_defaults` gives, in the order it gives (and ``core.train`` prints) them.
BPR_DATA_DEFAULT_PARAMS: tuple[str, ...] = (
    "factors",
    "learning_rate",
    "lr_decay",
    "regularization",
    "epochs",
    "samples_per_epoch",
    "hard_ratio",
    "item_bias",
)


@dataclass(frozen=True)
class DataStats:
    """What the default rules read from the training data."""

    n_users: int
    n_items: int
    interactions: int
    liked: int  # interactions BPR learns from (rating >= the positive threshold; every play of count data)
    mean_confidence: float  # ALS confidence before alpha, averaged over all interactions

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.interactions) < 1:
            raise ConfigError(f"need positive sizes, but got {self}.")
        if not 0 <= self.liked <= self.interactions:
            raise ConfigError(f"liked must be in [0, interactions], but got liked={self.liked}.")
        if not (math.isfinite(self.mean_confidence) and self.mean_confidence > 0):
            raise ConfigError(f"mean_confidence must be > 0, but got mean_confidence={self.mean_confidence}.")

    @property
    def density(self) -> float:
        return self.interactions / (self.n_users * self.n_items)


def data_stats(
    part: Interactions,
    *,
    confidence_mode: ConfidenceMode | None = None,
    positive_threshold: float = POSITIVE_THRESHOLD,
) -> DataStats:
    """The statistics of ``part`` (the training data) that the default rules use."""
    conf = confidence(part, confidence_mode)
    return DataStats(
        n_users=part.n_users,
        n_items=part.n_items,
        interactions=len(part),
        liked=int(part.positive_mask(positive_threshold).sum()),
        mean_confidence=float(np.mean(conf)) if len(conf) else 1.0,
    )


def sig3(x: float) -> float:
    """Three significant digits: what a person would write down, and what the run folder then shows."""
    return float(f"{x:.3g}")


def als_defaults(stats: DataStats) -> dict[str, Any]:
    """ALS settings for data of this shape (rule in the module docstring)."""
    return {
        "factors": 128,
        "regularization": sig3(ALS_OBSERVED_WEIGHT * stats.density**-0.25 * als_item_count_scale(stats)),
        "alpha": sig3((ALS_OBSERVED_WEIGHT - 1.0) / stats.mean_confidence),
        "iterations": 15,
    }


def als_item_count_scale(stats: DataStats) -> float:
    """The factor on ALS's density rule: interactions per item over :data:`ALS_ITEM_COUNT_KNEE`, within 1 and
    :data:`ALS_MAX_ITEM_COUNT_SCALE` (rule in the module docstring)."""
    per_item = stats.interactions / stats.n_items
    return min(ALS_MAX_ITEM_COUNT_SCALE, max(1.0, per_item / ALS_ITEM_COUNT_KNEE))


def bpr_defaults(stats: DataStats) -> dict[str, Any]:
    """BPR settings for data of this shape (rule in the module docstring): :data:`BPR_DEFAULTS` with the
    data-relative ``regularization`` and ``epochs``."""
    triplets = 20_000_000
    epochs = round(triplets / (BPR_SAMPLES_PER_EPOCH * max(1, stats.liked)))
    from_data = {
        "regularization": bpr_regularization(stats),
        "epochs": int(min(100, max(20, epochs))),
    }
    return {name: from_data.get(name, getattr(BPR_DEFAULTS, name)) for name in BPR_DATA_DEFAULT_PARAMS}


def bpr_regularization(stats: DataStats) -> float:
    """BPR's per-sample L2 weight: the one that shrinks a user row with the mean liked history by
    ``exp(-BPR_SHRINK_PER_EPOCH)`` an epoch at the default learning rate, capped at
    :data:`BPR_MAX_REGULARIZATION` (rule in the module docstring). Nothing liked: the cap."""
    history = stats.liked / stats.n_users
    updates = BPR_DEFAULTS.learning_rate * BPR_SAMPLES_PER_EPOCH * history
    if updates <= 0:
        return BPR_MAX_REGULARIZATION
    return sig3(min(BPR_MAX_REGULARIZATION, BPR_SHRINK_PER_EPOCH / updates))
