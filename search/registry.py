"""The registry side: log the refit best model as an MLflow pyfunc, register it, and settle the aliases.

The aliases are a pure function of the registered versions, so they never depend on which study finished
first (two studies registering at the same moment end the same way as one after the other):

- ``champion-<data>`` (the first 8 characters of ``data_version_hash``, i.e. data AND split): the version
  with the best validation value on that data, each version measured on its study's ``--metric`` (the
  ``gate_metric`` tag; NDCG@10 by default and for versions registered before the tag); a tie keeps the
  earlier version.
- ``champion``: the best version on the data of the current champion. Numbers from different splits are never
  compared, so a study on other data does not take ``champion``; it gets its own ``champion-<data>``, and
  alternating datasets never flips ``champion`` back and forth. With no champion yet, the data of the first
  registered version decides. ``python -m search.promote --data-hash H`` moves ``champion`` to other data.
- ``challenger``: the runner-up on the champion's data.

Each version's ``decision`` tag (``champion``, ``data-champion`` or ``challenger``) and ``decision_reason``
agree with the aliases. Every registering process re-reads the registry after writing until what it reads is
what the rule gives (:func:`settle`), so the last writer always has seen every version.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

from core.final import FinalResult
from core.names import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DEFAULT_METRIC,
    GATE_METRIC_TAG,
    filter_value,
    gate_key,
    gate_metric,
    mlflow_key,
)
from core.prepare import Prepared
from core.run_folder import save
from search.record import RegistryDecision

PYFUNC_FILE = Path(__file__).resolve().parent / "pyfunc_model.py"
CORE_DIR = Path(__file__).resolve().parents[1] / "core"
#: The tag with the test NDCG@10 shown beside every version, whatever its gate metric.
TEST_TAG = mlflow_key(DEFAULT_METRIC, "test")
#: Explicit requirements: MLflow's inference would import and trace the model, which takes seconds.
PIP_PACKAGES = ("mlflow", "numpy", "pandas", "scipy", "numba", "pyarrow")


def pip_requirements() -> list[str]:
    return [f"{name}=={pkg_version(name)}" for name in PIP_PACKAGES]


def registered_name(model: str) -> str:
    return f"{model}-recommender"


def _signature() -> Any:
    # lazy: mlflow costs ~3.5 s to import (-X importtime): only when the tracking store is used
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


CHAMPION = CHAMPION_ALIAS
CHALLENGER = CHALLENGER_ALIAS
DATA_CHAMPION = "data-champion"


def data_alias(data_hash: str) -> str:
    """The alias of the best version trained on one data + split."""
    return f"{CHAMPION}-{data_hash[:8]}"


def champion_of(client: Any, name: str, alias: str = CHAMPION) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Entry:
    """One registered version as the rule sees it."""

    version: int
    data_hash: str
    value: float
    metric: str = DEFAULT_METRIC

    @property
    def rank_key(self) -> tuple[float, int]:
        return (self.value, -self.version)  # higher value first; a tie keeps the earlier version


@dataclass(frozen=True)
class Standing:
    """What the aliases must be, given the registered versions and the current champion."""

    champion: Entry | None
    challenger: Entry | None
    best_by_data: dict[str, Entry]
    scope: str | None  # the data hash ``champion`` is on

    def decision(self, entry: Entry) -> tuple[str, str]:
        """(decision tag, reason) for one version."""
        best = self.best_by_data[entry.data_hash]
        if self.champion is not None and entry.version == self.champion.version:
            runner = self.challenger
            vs = f" > v{runner.version} {runner.value:.6f}" if runner else " (no other version on this data)"
            return (
                CHAMPION,
                f"best validation {entry.metric} on data {entry.data_hash[:8]}: {entry.value:.6f}{vs}",
            )
        if entry.version == best.version:
            champ = self.champion
            where = "" if champ is None else f"; @champion is v{champ.version} on data {champ.data_hash[:8]}"
            return DATA_CHAMPION, f"best on its data (@{data_alias(entry.data_hash)}){where}"
        return (
            CHALLENGER,
            f"does not beat v{best.version} on data {entry.data_hash[:8]}: "
            f"{entry.value:.6f} <= {best.value:.6f}",
        )


def entries(versions: list[Any]) -> list[Entry]:
    out = []
    for v in versions:
        try:
            metric = gate_metric(v.tags)
            value = float(v.tags[gate_key(metric)])
            out.append(Entry(int(v.version), str(v.tags["data_version_hash"]), value, metric))
        except (KeyError, ValueError):
            continue  # not registered by cftune (or half-written by a very old version): not ranked
    return out


def standing(all_entries: list[Entry], champion_version: int | None) -> Standing:
    """The rule itself, a pure function (tested by hand)."""
    best: dict[str, Entry] = {}
    for e in all_entries:
        if e.data_hash not in best or e.rank_key > best[e.data_hash].rank_key:
            best[e.data_hash] = e
    by_version = {e.version: e for e in all_entries}
    if champion_version in by_version:
        scope: str | None = by_version[champion_version].data_hash  # type: ignore[index]
    elif all_entries:
        scope = min(all_entries, key=lambda e: e.version).data_hash
    else:
        scope = None
    if scope is None:
        return Standing(None, None, best, None)
    ranked = sorted((e for e in all_entries if e.data_hash == scope), key=lambda e: e.rank_key, reverse=True)
    return Standing(ranked[0], ranked[1] if len(ranked) > 1 else None, best, scope)


def _versions(client: Any, name: str) -> list[Any]:
    return list(client.search_model_versions(f"name = {filter_value(name)}", max_results=10000))


def settle(client: Any, name: str, *, scope_version: int | None = None) -> Standing:
    """Point the aliases and decision tags of ``name`` at what :func:`standing` gives, and re-read until the
    registry shows exactly that. ``scope_version`` moves ``champion`` to that version's data."""
    from mlflow.exceptions import MlflowException

    while True:
        versions = _versions(client, name)
        current = champion_of(client, name)
        anchor = scope_version if scope_version is not None else (int(current.version) if current else None)
        st = standing(entries(versions), anchor)
        wanted = {data_alias(h): e.version for h, e in st.best_by_data.items()}
        if st.champion is not None:
            wanted[CHAMPION] = st.champion.version
        if st.challenger is not None:
            wanted[CHALLENGER] = st.challenger.version
        try:
            _write(client, name, st, wanted, versions)
        except MlflowException as exc:
            if not _is_write_conflict(exc):
                raise
            continue  # another process wrote the same alias or tag at the same moment: read again
        # verify: what a fresh read gives must be what was just written, else someone wrote meanwhile
        again = _versions(client, name)
        now = champion_of(client, name)
        scope_version = None  # from here on the champion alias itself carries the scope
        check = standing(entries(again), int(now.version) if now else None)
        if (
            len(again) == len(versions)
            and check == st
            and (
                now is None
                if st.champion is None
                else now is not None and int(now.version) == st.champion.version
            )
        ):
            return st


