"""What a study prints and records at the end: one line per trial, the summary dict, the summary table."""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState

from core.blend import describe
from core.names import DEFAULT_KS, metric_names
from core.params import steps_param
from core.prepare import Prepared
from search.boundaries import edge_hits
from search.budget import Ledger, params_of, point_of
from search.record import BestTrial, GivenUp, PhaseTimes, SegmentCounts, SelectionRecord, StudyRecord
from search.selection import BLEND_ATTR, PAIRED_ATTR, SE_ATTR, select_trial
from search.settings import StudySettings
from spaces import Space


def steps_of(model: str, params: dict[str, Any]) -> int:
    return int(params.get(steps_param(model), 15 if model == "als" else 50))


def trial_line(trial: Any, metric: str) -> str:
    """One line per finished trial: number, params, value, pruned or not, seconds, and where a trial stopped
    on its own curve (the study's patience, :mod:`search.pruning`)."""

    seconds = (
        (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
    )
    params = " ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
    state = {TrialState.COMPLETE: "done", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED"}.get(
        trial.state, trial.state.name
    )
    value = "-" if trial.value is None else f"{trial.value:.5f}"
    line = f"trial {trial.number:4d}  {state:<6}  {metric}={value}  {seconds:6.2f}s  {params}"
    a = trial.user_attrs
    computed, total = a.get("steps_computed"), a.get("steps_total")
    if trial.state == TrialState.COMPLETE and computed and total and computed < total:
        line += f"  (stopped past its peak: step {computed} of {total}, best {a.get('best_step')})"
    return line


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summarize(
    settings: StudySettings,
    prepared: Prepared,
    study: Any,
    wall: float,
    status: str,
    *,
    sampler: str,
    tracking_uri: str,
    parent_run_id: str,
    space: Space | None = None,
) -> StudyRecord:
    """Counts, the best trial, the points given up and the compute actually spent (steps trained, a shared
    training counted once) against what training every trial alone to its end would have cost. With the
    ``space``, also whether the best trial sits on one of its edges."""

    trials = study.get_trials(deepcopy=False)
    count = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    trainings: dict[frozenset[int], int] = {}  # step siblings share one training: count its steps once
    for t in finished:
        group = frozenset([t.number, *t.user_attrs.get("trained_with", [])])
        trainings[group] = max(trainings.get(group, 0), int(t.user_attrs.get("steps_computed", 0)))
    computed = sum(trainings.values())
    full = sum(int(t.user_attrs.get("steps_total", steps_of(settings.model, t.params))) for t in finished)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    selection = select_trial(complete, settings.select)
    best = selection.trial if selection is not None else None
    given_up = [
        GivenUp(
            params=params_of(next(t for t in trials if point_of(t) == point)),
            reason=reason,
            trials=[t.number for t in trials if point_of(t) == point],
        )
        for point, reason in Ledger.of(trials, settings.max_attempts).given_up.items()
    ]
    record = StudyRecord(
        study_name=study.study_name,
        model=settings.model,
        status=status,
        data_source=prepared.data.source,
        synthetic=prepared.synthetic,
        data_version_hash=prepared.data_version_hash,
        metric=settings.metric,
        sampler=sampler,
        pruner=settings.pruner,
        tracking_uri=tracking_uri,
        parent_run_id=parent_run_id,
        trials={k: v for k, v in count.items() if v},
        wall_seconds=round(wall, 2),
        steps_computed=computed,
        steps_unpruned=full,
        given_up=given_up,
        data_description=prepared.data.summary(),
        split_description=prepared.split.describe(),
        segmentation=None if prepared.segmentation is None else SegmentCounts.of(prepared.segmentation),
    )
    if best is not None:
        record.best_trial = best_trial_of(best)
        record.selection = (
            None if selection is None else SelectionRecord(**selection.to_dict(settings.metric))
        )
        if space is not None:
            # where the search peaked, and where the rule stepped back to (it favours strong regularization)
            assert selection is not None
            other = None if selection.trial.number == selection.best.number else selection.trial.params
            record.boundary_hits = edge_hits(space, sampler, selection.best.params, other)
    return record


def best_trial_of(trial: Any) -> BestTrial:
    """What the record keeps of the chosen (frozen) trial."""
    return BestTrial(
        number=trial.number,
        params=dict(trial.params),
        params_full=dict(trial.user_attrs.get("params_full", trial.params)),
        value=float(trial.value),
        best_step=trial.user_attrs.get("best_step"),
        popularity_weight=float(trial.user_attrs.get(BLEND_ATTR, 0.0)),
        valid={
            k.removeprefix("valid_"): v
            for k, v in trial.user_attrs.items()
            if k.startswith("valid_") and k not in (SE_ATTR, PAIRED_ATTR)
        },
        mlflow_run_id=trial.user_attrs.get("mlflow_run_id"),
    )


def format_summary(record: StudyRecord) -> str:
    """The summary a study prints at its end; it ends with the phase table when the record has one."""
    lines = _summary_lines(record)
    if record.phases is not None:
        lines += phase_table(record.phases, record.artifact_bytes)
    return "\n".join(lines)


def phase_table(phases: PhaseTimes, artifact_bytes: int | None = None) -> list[str]:
    """Where the wall time went: one row a phase in the order they ran, its share, and the total they sum to;
    the trials row adds the trials' own seconds (summed over workers) and their mean and longest. Below the
    total, the bytes of artifacts the study wrote (when its store is a local folder)."""
    total = phases.total
    lines = ["where the time went (wall seconds):"]
    for name, seconds in phases.seconds.items():
        share = f"{100 * seconds / total:5.1f}%" if total > 0 else ""
        row = f"  {name:<13}{seconds:>10.2f}  {share}"
        own = list(phases.trial_seconds.values())
        if name == "trials" and own:
            row += (
                f"   {len(own)} trials, {sum(own):.2f} s their own time; "
                f"per trial mean {sum(own) / len(own):.2f} s, longest {max(own):.2f} s"
            )
        lines.append(row.rstrip())
    lines.append(f"  {'total':<13}{total:>10.2f}")
    if artifact_bytes is not None:
        lines.append(f"  artifacts written: {artifact_bytes / 1e6:.1f} MB (--keep-factors)")
    return lines


def _summary_lines(record: StudyRecord) -> list[str]:
    r = record
    lines = ["", f"study {r.study_name}  ({r.status}, {r.wall_seconds:.1f}s)"]
    if r.synthetic:
        lines.append("data: SYNTHETIC demo dataset")
    t = r.trials
    lines.append(
        f"trials: {t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('fail', 0)} failed; "
        f"steps computed {r.steps_computed} of {r.steps_unpruned} unpruned"
    )
    for g in r.given_up:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in g.params.items())
        lines.append(f"given up: {params}  ({g.reason}; trials {', '.join(map(str, g.trials))})")
    best = r.best_trial
    if best is None:
        lines.append("no completed trial yet")
        return lines
    at = f" (best at step {best.best_step})" if best.best_step else ""
    note = None if r.selection is None else r.selection.note
    label = "selected trial" if note else "best trial"
    lines.append(f"{label} {best.number}: validation {r.metric} {best.value:.5f}{at}")
    if note:
        lines.append(f"  {note}")
    lines.append("  params: " + ", ".join(f"{k}={fmt(v)}" for k, v in best.params.items()))
    if best.popularity_weight:
        lines.append(
            f"  served with the popularity blend chosen on validation: {describe(best.popularity_weight)}"
        )
    lines += [f"  warning: {hit.message()}" for hit in r.boundary_hits]
    if r.test is not None and r.baselines is not None:
        lines.append("test (best config refit on train+valid), 95% paired bootstrap CI over users:")
        lines.append(
            f"  {'metric':<11}{'model':>9}{'popular':>9}{'EASE':>9}   {'vs popularity':<24}{'vs EASE':<24}"
        )
        base = r.baselines
        for name in [m for m in metric_names(DEFAULT_KS, ("ndcg", "recall")) if m in r.test]:
            pop = base.popularity.test[name]
            ease = base.ease.test[name] if base.ease is not None else float("nan")
            cells = []
            for ref in ("popularity", "ease"):
                c = r.vs.get(ref, {}).get(name)
                p = None if c is None else c.improvement_pct
                cells.append("-" if p is None else f"{p.value:+.1f}% [{p.low:+.1f},{p.high:+.1f}]")
            lines.append(
                f"  {name:<11}{r.test[name]:>9.4f}{pop:>9.4f}{ease:>9.4f}   {cells[0]:<24}{cells[1]:<24}"
            )
        lines.append(f"  {base.note}")
    if r.artifact_bytes is not None:
        lines.append(f"artifacts: {r.artifact_bytes / 1e6:.1f} MB written by this study (--keep-factors)")
    if r.registry is not None:
        reg = r.registry
        lines.append(f"registry: {reg.name} version {reg.version} -> {reg.decision}  ({reg.reason})")
    return lines
