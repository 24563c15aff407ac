"""The study record: what ``search.run`` writes at the end of a study (``summary.json`` on the parent run)
and the whole of what ``reports/`` reads about it. Typed through and through (the core dataclasses where one
fits), versioned, JSON on the wire through one function each way: :meth:`StudyRecord.to_json` and
:meth:`StudyRecord.from_json`.

A reader refuses a record of an unknown ``schema_version`` with a clear message instead of guessing keys; a
version 1 record (before the record named its parent run and carried the data's description) is read as
version 2 with those parts empty. A version 2 record written before the record carried its phase table reads
with ``phases`` None (the field is optional, so the version stays 2 and older readers ignore it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from core.artifacts import json_default
from core.errors import CftuneError
from core.evaluate import Comparison, Interval, ScoreRange
from core.names import mlflow_key

if TYPE_CHECKING:
    from core.split import Segmentation
    from search.references import References

SCHEMA_VERSION = 2
#: Versions :meth:`StudyRecord.from_json` reads: version 1 lacks ``parent_run_id``, ``data_description`` and
#: ``split_description``; its other parts have the layout of version 2.
READABLE_VERSIONS = (1, SCHEMA_VERSION)
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
    popularity_weight: float = 0.0  # the blend chosen on validation (core.blend); 0 in older records


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
    """The best trial, or the selected one, on an edge of the space it searched (:mod:`search.boundaries`):
    the optimum may lie beyond it."""

    param: str
    side: str  # "lower" or "upper"
    bound: float  # the range's bound (TPE) or the grid's smallest / largest value
    value: float  # the trial's value of the parameter
    source: str  # the space file
    sampler: str  # "grid": the grid's end; otherwise a range's bound
    trial: str = "best"  # "best": the best validation value; "selected": the trial refit and handed on

    def message(self) -> str:
        if self.sampler == "grid":
            end = "smallest" if self.side == "lower" else "largest"
            which = "" if self.trial == "best" else f" ({self.trial} trial)"
            return (
                f"{self.param} hit the {end} grid value {self.bound:g} of {self.source}{which}: extend the "
                "grid (or search it with --sampler tpe)"
            )
        return (
            f"{self.param} hit the {self.side} bound {self.bound:g} of {self.source} "
            f"({self.trial} trial: {self.value:.4g}): widen the space"
        )


@dataclass(frozen=True)
class SegmentCounts:
    """How the data's users split into trainable and cold-start (:class:`core.split.Segmentation`, without
    the interactions themselves)."""

    users_total: int
    users_trainable: int
    users_cold_start: int
    items_total: int
    items_without_trainable_users: int
    interactions_cold_start: int
    rule: str

    @classmethod
    def of(cls, segmentation: Segmentation) -> SegmentCounts:
        return cls(
            users_total=segmentation.n_users_total,
            users_trainable=segmentation.n_trainable,
            users_cold_start=segmentation.n_cold_start,
            items_total=segmentation.n_items_total,
            items_without_trainable_users=segmentation.n_items_dropped,
            interactions_cold_start=segmentation.n_interactions_dropped,
            rule=str(segmentation.to_dict()["rule"]),
        )


@dataclass(frozen=True)
class SelectionRecord:
    """How ``best_trial`` was chosen (:class:`search.selection.Selection`); ``note`` says in a line why
    another trial than the best by value was, and is None when the best was."""

    rule: str
    selected_trial: int
    best_trial: int
    best_value: float
    standard_error: float | None
    within_one_se: int
    note: str | None


@dataclass(frozen=True)
class ReferenceMetrics:
    """A reference model's mean metrics on validation and on test."""

    valid: dict[str, float]
    test: dict[str, float]


@dataclass(frozen=True)
class EaseMetrics(ReferenceMetrics):
    """EASE's metrics, with the L2 weight chosen on validation and the validation metric of each tried."""

    l2: float
    # str(l2) -> validation metric of each lambda tried, on the users it was chosen on (the study's validation
    # sample on a large log, which the note names; ``valid`` is on all validation users)
    l2_scores_on_validation: dict[str, float]


@dataclass(frozen=True)
class Baselines:
    """The reference models' numbers (:mod:`search.references`); ``ease`` is None when it was skipped."""

    popularity: ReferenceMetrics
    ease: EaseMetrics | None
    note: str

    @classmethod
    def of(cls, refs: References) -> Baselines:
        ease = None
        if refs.ease_test is not None and refs.ease_valid is not None and refs.ease_l2 is not None:
            ease = EaseMetrics(
                valid=dict(refs.ease_valid.metrics),
                test=dict(refs.ease_test.metrics),
                l2=refs.ease_l2,
                l2_scores_on_validation={str(k): v for k, v in sorted(refs.ease_scores.items())},
            )
        popularity = ReferenceMetrics(dict(refs.popularity_valid.metrics), dict(refs.popularity_test.metrics))
        return cls(popularity, ease, refs.note)


