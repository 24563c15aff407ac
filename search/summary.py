"""What a study prints and records at the end: one line per trial, the summary dict, the summary table."""

from __future__ import annotations

import json
from typing import Any

from core.artifacts import json_default
from core.train import Prepared, steps_param


def steps_of(model: str, params: dict[str, Any]) -> int:
    return int(params.get(steps_param(model), 15 if model == "als" else 50))


def trial_line(trial: Any, metric: str) -> str:
    """One line per finished trial: number, params, value, pruned or not, seconds."""
    from optuna.trial import TrialState

    seconds = (
        (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
    )
    params = " ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
    state = {TrialState.COMPLETE: "done", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED"}.get(
        trial.state, trial.state.name
    )
    value = "-" if trial.value is None else f"{trial.value:.5f}"
    return f"trial {trial.number:4d}  {state:<6}  {metric}={value}  {seconds:6.2f}s  {params}"


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, default=json_default) + "\n").encode()


def summarize(settings: Any, prepared: Prepared, study: Any, wall: float, status: str) -> dict[str, Any]:
    """Counts, the best trial and the compute actually spent (for the pruning claim)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    computed = sum(int(t.user_attrs.get("steps_computed", 0)) for t in finished)
    full = sum(int(t.user_attrs.get("steps_total", steps_of(settings.model, t.params))) for t in finished)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    out: dict[str, Any] = {
        "study_name": study.study_name,
        "model": settings.model,
        "status": status,
        "data_source": prepared.data.source,
        "synthetic": prepared.synthetic,
        "data_version_hash": prepared.data_version_hash,
        "metric": settings.metric,
        "trials": {k: v for k, v in count.items() if v},
        "wall_seconds": round(wall, 2),
        "steps_computed": computed,
        "steps_unpruned": full,
        "best_trial": None,
        "parent_metrics": {
            "trials_complete": count.get("complete", 0),
            "trials_pruned": count.get("pruned", 0),
            "trials_failed": count.get("fail", 0),
            "wall_seconds": wall,
            "steps_computed": computed,
        },
    }
    if best is not None:
        out["best_trial"] = {
            "number": best.number,
            "params": best.params,
            "params_full": best.user_attrs.get("params_full", best.params),  # with the space's fixed values
            "value": best.value,
            "best_step": best.user_attrs.get("best_step"),
            "valid": {
                k.removeprefix("valid_"): v for k, v in best.user_attrs.items() if k.startswith("valid_")
            },
            "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
        }
        out["parent_metrics"][f"best_valid_{settings.metric}".replace("@", "_at_")] = best.value
    if prepared.segmentation is not None:
        out["segmentation"] = prepared.segmentation.to_dict()
    return out


def format_summary(summary: dict[str, Any]) -> str:
    lines = ["", f"study {summary['study_name']}  ({summary['status']}, {summary['wall_seconds']:.1f}s)"]
    if summary.get("synthetic"):
        lines.append("data: SYNTHETIC demo dataset")
    t = summary["trials"]
    lines.append(
        f"trials: {t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('fail', 0)} failed; "
        f"steps computed {summary['steps_computed']} of {summary['steps_unpruned']} unpruned"
    )
    best = summary.get("best_trial")
    if best is None:
        lines.append("no completed trial yet")
        return "\n".join(lines)
    metric = summary["metric"]
    at = f" (best at step {best['best_step']})" if best.get("best_step") else ""
    lines.append(f"best trial {best['number']}: validation {metric} {best['value']:.5f}{at}")
    lines.append("  params: " + ", ".join(f"{k}={fmt(v)}" for k, v in best["params"].items()))
    if "test" in summary:
        lines.append("test (best config refit on train+valid), 95% paired bootstrap CI over users:")
        lines.append(
            f"  {'metric':<11}{'model':>9}{'popular':>9}{'EASE':>9}   {'vs popularity':<24}{'vs EASE':<24}"
        )
        base = summary["baselines"]
        for name in [m for m in ("ndcg@10", "recall@10", "ndcg@20", "recall@20") if m in summary["test"]]:
            pop = base["popularity"]["test"][name]
            ease = base["ease"]["test"][name] if base.get("ease") else float("nan")
            cells = []
            for ref in ("popularity", "ease"):
                c = summary["vs"].get(ref, {}).get(name)
                cells.append(
                    "-"
                    if c is None
                    else f"{c['improvement_pct']['value']:+.1f}% [{c['improvement_pct']['low']:+.1f},"
                    f"{c['improvement_pct']['high']:+.1f}]"
                )
            lines.append(
                f"  {name:<11}{summary['test'][name]:>9.4f}{pop:>9.4f}{ease:>9.4f}   "
                f"{cells[0]:<24}{cells[1]:<24}"
            )
        lines.append(f"  {summary['baselines']['note']}")
    if "registry" in summary:
        r = summary["registry"]
        lines.append(f"registry: {r['name']} version {r['version']} -> @{r['alias']}  ({r['reason']})")
    return "\n".join(lines)