def _write(client: Any, name: str, st: Standing, wanted: dict[str, int], versions: list[Any]) -> None:
    for alias, version in wanted.items():
        client.set_registered_model_alias(name, alias, str(version))
    if st.challenger is None and champion_of(client, name, CHALLENGER) is not None:
        client.delete_registered_model_alias(name, CHALLENGER)
    by_version = {int(v.version): v for v in versions}
    for e in entries(versions):
        decision, reason = st.decision(e)
        tags = by_version[e.version].tags
        if tags.get("decision") != decision or tags.get("decision_reason") != reason:
            client.set_model_version_tag(name, str(e.version), "decision", decision)
            client.set_model_version_tag(name, str(e.version), "decision_reason", reason)


def _is_write_conflict(exc: Exception) -> bool:
    """Two writers inserting the same alias or tag row at once: the loser sees a unique-key violation."""
    text = str(exc).lower()
    conflicts = ("unique constraint", "duplicate key", "already exists", "database is locked")
    return any(s in text for s in conflicts)


def find_registered(client: Any, name: str, study: str, trial_number: int, data_hash: str) -> Any | None:
    """The version this study's best trial already registered (a finished study run again), if any."""
    query = f"name = {filter_value(name)} and tags.study_name = {filter_value(study)}"
    for v in client.search_model_versions(query, max_results=10000):
        if v.tags.get("trial_number") == str(trial_number) and v.tags.get("data_version_hash") == data_hash:
            return v
    return None