@dataclass(frozen=True)
class PhaseTimes:
    """Where a study's wall time went (:class:`search.phases.PhaseClock`). ``seconds``: phase -> wall seconds,
    in the order the phases first ran; they are contiguous, so they sum to the study's wall time.
    ``trial_seconds``: each finished trial's own seconds (str(number) -> seconds, start to end); with several
    workers trials overlap, so their sum can exceed the ``trials`` phase. ``note``: how the phases were
    measured (the record is written before the report is built: see :mod:`search.phases`)."""

    seconds: dict[str, float]
    trial_seconds: dict[str, float]
    note: str = ""

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


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
    tracking_uri: str  # the MLflow store holding the parent run and every trial's run
    parent_run_id: str  # the study's parent MLflow run, on which this record is logged
    trials: dict[str, int]  # Optuna state (lower case) -> count
    wall_seconds: float
    steps_computed: int
    steps_unpruned: int
    # the data and split as core.prepare.Prepared.describe() gives them: shown as key-value rows, never read
    # by key ({} in a version 1 record)
    data_description: dict[str, Any] = field(default_factory=dict)
    split_description: dict[str, Any] = field(default_factory=dict)
    best_trial: BestTrial | None = None
    given_up: list[GivenUp] = field(default_factory=list)
    segmentation: SegmentCounts | None = None
    boundary_hits: list[BoundaryHit] = field(default_factory=list)
    selection: SelectionRecord | None = None  # how best_trial was chosen (search.selection)
    # filled by the final refit (absent for a study that did not finish, or helpers)
    test: dict[str, float] | None = None
    baselines: Baselines | None = None
    baselines_cached: bool = False
    vs: dict[str, dict[str, Comparison]] = field(default_factory=dict)  # reference -> metric -> comparison
    score_range: ScoreRange | None = None
    final_params: dict[str, Any] | None = None
    registry: RegistryDecision | None = None
    # bytes of the study's artifacts (its runs' folders and logged models) when the record was written, this
    # record included, the report not; None for a store that is not a local folder, or an older record
    artifact_bytes: int | None = None
    phases: PhaseTimes | None = None  # the wall time of each phase (None in a record written before them)
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
            best = self.best_trial.value if self.selection is None else self.selection.best_value
            out[mlflow_key(self.metric, "best_valid")] = float(best)  # the search's best
            out[mlflow_key(self.metric, "selected_valid")] = self.best_trial.value
        for name, value in (self.test or {}).items():
            out[mlflow_key(name, "test")] = value
        if self.artifact_bytes is not None:
            out["artifact_bytes"] = float(self.artifact_bytes)
        for name, seconds in (self.phases.seconds if self.phases is not None else {}).items():
            out[f"phase_{name}_seconds"] = seconds
        return out

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, default=json_default) + "\n").encode()

    @classmethod
    def from_json(cls, text: str | bytes, *, parent_run_id: str | None = None) -> StudyRecord:
        """The record ``text`` holds. A version 1 record does not name its parent run: ``parent_run_id``,
        the run it was read from, does (a RecordError without it)."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"{FILE_NAME} is not JSON: {exc}") from None
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        if version not in READABLE_VERSIONS:
            raise RecordError(
                f"{FILE_NAME} has schema_version {version!r}; this cftune reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))} (re-run the study with this version to rebuild it)"
            )
        if version == 1:
            if parent_run_id is None:
                raise RecordError(
                    f"a version 1 {FILE_NAME} does not name its parent run; read it from the run"
                )
            raw = {**raw, "parent_run_id": parent_run_id, "schema_version": SCHEMA_VERSION}
        try:
            return cls(**_typed({k: v for k, v in raw.items() if k in _FIELDS}))
        except (TypeError, KeyError, AttributeError) as exc:
            raise RecordError(f"{FILE_NAME} is missing fields or holds malformed ones: {exc!r}") from None


def _comparison(raw: dict[str, Any]) -> Comparison:
    parts = {k: Interval(**raw[k]) for k in ("model", "reference", "difference", "improvement_pct")}
    return Comparison(metric=raw["metric"], **parts)


def _baselines(raw: dict[str, Any]) -> Baselines:
    ease = raw.get("ease")
    return Baselines(
        popularity=ReferenceMetrics(**raw["popularity"]),
        ease=None if ease is None else EaseMetrics(**ease),
        note=raw["note"],
    )


def _typed(data: dict[str, Any]) -> dict[str, Any]:
    """The record's JSON fields with each nested part read back into its dataclass."""
    optional: dict[str, Callable[[dict[str, Any]], object]] = {
        "best_trial": lambda d: BestTrial(**d),
        "registry": lambda d: RegistryDecision(**d),
        "segmentation": lambda d: SegmentCounts(**d),
        "selection": lambda d: SelectionRecord(**d),
        "baselines": _baselines,
        "score_range": lambda d: ScoreRange(**d),
        "phases": lambda d: PhaseTimes(**d),
    }
    out = dict(data)
    for name, read in optional.items():
        if out.get(name) is not None:
            out[name] = read(out[name])
    out["given_up"] = [GivenUp(**g) for g in data.get("given_up", [])]
    out["boundary_hits"] = [BoundaryHit(**h) for h in data.get("boundary_hits", [])]
    out["vs"] = {
        ref: {metric: _comparison(c) for metric, c in per_metric.items()}
        for ref, per_metric in data.get("vs", {}).items()
    }
    return out


_FIELDS = frozenset(f.name for f in fields(StudyRecord))
