"""One trial: fit a configuration on train, report validation to Optuna every few steps (pruning), log the
trial to MLflow, and say how it ended.

The trial's value is its best evaluated step (the model is restored to it), and that one number is what
Optuna stores, what MLflow shows as ``valid_<metric>`` and what the study record reports. The per-step curve
is logged beside it as ``step_valid_<metric>``. Failures end the trial, never the study: a diverged fit or
an invalid configuration is recorded as such; any other error too, and :mod:`search.budget` retries it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError, ModelFitError
from core.train import Prepared, fit_model, validate, validation_monitor
from search.budget import FAILURE
from search.factories import suggest
from search.settings import StudySettings
from search.summary import steps_of
from search.tracking import StudyTracking
from spaces import Space


@dataclass(frozen=True)
class Outcome:
    """How a trial ended: Optuna's state name, the value (best step so far), and for failures why."""

    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    value: float | None
    failure: str | None = None
    error: BaseException | None = None


class Objective:
    """Runs trials of one study; ``__call__`` never raises but for Ctrl-C (after recording the trial)."""

    def __init__(
        self,
        settings: StudySettings,
        prepared: Prepared,
        space: Space,
        sampler: str,
        every: int,
        tracking: StudyTracking,
    ) -> None:
        self.settings = settings
        self.prepared = prepared
        self.space = space
        self.sampler = sampler
        self.every = every
        self.tracking = tracking

    def __call__(self, trial: Any) -> Outcome:
        import optuna

        s = self.settings
        params = {**self.space.fixed, **suggest(trial, self.space, self.sampler), "random_state": s.seed}
        steps: list[tuple[int, float]] = []
        last = steps_of(s.model, params)

        def on_evaluate(step: int, metrics: dict[str, float]) -> None:
            value = metrics[s.metric]
            steps.append((step, value))
            # the trial's value is its best evaluated step, so pruning judges the best so far too
            trial.report(max(v for _, v in steps), step)
            if step < last and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} with {s.metric}={value:.5f}")

        # every `every` steps and at the end; the model ends on its best evaluated step
        monitor = validation_monitor(
            self.prepared,
            metric=s.metric,
            every=self.every,
            on_evaluate=on_evaluate,
            restore_best=True,
            last_step=last,
        )
        run_id = self.tracking.start_trial(trial.number, params)
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("steps_total", last)
        trial.set_user_attr("params_full", {k: v for k, v in params.items() if k != "random_state"})
        t0 = time.perf_counter()
        try:
            fitted = fit_model(self.prepared, s.model, params, callback=monitor)
            valid = validate(self.prepared, fitted, ks=s.ks)
        except optuna.TrialPruned:
            best = max(v for _, v in steps)
            trial.set_user_attr("steps_computed", steps[-1][0])
            self.tracking.end_trial(
                run_id, trial.number, "PRUNED", steps, best, None, None, time.perf_counter() - t0
            )
            return Outcome("PRUNED", best)
        except (KeyboardInterrupt, Exception) as err:  # recorded, then classified by failure_kind
            failure = failure_kind(err)
            trial.set_user_attr(FAILURE, failure)
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:2000])
            trial.set_user_attr("steps_computed", steps[-1][0] if steps else 0)
            self.tracking.end_trial(
                run_id, trial.number, "FAIL", steps, None, None, None, time.perf_counter() - t0, err
            )
            if isinstance(err, KeyboardInterrupt):
                raise
            return Outcome("FAIL", None, failure, err)
        value = float(valid.metrics[s.metric])
        trial.set_user_attr("steps_computed", last)
        trial.set_user_attr("best_step", int(monitor.best_step))
        trial.set_user_attr("fit_seconds", round(time.perf_counter() - t0, 3))
        for name in {"ndcg@10", "recall@10", "ndcg@20", "recall@20", s.metric}:
            if name in valid.metrics:
                trial.set_user_attr(f"valid_{name}", valid.metrics[name])
        self.tracking.end_trial(
            run_id,
            trial.number,
            "COMPLETE",
            steps,
            value,
            valid,
            fitted,
            time.perf_counter() - t0,
            params=params,
        )
        return Outcome("COMPLETE", value)


def failure_kind(err: BaseException) -> str:
    """``diverged`` (NaN factors), ``invalid`` (a configuration the estimator refuses), ``interrupted``
    (Ctrl-C), or ``error`` (anything else, retried up to the limit)."""
    if isinstance(err, ModelFitError):
        return "diverged"
    if isinstance(err, ConfigError):
        return "invalid"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    return "error"
