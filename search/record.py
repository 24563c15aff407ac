"""The study record: what ``search.run`` writes at the end of a study (``summary.json`` on the parent run)
and what ``reports/`` reads. A typed, versioned dataclass; JSON on the wire.

A reader refuses a record of another ``schema_version`` with a clear message instead of guessing keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import CftuneError

SCHEMA_VERSION = 1
FILE_NAME = "summary.json"


class RecordError(CftuneError):
    """A study record that cannot be read (another schema version, or not a record at all)."""


@dataclass(frozen=True)
class BestTrial:
    number: int
    params: dict[str, Any]  # as searched
    params_full: dict[str, Any]  # with the space's fixed values
    value: float  # the trial's value: its best evaluated step's validation metric
    best_step: int | None
    valid: dict[str, float]  # validation metrics at that step
    mlflow_run_id: str | None


@dataclass(frozen=True)
class RegistryDecision:
    """Where the study's model landed in the registry and why (see :mod:`search.registry`)."""

    name: str
    version: str
    decision: str  # "champion", "data-champion" or "challenger"
    reason: str
    candidate_value: float
    champion_version: str | None
    champion_value: float | None
    data_alias: str  # the alias of the best version on this data, e.g. "champion-1a2b3c4d"
    model_uri: str
    run_id: str | None


@dataclass(frozen=True)
class GivenUp:
    """A configuration the study stopped retrying."""

    params: dict[str, Any]
    reason: str
    trials: list[int]


@dataclass(frozen=True)
class BoundaryHit:
    """The best trial on an edge of the space it searched (:mod:`search.boundaries`): the optimum may lie
    beyond it."""

    param: str
    side: str  # "lower" or "upper"
    bound: float  # the range's bound (TPE) or the grid's smallest / largest value
    value: float  # the best trial's value
    source: str  # the space file
    sampler: str  # "grid": the grid's end; otherwise a range's bound

    def message(self) -> str:
        if self.sampler == "grid":
            end = "smallest" if self.side == "lower" else "largest"
            return (
                f"{self.param} hit the {end} grid value {self.bound:g} of {self.source}: extend the grid "
                "(or search it with --sampler tpe)"
            )
        return (
            f"{self.param} hit the {self.side} bound {self.bound:g} of {self.source} "
            f"(best trial: {self.value:.4g}): widen the space"
        )


@dataclass
class StudyRecord:
    study_name: str
    model: str
    status: str  # "FINISHED" or "KILLED"
    data_source: str
    synthetic: bool
    data_version_hash: str
    metric: str
    sampler: str
    pruner: str
    tracking_uri: str
    trials: dict[str, int]  # Optuna state (lower case) -> count
    wall_seconds: float
    steps_computed: int
    steps_unpruned: int
    best_trial: BestTrial | None = None
    given_up: list[GivenUp] = field(default_factory=list)
    segmentation: dict[str, Any] | None = None
    boundary_hits: list[BoundaryHit] = field(default_factory=list)  # absent in records before it existed
    selection: dict[str, Any] | None = None  # how best_trial was chosen (search.selection); absent before
    # filled by the final refit (absent for a study that did not finish, or helpers)
    test: dict[str, float] | None = None
    baselines: dict[str, Any] | None = None  # popularity / EASE numbers, as search.references gives them
    baselines_cached: bool = False
    vs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # reference -> metric -> CI
    score_range: dict[str, Any] | None = None
    final_params: dict[str, Any] | None = None
    registry: RegistryDecision | None = None
    schema_version: int = SCHEMA_VERSION

    def parent_metrics(self) -> dict[str, float]:
        """The numbers logged as metrics of the study's parent run."""
        out = {
            "trials_complete": float(self.trials.get("complete", 0)),
            "trials_pruned": float(self.trials.get("pruned", 0)),
            "trials_failed": float(self.trials.get("fail", 0)),
            "wall_seconds": self.wall_seconds,
            "steps_computed": float(self.steps_computed),
        }
        if self.best_trial is not None:
            best = (self.selection or {}).get("best_value", self.best_trial.value)  # the search's best
            out[f"best_valid_{self.metric}".replace("@", "_at_")] = float(best)
            out[f"selected_valid_{self.metric}".replace("@", "_at_")] = self.best_trial.value
        for name, value in (self.test or {}).items():
            out[f"test_{name}".replace("@", "_at_")] = value
        return out

    def to_json(self) -> bytes:
        from core.artifacts import json_default

        return (json.dumps(asdict(self), indent=2, default=json_default) + "\n").encode()

    @classmethod
    def from_json(cls, text: str | bytes) -> StudyRecord:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"{FILE_NAME} is not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
            got = raw.get("schema_version") if isinstance(raw, dict) else None
            raise RecordError(
                f"{FILE_NAME} has schema_version {got!r}; this cftune reads version {SCHEMA_VERSION} "
                "(re-run the study with this version to rebuild it)"
            )
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in raw.items() if k in known}
        if data.get("best_trial") is not None:
            data["best_trial"] = BestTrial(**data["best_trial"])
        if data.get("registry") is not None:
            data["registry"] = RegistryDecision(**data["registry"])
        data["given_up"] = [GivenUp(**g) for g in data.get("given_up", [])]
        data["boundary_hits"] = [BoundaryHit(**h) for h in data.get("boundary_hits", [])]
        try:
            return cls(**data)
        except TypeError as exc:
            raise RecordError(f"{FILE_NAME} is missing fields: {exc}") from None