def decision_of(client: Any, name: str, version: Any, st: Standing) -> RegistryDecision:
    entry = next(e for e in entries([version]))
    decision, reason = st.decision(entry)
    champ = st.champion if decision != CHAMPION else st.challenger
    return RegistryDecision(
        name=name,
        version=str(version.version),
        decision=decision,
        reason=reason,
        candidate_value=entry.value,
        champion_version=None if champ is None else str(champ.version),
        champion_value=None if champ is None else champ.value,
        data_alias=data_alias(entry.data_hash),
        model_uri=f"models:/{name}/{version.version}",
        run_id=version.run_id,
    )


def _version_tags(
    prepared: Prepared,
    params: dict[str, Any],
    final: FinalResult,
    study: str,
    trial_number: int,
    metric: str,
    gate_value: float,
) -> dict[str, str]:
    """What a registered version carries: its study and trial, its data, what the champion rule reads."""
    return {
        "study_name": study,
        "trial_number": str(trial_number),
        "data_version_hash": prepared.data_version_hash,
        GATE_METRIC_TAG: metric,
        gate_key(metric): repr(gate_value),
        TEST_TAG: f"{final.test.metrics.get(DEFAULT_METRIC, float('nan')):.6f}",
        "params": json.dumps(params, default=str),
        "synthetic": str(prepared.synthetic),
        "popularity_weight": f"{final.blend.weight if final.blend is not None else 0.0:g}",
    }


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
    metric: str = DEFAULT_METRIC,
) -> RegistryDecision:
    """Log the refit model in a ``final`` run under the study, register it, settle the aliases.

    Idempotent: when this study's best trial is already registered (a finished study run again, or one
    killed between registering and settling), nothing is registered again and the aliases are settled anew.
    Call it under the study's lock, so two workers of one study never both register. The version is ranked
    on ``metric`` (the study's), its validation value taken from ``valid_metrics`` else ``best_value``."""
    import mlflow

    tracker = tracking.tracker
    client = tracker.client
    name = registered_name(model)
    version = find_registered(client, name, study, trial_number, prepared.data_version_hash)
    if version is None:
        run_id = tracker.start_run(
            tracking.experiment_id,
            f"final-{study}",
            parent_run_id=tracking.parent_run_id,
            tags={**tracking.common_tags, "kind": "final"},
        )
        gate_value = float((valid_metrics or {}).get(metric, best_value))
        blend = final.blend.to_dict() if final.blend is not None else {"weight": 0.0}
        tracker.log(
            run_id,
            params={**params, "popularity_weight": blend["weight"]},
            metrics={
                gate_key(metric): gate_value,
                **{mlflow_key(k, "test"): v for k, v in final.test.metrics.items()},
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
                valid_metrics or {metric: gate_value},
                extra_metadata={"study_name": study, "popularity_blend": blend},
            )
            # the run ends FINISHED only once its version exists (leaving this block); killed before that,
            # it stays RUNNING, and an exception ends it FAILED: either way the next run repairs it
            with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
                # "no input example": predicting at log time would cost seconds; the signature says it all
                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(PYFUNC_FILE),
                    artifacts={"run": str(folder)},
                    code_paths=[str(CORE_DIR)],
                    pip_requirements=pip_requirements(),
                    signature=_signature(),
                )
                tracker.log_artifacts(run_id, folder, "run")
                # everything the rule reads goes on with the version itself: no version is seen half-tagged
                tags = _version_tags(prepared, params, final, study, trial_number, metric, gate_value)
                version = mlflow.register_model(info.model_uri, name, tags=tags)
    st = settle(client, name)
    return decision_of(client, name, client.get_model_version(name, str(version.version)), st)
