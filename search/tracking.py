"""MLflow tracking for a study: one experiment per (model, dataset), a parent run per study, a nested run per
trial with params, per-step validation metrics, final metrics, score_range and artifacts.

Everything goes through an explicit :class:`~mlflow.MlflowClient` and run ids (no global active run), so
trials can be logged from callbacks and from several workers without stepping on each other. Batches
(``log_batch``) keep a trial's logging to a couple of store round trips.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import CftuneError

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACT_ROOT = Path("mlruns") / "artifacts"
PARENT_TAG = "mlflow.parentRunId"


class TrackingUnavailable(CftuneError):
    """The tracking store cannot be reached or written; raised before any training starts."""


def metric_key(name: str) -> str:
    """MLflow keys may not contain '@': ``ndcg@10`` is logged as ``ndcg_at_10``."""
    return name.replace("@", "_at_")


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the local SQLite store under ``mlruns/``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@contextmanager
def _no_retries() -> Any:
    """A health check must fail in seconds, not after MLflow's minutes of HTTP retries."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Tracker:
    """The MLflow side of one study."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        import mlflow
        from mlflow import MlflowClient

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.uri = resolve_tracking_uri(tracking_uri)
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri.removeprefix("sqlite:///"))
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingUnavailable(
                    f"cannot create the tracking store folder {db.parent}: {exc}"
                ) from None
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.check()

    def check(self) -> None:
        """Fail fast, before any training, when the store is unreachable."""
        try:
            with _no_retries():
                self.client.search_experiments(max_results=1)
        except Exception as exc:  # MLflow raises several unrelated types for an unreachable store
            raise TrackingUnavailable(
                f"MLflow tracking store {self.uri} is unreachable: {str(exc).splitlines()[0][:300]} "
                "(set --tracking-uri or MLFLOW_TRACKING_URI)"
            ) from None

    def experiment(self, name: str) -> str:
        """Id of experiment ``name``, created with its artifacts under ``mlruns/artifacts`` if new."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:"):
            location = (ARTIFACT_ROOT / name).resolve().as_uri()
        return str(self.client.create_experiment(name, artifact_location=location))

    def start_run(
        self,
        experiment_id: str,
        name: str,
        *,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        all_tags = {"mlflow.runName": name, **{k: str(v) for k, v in (tags or {}).items()}}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        return str(self.client.create_run(experiment_id, tags=all_tags, run_name=name).info.run_id)

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        steps: Iterable[tuple[str, int, float]] = (),
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """One ``log_batch``: params, final metrics, per-step metrics ``(name, step, value)`` and tags."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_list = [Metric(metric_key(k), float(v), now, 0) for k, v in (metrics or {}).items()]
        metric_list += [Metric(metric_key(k), float(v), now, int(s)) for k, s, v in steps]
        param_list = [Param(k, str(v)) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for start in range(0, max(len(metric_list), 1), 1000):  # MLflow's batch limit
            self.client.log_batch(
                run_id,
                metrics=metric_list[start : start + 1000],
                params=param_list if start == 0 else [],
                tags=tag_list if start == 0 else [],
            )

    def log_artifacts(self, run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def log_files(self, run_id: str, files: Mapping[str, bytes], artifact_path: str | None = None) -> None:
        """Small generated files (JSON, reports) without leaving them in the working tree."""
        with tempfile.TemporaryDirectory(prefix="cftune-") as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            self.client.log_artifacts(run_id, tmp, artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)
