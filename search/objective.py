"""One trial: fit a configuration on train, report validation to Optuna every few steps (pruning), log the
trial to MLflow, and say how it ended.

The trial's value is its best evaluated step (the model is restored to it), validated on all validation users,
and that one number is what Optuna stores, what MLflow shows as ``valid_<metric>`` and what the study record
reports. The per-step curve, which pruning reads and the best step is chosen by, is evaluated on the study's
fixed sample of validation users (:mod:`search.validation_sample`: all of them on all but large logs) and
logged beside it as ``step_valid_<metric>``; a trial stops after the study's patience of evaluations
without a better value (:mod:`search.pruning`), ending on its best step. Failures end the trial, never the
study: a diverged fit or an invalid configuration is recorded as such; any other error too, and
:mod:`search.budget` retries it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from core.errors import ConfigError, ModelFitError, StopTraining
from core.final import choose_blend, validate, validation_monitor
from core.fit import fit_model, trained_to
from core.names import DEFAULT_KS, metric_names
from core.prepare import Prepared
from search.budget import FAILURE
from search.factories import suggest
from search.pruning import FinishedTrials, should_prune
from search.selection import BLEND_ATTR, PAIRED_ATTR, SE_ATTR, encode_values, paired_sample, standard_error
from search.settings import StudySettings
from search.step_budget import budgeted, liked_interactions
from search.summary import steps_of
from search.tracking import StudyTracking
from search.validation_sample import digest, sample_users, validation_users
from spaces import Space


@dataclass(frozen=True)
class Outcome:
    """How a trial ended: Optuna's state name, the value (best step so far), and for failures why."""

    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    value: float | None
    failure: str | None = None
    error: BaseException | None = None


@dataclass
class Member:
    """One trial of a training: its configuration and the step it ends at."""

    trial: Any
    params: dict[str, Any]
    last: int
    run_id: str = ""
    done: bool = False


