"""The registry side: log the refit best model as an MLflow pyfunc, register it, and gate ``champion``.

Gate: the new version takes ``champion`` only if it beats the current champion's validation NDCG@10 on the
same ``data_version_hash`` (data and split), or if there is no comparable champion; otherwise it becomes
``challenger``. The decision and both numbers are printed and stored as version tags.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

from core.train import FinalResult, Prepared, save

PYFUNC_FILE = Path(__file__).resolve().parent / "pyfunc_model.py"
CORE_DIR = Path(__file__).resolve().parents[1] / "core"
GATE_METRIC = "valid_ndcg_at_10"
#: Explicit requirements: MLflow's inference would import and trace the model, which takes seconds.
PIP_PACKAGES = ("mlflow", "numpy", "pandas", "scipy", "numba", "pyarrow")


def pip_requirements() -> list[str]:
    return [f"{name}=={pkg_version(name)}" for name in PIP_PACKAGES]


def registered_name(model: str) -> str:
    return f"{model}-recommender"


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "user_id"), ColSpec("long", "k", required=False)]),
        outputs=Schema(
            [
                ColSpec("string", "user_id"),
                ColSpec("long", "rank"),
                ColSpec("string", "item_id"),
                ColSpec("double", "score"),
                ColSpec("boolean", "cold_start"),
            ]
        ),
        params=ParamSchema([ParamSpec("k", "long", 10), ParamSpec("unknown", "string", "popular")]),
    )


def champion_of(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None


def gate(
    client: Any, name: str, version: str, value: float, data_hash: str
) -> tuple[str, str, float | None, str | None]:
    """Decide champion or challenger; returns (alias, reason, champion value, champion version)."""
    current = champion_of(client, name)
    if current is None or str(current.version) == str(version):
        return "champion", "no champion yet", None, None
    cur_hash = current.tags.get("data_version_hash")
    cur_value = float(current.tags.get(GATE_METRIC, "nan"))
    if cur_hash != data_hash:
        return (
            "champion",
            f"champion v{current.version} was trained on other data ({cur_hash}); not comparable",
            cur_value,
            str(current.version),
        )
    if value > cur_value:
        return (
            "champion",
            f"beats champion v{current.version}: {value:.6f} > {cur_value:.6f}",
            cur_value,
            str(current.version),
        )
    return (
        "challenger",
        f"does not beat champion v{current.version}: {value:.6f} <= {cur_value:.6f}",
        cur_value,
        str(current.version),
    )


def already_registered(
    client: Any, name: str, study: str, trial_number: int, data_hash: str
) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.study_name = '{study}'")
    except MlflowException:
        return None
    for v in versions:
        if v.tags.get("trial_number") == str(trial_number) and v.tags.get("data_version_hash") == data_hash:
            return {
                "name": name,
                "version": str(v.version),
                "alias": v.tags.get("decision", ""),
                "reason": f"already registered by this study: {v.tags.get('decision_reason', '')}",
                "candidate_value": float(v.tags.get(GATE_METRIC, "nan")),
                "champion_value": None,
                "model_uri": f"models:/{name}/{v.version}",
                "run_id": v.run_id,
            }
    return None


def register_final(
    tracking: Any,
    model: str,
    prepared: Prepared,
    params: dict[str, Any],
    final: FinalResult,
    *,
    best_value: float,
    study: str,
    trial_number: int,
    valid_metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Log the refit model in a ``final`` run under the study, register a new version, move the alias.

    Idempotent: when this study's best trial is already registered (a finished study run again), the
    existing version and its recorded decision are returned instead of a duplicate.
    """
    import mlflow

    tracker = tracking.tracker
    client = tracker.client
    name = registered_name(model)
    existing = already_registered(client, name, study, trial_number, prepared.data_version_hash)
    if existing is not None:
        return existing
    run_id = tracker.start_run(
        tracking.experiment_id,
        f"final-{study}",
        parent_run_id=tracking.parent_run_id,
        tags={**tracking.common_tags, "kind": "final"},
    )
    gate_value = float((valid_metrics or {}).get("ndcg@10", best_value))
    tracker.log(
        run_id,
        params=params,
        metrics={
            GATE_METRIC: gate_value,
            **{f"test_{k}".replace("@", "_at_"): v for k, v in final.test.metrics.items()},
            **final.score_range.metrics(),
        },
    )
    with tempfile.TemporaryDirectory(prefix="cftune-final-") as tmp:
        folder = save(
            Path(tmp) / "run",
            prepared,
            model,
            params,
            final,
            valid_metrics or {"ndcg@10": gate_value},
            extra_metadata={"study_name": study},
        )
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # "no input example": predicting at log time costs seconds
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_FILE),
                artifacts={"run": str(folder)},
                code_paths=[str(CORE_DIR)],
                pip_requirements=pip_requirements(),
                signature=_signature(),
            )
        tracker.log_artifacts(run_id, folder, "run")
    # the identifying tags go on with the version itself: an interrupted run cannot leave an anonymous one
    identity = {
        "study_name": study,
        "trial_number": str(trial_number),
        "data_version_hash": prepared.data_version_hash,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        version = str(mlflow.register_model(info.model_uri, name, tags=identity).version)
    alias, reason, champ_value, champ_version = gate(
        client, name, version, gate_value, prepared.data_version_hash
    )
    tags = {
        GATE_METRIC: repr(gate_value),
        "test_ndcg_at_10": f"{final.test.metrics.get('ndcg@10', float('nan')):.6f}",
        "params": json.dumps(params, default=str),
        "decision": alias,
        "decision_reason": reason,
        "champion_compared_version": champ_version or "",
        f"champion_{GATE_METRIC}": "" if champ_value is None else repr(champ_value),
        "synthetic": str(prepared.synthetic),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, alias, version)
    tracker.end_run(run_id)
    return {
        "name": name,
        "version": version,
        "alias": alias,
        "reason": reason,
        "candidate_value": gate_value,
        "champion_value": champ_value,
        "model_uri": f"models:/{name}/{version}",
        "run_id": run_id,
    }
