"""Fitting a configuration on a split: the matrix a model learns from, the fit itself, and a fitted model cut
back to an earlier step (one training serves several step counts).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from core.bpr.advanced import FlatTorchBPR, negative_sources
from core.bpr.model import BPR
from core.callbacks import Callback, Snapshot, TrainingHistory
from core.confidence import ConfidenceMode, confidence
from core.errors import ConfigError
from core.interactions import Interactions
from core.model import Model
from core.params import (
    ALS_PIPELINE_PARAMS,
    PIPELINE_CHOICES,
    Positives,
    make_model,
    split_params,
)
from core.prepare import Prepared
from core.split import hard_negatives

M = TypeVar("M", bound=Model)


def training_matrix(
    part: Interactions,
    model: str,
    *,
    confidence_mode: ConfidenceMode | None,
    positive_threshold: float,
    positives: Positives | None = None,
) -> sp.csr_matrix:
    """What the model learns from, by ``positives`` (:data:`POSITIVES`; default: ALS all, BPR liked). ALS: the
    confidence values of those interactions; BPR: ones."""
    positives = positives or ("all" if model == "als" else "liked")
    kept = part if positives == "all" else part.subset(part.positive_mask(positive_threshold))
    if model == "als":
        return kept.to_csr(confidence(kept, confidence_mode))
    m = kept.to_csr()
    m.data[:] = 1
    return m


def fit_model(
    prepared: Prepared,
    model: str,
    params: dict[str, Any],
    *,
    part: Interactions | None = None,
    callback: Callback | list[Callback] | None = None,
    show_progress: bool = False,
    fit_kwargs: dict[str, Any] | None = None,
) -> Model:
    """Fit ``model`` with ``params`` on ``part`` (default: train). BPR's ``trainer=torch`` gets its negative
    sources built from ``part`` (:func:`core.bpr.advanced.negative_sources`; on train, once per split)."""
    part = prepared.split.train if part is None else part
    _, pipeline_params = split_params(params)
    for name, value in pipeline_params.items():
        if model == "als" and name not in ALS_PIPELINE_PARAMS:
            raise ConfigError(f"{name} applies to BPR only, but got model=als")
        if value is not None and value not in PIPELINE_CHOICES[name]:  # None: the model's default
            raise ConfigError(f"{name} must be one of {PIPELINE_CHOICES[name]}, but got {name}={value!r}.")
    estimator: Model = make_model(model, {**params, "show_progress": show_progress})
    mode, positives = pipeline_params.get("confidence"), pipeline_params.get("positives")

    def matrix_of() -> sp.csr_matrix:
        threshold = prepared.positive_threshold
        return training_matrix(
            part, model, confidence_mode=mode, positive_threshold=threshold, positives=positives
        )

    def hard_of() -> sp.csr_matrix:
        return hard_negatives(part, positive_threshold=prepared.positive_threshold)

    on_train = part is prepared.split.train
    matrix = prepared.on_train(("matrix", model, mode, positives), matrix_of) if on_train else matrix_of()
    kwargs = dict(fit_kwargs or {})
    if isinstance(estimator, FlatTorchBPR):
        if kwargs.get("item_factors_init") is not None:
            raise ConfigError("item factors from text (--init-items text) need trainer=kernel")
        kwargs.pop("item_factors_init", None)
        if "sources" not in kwargs:
            kwargs["sources"] = negative_sources(
                part,
                matrix,
                estimator,
                positive_threshold=prepared.positive_threshold,
                cached=(lambda key, make: prepared.on_train((*key, mode, positives), make))
                if on_train
                else None,
            )
    elif isinstance(estimator, BPR) and "hard_negatives" not in kwargs and estimator.hard_ratio > 0:
        kwargs["hard_negatives"] = prepared.on_train(("hard",), hard_of) if on_train else hard_of()
    fitted = estimator.fit(matrix, callback=callback, **kwargs)
    fitted.user_factors_ = average_user_for_empty_rows(fitted.user_factors_, matrix)
    return fitted


def average_user_for_empty_rows(user_factors: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """Users with nothing to learn from (no liked item in BPR's matrix, say: only 1-3 star ratings) get the
    average user's factors, which rank by what the model learned of popularity; left alone they would keep
    BPR's random initial factors (a random ranking) or ALS's zeros (all ties)."""
    empty = np.diff(matrix.indptr) == 0
    if not empty.any() or empty.all():
        return user_factors
    out = np.array(user_factors, copy=True)
    out[empty] = user_factors[~empty].mean(axis=0)
    return out


def trained_to(fitted: M, snapshot: Snapshot) -> M:
    """``fitted`` as it would have ended had it been trained for ``snapshot.step`` steps only.

    Exact because training is a prefix: a fit of N steps runs the same first steps as a shorter fit of the
    same configuration and seed (ALS is deterministic; BPR's steps do not depend on the total either). The
    copy (:meth:`~core.model.Model.with_steps`: the torch trainer's keeps its learning-rate curve's length)
    carries the snapshot's factors and the history up to that step, so its artifacts are those of a model
    trained alone; run metadata a model does not measure stays None."""
    step = snapshot.step
    out = fitted.with_steps(step)
    out.user_factors_, out.item_factors_ = snapshot.user_factors, snapshot.item_factors
    out.best_epoch_ = snapshot.best_step
    history = fitted.history_
    kept = [i for i, s in enumerate(history.steps) if s <= step]
    val = [i for i, s in enumerate(history.val_steps) if s <= step]
    out.history_ = TrainingHistory(
        steps=[history.steps[i] for i in kept],
        losses=[history.losses[i] for i in kept],
        learning_rates=[history.learning_rates[i] for i in kept],
        durations=[history.durations[i] for i in kept],
        val_steps=[history.val_steps[i] for i in val],
        val_metrics={name: [values[i] for i in val] for name, values in history.val_metrics.items()},
    )
    if fitted.fit_seconds_ is not None:
        out.fit_seconds_ = float(sum(out.history_.durations))
    if fitted.n_iterations_ is not None:
        out.n_iterations_ = step
    out.stopped_early_ = False if isinstance(fitted.stopped_early_, bool) else None
    return out
