"""Where a study's report reads from: the study record, the MLflow tracking store it names (the final run's
``run/`` folder; the report goes back there too) and the Optuna study's trials. Nothing here computes a
number; a store that cannot be read is a :class:`ReportError` that says which and what to pass.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from core.artifacts import RunArtifacts, load_run
from core.errors import CftuneError
from core.home import default_storage, resolve_tracking_uri
from core.names import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    PARENT_RUN_TAG,
    check_study_name,
    filter_value,
    gate_key,
    gate_metric,
)
from search.record import FILE_NAME, RegistryDecision, StudyRecord


class ReportError(CftuneError):
    """The study or one of its runs cannot be read; the message says which and what to do."""


def tracking_client(uri: str) -> Any:
    """An MLflow client on ``uri``; a SQLite store must exist (a typo must not create an empty one)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReportError(f"no MLflow tracking store at {uri} (pass --tracking-uri)")
    # mlflow adds 4-8 s to importing reports.build (measured: 8 s without it, 12-16 s with it, 2-core box):
    # only commands that talk to a store pay for it, not --help nor a Markdown rebuilt from a record
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def open_study(study_name: str, storage: str) -> Any:
    """The study, or a clear error listing the studies that do exist (a typo must not create an empty DB)."""
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise ReportError(f"no Optuna storage at {storage} (pass --storage)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise ReportError(
            f"no study {study_name!r} in {storage}; known: {', '.join(names) or 'none'}"
        ) from None


def download_run_folder(client: Any, run_id: str, artifact_path: str = "run") -> RunArtifacts:
    """A run folder logged as artifacts, read into memory (the download is temporary)."""
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, artifact_path, tmp)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise ReportError(f"run {run_id} has no {artifact_path}/ artifacts: {exc}") from None
        return load_run(local)


def read_text_artifact(client: Any, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # absent: the caller says what that means
            return None
        return Path(local).read_text()


def read_record(client: Any, parent_run_id: str, study_name: str) -> StudyRecord:
    """The study record on the parent run (a :class:`~search.record.RecordError` names a schema mismatch)."""
    text = read_text_artifact(client, parent_run_id, FILE_NAME)
    if text is None:
        raise ReportError(f"study {study_name!r} has no {FILE_NAME} yet: it is running or was never finished")
    return StudyRecord.from_json(text, parent_run_id=parent_run_id)


def read_record_file(path: str | Path) -> StudyRecord:
    try:
        return StudyRecord.from_json(Path(path).read_bytes())
    except OSError as exc:
        raise ReportError(f"cannot read the study record {path}: {exc}") from None


def find_record(study_name: str, tracking_uri: str | None = None) -> StudyRecord:
    """The record of ``study_name`` on its parent run (tagged ``kind=study``) in the tracking store; an
    unknown name lists the studies the store does hold."""
    check_study_name(study_name)
    uri = resolve_tracking_uri(tracking_uri)
    client = tracking_client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = (
        client.search_runs(
            experiments,
            f"tags.kind = 'study' and tags.study_name = {filter_value(study_name)}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiments
        else []
    )
    if not found:
        runs = client.search_runs(experiments, "tags.kind = 'study'") if experiments else []
        known = sorted({r.data.tags.get("study_name", "") for r in runs} - {""})
        raise ReportError(
            f"no study {study_name!r} in the tracking store {uri}; known: {', '.join(known) or 'none'} "
            "(pass --tracking-uri)"
        )
    return read_record(client, found[0].info.run_id, study_name)


@dataclass
class StudyResults:
    """Everything a finished study left behind, read back."""

    study: Any  # the Optuna study (its trials draw the figures)
    record: StudyRecord  # summary.json on the parent run
    client: Any  # an MLflow client on the study's tracking store
    tracking_uri: str
    final: RunArtifacts | None
    final_note: str


def find_final_run(client: Any, record: StudyRecord) -> str | None:
    if record.registry is not None and record.registry.run_id:
        return record.registry.run_id
    parent = client.get_run(record.parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.kind = 'final' and tags.`{PARENT_RUN_TAG}` = {filter_value(record.parent_run_id)}",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def load_results(
    record: StudyRecord, storage: str | None = None, tracking_uri: str | None = None
) -> StudyResults:
    """The study's trials and final run folder; the MLflow store is the record's unless ``tracking_uri``."""
    study = open_study(record.study_name, storage or default_storage())
    uri = tracking_uri or record.tracking_uri
    client = tracking_client(uri)
    parent = record.parent_run_id
    try:
        client.get_run(parent)
    except Exception:  # MlflowException for an id unknown to this store
        raise ReportError(
            f"parent run {parent} of study {record.study_name!r} is not in {uri} (pass --tracking-uri)"
        ) from None
    if record.registry is not None:
        record = replace(record, registry=registry_now(client, record.registry))
    final_id = find_final_run(client, record)
    final, note = None, ""
    if final_id is None:
        note = "no final run (the study was run with --no-register, or did not finish)"
    else:
        try:
            final = download_run_folder(client, final_id)
        except CftuneError as err:
            note = str(err)
    return StudyResults(study, record, client, uri, final, note)


def registry_now(client: Any, recorded: RegistryDecision) -> RegistryDecision:
    """The study's version as the registry holds it now. The decision written into the record was true when
    the study finished; a later study may have taken the champion alias since, and every settle rewrites each
    version's ``decision`` tags. A version no longer in the registry keeps the recorded decision, said so."""
    try:
        version = client.get_model_version(recorded.name, recorded.version)
    except Exception:  # deleted, or a store without this model: the record is all there is
        return replace(
            recorded, reason=f"{recorded.reason} (as recorded: the version is no longer registered)"
        )
    tags = version.tags
    decision = tags.get("decision", recorded.decision)
    # beside a champion stands its challenger; beside anything else, the champion (as search.registry does)
    other = CHALLENGER_ALIAS if decision == CHAMPION_ALIAS else CHAMPION_ALIAS
    try:
        champ = client.get_model_version_by_alias(recorded.name, other)
    except Exception:  # no such alias
        champ = None
    return replace(
        recorded,
        decision=decision,
        reason=tags.get("decision_reason", recorded.reason),
        champion_version=None if champ is None else str(champ.version),
        champion_value=None
        if champ is None
        else float(champ.tags.get(gate_key(gate_metric(champ.tags)), "nan")),
    )


def log_report(client: Any, run_id: str, files: dict[str, bytes]) -> None:
    """The report's files as artifacts ``report/`` of the study's parent run."""
    with tempfile.TemporaryDirectory(prefix="cftune-report-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        client.log_artifacts(run_id, tmp, "report")
