"""MLflow tracking for a study: one experiment per (model, dataset), a parent run per study, a nested run per
trial with params, per-step validation metrics, final metrics, score_range and artifacts.

Everything goes through an explicit :class:`~mlflow.MlflowClient` and run ids (no global active run), so
trials can be logged from callbacks and from several workers without stepping on each other. Batches
(``log_batch``) keep a trial's logging to a couple of store round trips. :class:`Tracker` wraps the client;
:class:`StudyTracking` is what a study uses: its parent run, the trial runs, and the end of the study.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.artifacts import save_run
from core.errors import StoreFault
from core.evaluate import score_range
from core.faults import first_sentence
from core.names import PARENT_RUN_TAG, file_in, filter_value, mlflow_key, study_name_from
from core.params import split_params
from core.run_folder import git_commit, run_metadata, split_frame
from search.faults import cause_at, shown_url
from search.keep import FACTORS_TAG, Keeper, artifact_bytes, factor_files
from search.locks import is_postgres, sqlite_path, store_lock, use_wal
from search.record import FILE_NAME, StudyRecord
from search.settings import StudySettings, artifact_root, resolve_tracking_uri

if TYPE_CHECKING:
    from core.prepare import Prepared
    from search.record import StudyRecord


#: The parent run's tag saying its study inputs (split, data description) are all logged.
INPUTS_TAG = "study_inputs"


class TrackingUnavailable(StoreFault):
    """The tracking store cannot be reached or written; raised before any training starts."""


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

    def __init__(self, tracking_uri: str | None = None, artifacts: str | None = None) -> None:
        # lazy: mlflow costs ~3.5 s to import (-X importtime): only when the tracking store is used
        import mlflow

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.uri = resolve_tracking_uri(tracking_uri)
        self.artifact_root = artifact_root(self.uri, artifacts)
        db = sqlite_path(self.uri)
        if db is not None:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingUnavailable(
                    f"cannot create the tracking store folder {db.parent}: {exc}"
                ) from None
        mlflow.set_tracking_uri(self.uri)
        self.check()

    def check(self) -> None:
        """Fail fast, before any training, when the store is unreachable. A database store creates its schema
        when the client first opens it; workers starting together on an empty one would race to migrate it,
        so that first use (tracking and registry) happens under the store's lock."""
        from mlflow import MlflowClient

        direct = sqlite_path(self.uri) is not None or is_postgres(self.uri)
        try:
            with _no_retries(), store_lock(self.uri, "schema") if direct else contextlib.nullcontext():
                self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                self.client.search_experiments(max_results=1)
                self.client.search_registered_models(max_results=1)
                use_wal(self.uri)
        except Exception as exc:  # MLflow raises several unrelated types for an unreachable store
            cause = cause_at(exc, self.uri)
            if cause is None or cause.startswith("unreachable"):
                cause = f"unreachable: {first_sentence(str(exc) or type(exc).__name__)}"
            where = f"MLflow tracking store {shown_url(self.uri)}"
            hint = "(set --tracking-uri or MLFLOW_TRACKING_URI)"
            raise TrackingUnavailable(f"{where}: {cause} {hint}") from None

    def experiment(self, name: str) -> str:
        """Id of experiment ``name``, created if new with its artifacts in a folder of :attr:`artifact_root`
        named after it (or, for a tracking server, where the server keeps them)."""
        from mlflow.exceptions import MlflowException

        for _ in range(2):  # a worker creating it at the same moment wins; then it is found
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                return str(found.experiment_id)
            location = None
            if self.artifact_root is not None:
                location = file_in(self.artifact_root, study_name_from(name)).as_uri()
            try:
                return str(self.client.create_experiment(name, artifact_location=location))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        raise TrackingUnavailable(f"experiment {name!r} exists but cannot be read from {self.uri}")

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
            all_tags[PARENT_RUN_TAG] = parent_run_id
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
        metric_list = [Metric(mlflow_key(k), float(v), now, 0) for k, v in (metrics or {}).items()]
        metric_list += [Metric(mlflow_key(k), float(v), now, int(s)) for k, s, v in steps]
        param_list = [Param(k, str(v)) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        # MLflow accepts at most 1000 entities (metrics + params + tags) per batch
        first = max(0, 1000 - len(param_list) - len(tag_list))
        self.client.log_batch(run_id, metrics=metric_list[:first], params=param_list, tags=tag_list)
        for start in range(first, len(metric_list), 1000):
            self.client.log_batch(run_id, metrics=metric_list[start : start + 1000])

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


class StudyTracking:
    """The MLflow side of a study: the experiment, the one parent run, nested trial runs, and the end.

    Create it under the study's lock (:func:`search.locks.store_lock`): the parent run is then chosen once
    for all workers. The first worker creates it and records its id in the study; the others, and every
    later run of the study, adopt that id. No worker ever creates a second one."""

    def __init__(
        self, settings: StudySettings, prepared: Prepared, study: Any, label: str, sampler: str
    ) -> None:

        self.settings = settings
        self.prepared = prepared
        self.study = study
        self.tracker = Tracker(settings.tracking_uri, settings.artifact_root)
        self.experiment_id = self.tracker.experiment(f"{settings.model}-{label}")
        self.keeper = Keeper(settings, study, self.tracker.client, self.experiment_id)
        self.common_tags = {
            "study_name": study.study_name,
            "data_version_hash": prepared.data_version_hash,
            "git_commit": git_commit(),
            "sampler": sampler,
            "pruner": settings.pruner,
            "model": settings.model,
            "synthetic": prepared.synthetic,
        }
        parent = study.user_attrs.get("mlflow_parent_run_id")
        if parent and self._run_exists(parent):
            self.parent_run_id = str(parent)
            if settings.helper:
                return
            self.tracker.reopen(self.parent_run_id)
        else:
            self.parent_run_id = self.tracker.start_run(
                self.experiment_id, f"study-{study.study_name}", tags={**self.common_tags, "kind": "study"}
            )
            study.set_user_attr("mlflow_parent_run_id", self.parent_run_id)
            study.set_user_attr("tracking_uri", self.tracker.uri)
        if self.tracker.client.get_run(self.parent_run_id).data.tags.get(INPUTS_TAG) != "logged":
            try:  # once per study; again only when a store fault stopped the first time half-way
                self._log_study_inputs(self.parent_run_id)
            except Exception:
                with contextlib.suppress(Exception):  # the next run reopens it and logs them again
                    self.tracker.end_run(self.parent_run_id, "FAILED")
                raise
            self.tracker.log(self.parent_run_id, tags={INPUTS_TAG: "logged"})

    def artifact_location(self) -> str:
        """Where this study's runs keep their artifacts: the experiment's location, fixed at its creation."""
        return str(self.tracker.client.get_experiment(self.experiment_id).artifact_location)

    def _run_exists(self, run_id: str) -> bool:
        try:
            return self.tracker.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:  # MlflowException for an unknown id
            return False

    def _log_study_inputs(self, parent_run_id: str) -> None:
        """Once per study: the split (original ids) and the data description, so trials can be recomputed."""

        s = self.prepared.split
        files: dict[str, bytes] = {}
        for name, part in (("train", s.train), ("valid", s.valid), ("test", s.test)):
            buf = io.BytesIO()
            frame = split_frame(part)
            for col in ("user_id", "item_id"):
                frame[col] = frame[col].astype(str)
            frame.to_parquet(buf, index=False)
            files[f"{name}.parquet"] = buf.getvalue()
        files["data.json"] = json.dumps(self.prepared.describe(), indent=2, default=str).encode()
        self.tracker.log_files(parent_run_id, files, "split")
        self.tracker.log(
            parent_run_id,
            params={
                "model": self.settings.model,
                "metric": self.settings.metric,
                "split": s.strategy,
                "seed": self.settings.seed,
                "data_source": self.prepared.data.source,
            },
        )

    def start_trial(self, number: int, params: dict[str, Any]) -> str:
        run_id = self.tracker.start_run(
            self.experiment_id,
            f"trial-{number:04d}",
            parent_run_id=self.parent_run_id,
            tags={**self.common_tags, "trial_number": number, "kind": "trial"},
        )
        self.tracker.log(run_id, params=params)
        return run_id

    def end_trial(
        self,
        run_id: str,
        number: int,
        state: str,
        steps: list[tuple[int, float]],
        value: float | None,
        valid: Any,
        fitted: Any,
        seconds: float,
        error: BaseException | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Metrics, tags and artifacts of a finished trial; ``valid_<metric>`` is the trial's value (its best
        step, the number Optuna stores), the curve is ``step_valid_<metric>``."""

        metric = self.settings.metric
        step_log = [(f"step_valid_{metric}", step, v) for step, v in steps]
        metrics: dict[str, float] = {
            "fit_seconds": seconds,
            "steps_computed": float(steps[-1][0] if steps else 0),
        }
        tags: dict[str, Any] = {"optuna.state": state}
        if error is not None:
            tags["error"] = f"{type(error).__name__}: {error}"[:4000]
        if valid is not None and fitted is not None:
            metrics.update({f"valid_{k}": v for k, v in valid.metrics.items()})
            s = self.prepared.split
            sr = score_range(fitted.user_factors_, fitted.item_factors_, valid.users, s.valid_exclude())
            metrics.update(sr.metrics())
            factors = True
            if state == "COMPLETE" and value is not None:  # --keep-factors (search.keep)
                factors, tags[FACTORS_TAG] = self.keeper.trial_ended(number, value, len(valid.users))
            self._log_trial_artifacts(run_id, number, fitted, valid, sr, params or {}, factors=factors)
        if value is not None:
            metrics[f"valid_{metric}"] = value
        self.tracker.log(run_id, metrics=metrics, steps=step_log, tags=tags)
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}[state]
        self.tracker.end_run(run_id, status)

    def end_dead_trial(self, trial: Any) -> None:
        """The MLflow run of a trial whose worker died: ended FAILED, with the state tag and why."""
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id or not self._run_exists(run_id):
            return
        reason = trial.user_attrs.get("failure", "worker died")
        self.tracker.log(
            run_id, tags={"optuna.state": "FAIL", "error": f"{reason} (found by another worker)"}
        )
        self.tracker.end_run(run_id, "FAILED")

    def _log_trial_artifacts(
        self,
        run_id: str,
        number: int,
        fitted: Any,
        valid: Any,
        sr: Any,
        params: dict[str, Any],
        *,
        factors: bool = True,
    ) -> None:
        """The trial's run folder as artifacts ``run/``; without ``factors``, all but its factor files."""

        s = self.prepared.split
        with tempfile.TemporaryDirectory(prefix="cftune-trial-") as tmp:
            folder = save_run(
                Path(tmp) / "run",
                model=self.settings.model,
                user_factors=fitted.user_factors_,
                item_factors=fitted.item_factors_,
                params={**fitted.get_params(), **split_params(params)[1]},
                metrics={"valid": valid.metrics},
                metadata=run_metadata(
                    self.prepared,
                    fitted,
                    {
                        "score_range": sr.to_dict(),
                        "study_name": self.study.study_name,
                        "trial_number": number,
                        "split_in": "the study's parent run (artifacts split/)",
                    },
                ),
                users=s.train.users,
                items=s.train.items,
                train=None,
                valid=None,
                test=None,
                extra_json={"history.json": fitted.history_.to_dict()},
            )
            if not factors:
                for path in factor_files(folder):
                    path.unlink()
            self.tracker.log_artifacts(run_id, folder, "run")

    def repair_final_runs(self) -> int:
        """Close as FAILED this study's final runs that no registered version comes from: left RUNNING by a
        kill, or FINISHED by an older cftune before its version existed. Call it under the study's lock, at
        the start of the final phase; returns how many it closed."""
        client = self.tracker.client
        mine = f"tags.kind = 'final' and tags.study_name = {filter_value(self.study.study_name)}"
        closed = 0
        for run in client.search_runs([self.experiment_id], mine, max_results=1000):
            run_id = run.info.run_id
            if run.info.status == "FAILED" or run.info.status == "KILLED":
                continue
            if run.info.status == "FINISHED" and client.search_model_versions(
                f"run_id = {filter_value(run_id)}"
            ):
                continue
            self.tracker.log(run_id, tags={"error": "the final phase was interrupted before registering"})
            self.tracker.end_run(run_id, "FAILED")
            closed += 1
        return closed

    def previous_record(self) -> StudyRecord | None:
        """The record an earlier run of this study left on the parent run, if any (unreadable: none)."""
        with tempfile.TemporaryDirectory(prefix="cftune-record-") as tmp:
            try:
                local = self.tracker.client.download_artifacts(self.parent_run_id, FILE_NAME, tmp)
                return StudyRecord.from_json(Path(local).read_bytes(), parent_run_id=self.parent_run_id)
            except Exception:  # absent (the first finish) or from an unreadable schema: finish afresh
                return None

    def _count_artifacts(self, record: StudyRecord) -> None:
        """``record.artifact_bytes``: the study's artifacts once ``summary.json`` is (re)written. The record
        holds its own size, so the count is repeated until it stops changing (its digits, at most twice)."""
        others = artifact_bytes(self.tracker.client, self.experiment_id, self.study.study_name, [FILE_NAME])
        record.artifact_bytes = others
        if others is None:
            return
        for _ in range(4):
            total = others + len(record.to_json())
            if total == record.artifact_bytes:
                return
            record.artifact_bytes = total

    def finish(self, status: str, record: StudyRecord | None) -> None:
        """The study's end on its parent run: the record (``summary.json``), its metrics, the run status.
        A finished study's factor files are settled first (:meth:`search.keep.Keeper.settle`), and the
        record counts the bytes of the study's artifacts, its own ``summary.json`` included."""

        if record is not None and status == "FINISHED":
            self.keeper.settle()
            self._count_artifacts(record)
        if record is not None:
            self.tracker.log(self.parent_run_id, metrics=record.parent_metrics())
            self.tracker.log_files(self.parent_run_id, {FILE_NAME: record.to_json()})
        self.tracker.end_run(self.parent_run_id, status)
