"""Validation during training and the final test: the refit on train + validation, evaluated once on test
next to popularity, with paired bootstrap CIs and the score range.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.baselines import PopularityScorer
from core.blend import BlendChoice, PopularityBlend, blend, choose_weight
from core.callbacks import ValidationMonitor
from core.evaluate import Comparison, EvalResult, ScoreRange, compare, evaluate, evaluate_scorer, score_range
from core.fit import fit_model
from core.names import DEFAULT_KS, metric_k, metric_names
from core.prepare import Prepared


def validate(prepared: Prepared, fitted: Any, *, ks: Sequence[int] = DEFAULT_KS) -> EvalResult:
    """Validation metrics: train items excluded."""
    s = prepared.split
    return evaluate(fitted.user_factors_, fitted.item_factors_, s.valid_truth(), s.valid_exclude(), ks=ks)


def choose_blend(
    prepared: Prepared, fitted: Any, *, metric: str = "ndcg@10", users: np.ndarray | None = None
) -> BlendChoice:
    """The popularity weight (:mod:`core.blend`) a model fitted on train ranks validation best with, train's
    counts for popularity. ``users``: the validation users that may choose (default all)."""
    s = prepared.split
    u, v = fitted.user_factors_, fitted.item_factors_
    return choose_weight(u, v, s.valid_truth(), s.valid_exclude(), metric=metric, users=users)


def validation_monitor(
    prepared: Prepared,
    *,
    metric: str = "ndcg@10",
    every: int = 1,
    patience: int | None = None,
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
    restore_best: bool | None = None,
    last_step: int | None = None,
    keep_at: Collection[int] = (),
    users: np.ndarray | None = None,
) -> ValidationMonitor:
    """The per-iteration validation hook: early stopping here, pruning in ``search/``. With ``restore_best``
    (default: when ``patience`` is set) the model ends on its best step's factors, else on its last.
    ``users``: the validation users each step is evaluated on (a study's sample); default all of them."""
    s = prepared.split
    return ValidationMonitor(
        s.valid_truth(),
        s.valid_exclude(),
        metric=metric,
        ks=(metric_k(metric),),
        every=every,
        patience=patience,
        restore_best=patience is not None if restore_best is None else restore_best,
        on_evaluate=on_evaluate,
        last_step=last_step,
        keep_at=keep_at,
        users=users,
    )


@dataclass
class FinalResult:
    """The refit model's test numbers against popularity, with paired bootstrap CIs."""

    model: Any
    test: EvalResult
    popularity: EvalResult
    comparison: dict[str, Comparison]
    score_range: ScoreRange
    refit_seconds: float
    blend: PopularityBlend | None = None  # the popularity blend in the model's factors (weight 0: none)

    def metrics_json(self, valid: EvalResult | dict[str, float] | None) -> dict[str, object]:
        return {
            "valid": valid.to_dict() if isinstance(valid, EvalResult) else dict(valid or {}),
            "test": self.test.to_dict(),
            "baseline": self.popularity.to_dict(),
            "vs_popularity": {name: c.to_dict() for name, c in self.comparison.items()},
        }


def final_test(
    prepared: Prepared,
    model: str,
    params: dict[str, Any],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    show_progress: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    fit_kwargs: dict[str, Any] | None = None,
    popularity_weight: float = 0.0,
) -> FinalResult:
    """Refit on train + validation with ``params`` and evaluate ONCE on test (train and validation items
    excluded), next to popularity counted over the same history. ``popularity_weight``: the blend chosen on
    validation (:func:`choose_blend`), applied to the refit's factors with the refit's history counted; the
    model then carries the blended factors. ``show_progress``: the refit's bar and the evaluator's own rule
    for the test's (a terminal, many users); False shows none."""
    s = prepared.split
    t0 = time.perf_counter()
    history = s.train_valid()
    fitted = fit_model(
        prepared, model, params, part=history, show_progress=show_progress, fit_kwargs=fit_kwargs
    )
    refit_seconds = time.perf_counter() - t0
    truth, exclude = s.test_truth(), s.test_exclude()
    fitted.user_factors_, fitted.item_factors_, mixed = blend(
        fitted.user_factors_, fitted.item_factors_, exclude, popularity_weight
    )
    bars = None if show_progress else False  # asked for: the evaluator's own rule; not asked for: none
    test = evaluate(fitted.user_factors_, fitted.item_factors_, truth, exclude, ks=ks, show_progress=bars)
    popularity = evaluate_scorer(
        PopularityScorer.fit(exclude), truth, exclude, ks=ks, users=test.users, show_progress=bars
    )
    comparison = compare(test, popularity, metric_names(sorted(ks)), n_boot=n_boot, seed=seed)
    valid_users = np.flatnonzero(np.diff(s.valid_truth().indptr) > 0)
    sr = score_range(fitted.user_factors_, fitted.item_factors_, valid_users, exclude)
    return FinalResult(fitted, test, popularity, comparison, sr, refit_seconds, mixed)