class Objective:
    """Runs trials of one study. One call trains once for a group of trials that differ only in their number
    of steps (a grid point and its step siblings, :func:`search.budget.claim_siblings`; usually a group of
    one): each trial is reported, pruned, logged and told on its own, exactly as if trained alone, because a
    fit of N steps passes through every shorter fit of the same configuration. A call never raises but for
    Ctrl-C (after recording the trials)."""

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
        self.curve_users = sample_users(prepared, settings.validation_sample)  # None: all validation users
        shown = validation_users(prepared) if self.curve_users is None else self.curve_users
        self.curve = (len(shown), digest(shown))  # how many users the curve is evaluated on, and which
        self.liked = liked_interactions(prepared) if settings.model == "bpr" else 0  # BPR's step budget

    def __call__(self, trials: Sequence[Any], tell: Callable[[Any, Outcome], None]) -> None:
        """Train once to the longest trial's step count; ``tell(trial, outcome)`` as each one ends."""

        s = self.settings
        members = self._members(trials)
        longest = members[-1]
        steps: list[tuple[int, float]] = []
        study = getattr(longest.trial, "study", None)
        finished = FinishedTrials(study) if study is not None else None
        t0 = time.perf_counter()

        def end(m: Member, outcome: Outcome, valid: Any = None, fitted: Any = None) -> None:
            upto = [(step, v) for step, v in steps if step <= m.last]
            m.trial.set_user_attr("steps_computed", upto[-1][0] if upto else 0)
            self.tracking.end_trial(
                m.run_id,
                m.trial.number,
                outcome.state,
                upto,
                outcome.value,
                valid,
                fitted,
                time.perf_counter() - t0,
                outcome.error,
                params=m.params,
            )
            m.done = True
            tell(m.trial, outcome)

        def on_evaluate(step: int, metrics: dict[str, float]) -> None:
            steps.append((step, metrics[s.metric]))
            best = max(v for _, v in steps)  # the value is the best step, so pruning judges the best so far
            for m in members:
                if m.done or step > m.last:
                    continue
                m.trial.report(best, step)
                if step < m.last and should_prune(m.trial, finished):
                    end(m, Outcome("PRUNED", best))
            live = [m.last for m in members if not m.done]
            if not live:
                raise optuna.TrialPruned(f"pruned at step {step} with {s.metric}={steps[-1][1]:.5f}")
            if step >= max(live) and step < longest.last:  # the longest was pruned; the rest have ended
                raise StopTraining(f"every remaining trial of the group ends by step {step}")

        # every `every` steps and at each trial's last step; each trial's model is its best evaluated step
        monitor = validation_monitor(
            self.prepared,
            metric=s.metric,
            every=self.every,
            on_evaluate=on_evaluate,
            restore_best=True,
            last_step=longest.last,
            keep_at=[m.last for m in members],
            users=self.curve_users,
            patience=s.patience or None,  # the study's (search.pruning): stop past a peak
        )
        self._start_runs(members)
        try:
            threads = {"num_threads": s.trial_threads}  # how it runs, not what it is: not a parameter
            fitted = fit_model(self.prepared, s.model, {**longest.params, **threads}, callback=monitor)
        except optuna.TrialPruned:
            return  # every trial was told as it ended
        except (KeyboardInterrupt, Exception) as err:  # recorded, then classified by failure_kind
            failure = failure_kind(err)
            for m in members:
                if not m.done:
                    m.trial.set_user_attr(FAILURE, failure)
                    m.trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:2000])
                    end(m, Outcome("FAIL", None, failure, err))
            if isinstance(err, KeyboardInterrupt):
                raise
            return
        for m in members:
            if m.done:
                continue
            snapshot = monitor.snapshots.get(m.last)  # none past a stop on the curve: the fit is its best
            alone = trained_to(fitted, snapshot) if snapshot is not None and m is not longest else fitted
            valid = self._validate(m, alone, t0)
            end(m, Outcome("COMPLETE", float(valid.metrics[s.metric])), valid, alone)

    def _members(self, trials: Sequence[Any]) -> list[Member]:
        """The group's configurations, shortest first (the last one is the training's length)."""
        s = self.settings
        members = []
        for trial in trials:
            params = {**self.space.fixed, **suggest(trial, self.space, self.sampler), "random_state": s.seed}
            params = budgeted(s.model, params, self.liked)  # large logs: search.step_budget
            members.append(Member(trial, params, steps_of(s.model, params)))
        members.sort(key=lambda m: m.last)
        return members

    def _start_runs(self, members: list[Member]) -> None:
        """Each trial's MLflow run, and the attributes that say what it trains."""
        for m in members:
            m.run_id = self.tracking.start_trial(m.trial.number, m.params)
            m.trial.set_user_attr("mlflow_run_id", m.run_id)
            m.trial.set_user_attr("steps_total", m.last)
            m.trial.set_user_attr("curve_users", self.curve[0])  # the users its curve is evaluated on
            m.trial.set_user_attr("curve_sample", self.curve[1])
            m.trial.set_user_attr("params_full", {k: v for k, v in m.params.items() if k != "random_state"})
            if len(members) > 1:
                m.trial.set_user_attr("trained_with", [o.trial.number for o in members if o is not m])

    def _validate(self, m: Member, alone: Any, t0: float) -> Any:
        """A finished trial's model on validation, with its metrics and standard error as trial attributes."""
        s = self.settings
        valid = validate(self.prepared, alone, ks=s.ks)
        m.trial.set_user_attr("best_step", int(alone.best_epoch_ or m.last))
        m.trial.set_user_attr("fit_seconds", round(time.perf_counter() - t0, 3))
        for name in {*metric_names(DEFAULT_KS, ("ndcg", "recall")), s.metric}:
            if name in valid.metrics:
                m.trial.set_user_attr(f"valid_{name}", valid.metrics[name])
        se = standard_error(valid.per_user[s.metric]) if s.metric in valid.per_user else None
        if se is not None:  # for the one-standard-error rule (search.selection): its own, and paired values
            m.trial.set_user_attr(SE_ATTR, se)
            values = valid.per_user[s.metric]
            paired = encode_values(values[paired_sample(len(values))], len(values))
            m.trial.set_user_attr(PAIRED_ATTR, paired)
        if s.popularity_blend:  # the weight its refit is served with, chosen on the curve's users
            choice = choose_blend(self.prepared, alone, metric=s.metric, users=self.curve_users)
            m.trial.set_user_attr(BLEND_ATTR, choice.weight)
            m.trial.set_user_attr("popularity_blend_gain", round(choice.gain(), 6))
        return valid


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
