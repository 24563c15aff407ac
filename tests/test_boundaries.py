"""The boundary warning: the best trial on an edge of the space says "widen the space"; an interior best, a
categorical parameter or a two-valued grid never does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from search.boundaries import BoundaryHit, boundary_hits, edge_hits, position
from search.record import StudyRecord
from search.summary import format_summary
from spaces import Space, load_space, parse_space


@pytest.fixture(scope="module")
def als() -> Space:
    """The shipped ALS space with its data-relative ranges fixed, as a study resolves them: regularization in
    [1e-3, 1e3] log, alpha in [0.05, 50] log, iterations in [5, 30] linear."""
    raw = yaml.safe_load(Path(load_space("als").source).read_text())
    raw["tpe"]["regularization"] = {"type": "float", "low": 1e-3, "high": 1e3, "log": True}
    raw["tpe"]["alpha"] = {"type": "float", "low": 0.05, "high": 50.0, "log": True}
    return parse_space(raw, source=load_space("als").source, model="als")


def distributions(space: Space) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for name, r in space.tpe.items():
        assert r.low is not None or r.type == "categorical"
        if r.type == "categorical":
            out[name] = CategoricalDistribution(r.choices)
        elif r.type == "int":
            out[name] = IntDistribution(int(r.low), int(r.high), log=r.log)  # type: ignore[arg-type]
        else:
            out[name] = FloatDistribution(r.low, r.high, log=r.log)  # type: ignore[arg-type]
    return out


def study_of(space: Space, trials: list[tuple[float, dict[str, Any]]]) -> optuna.Study:
    """An in-memory study holding finished trials (value, params): no training."""
    study = optuna.create_study(direction="maximize")
    dists = distributions(space)
    for value, params in trials:
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params}, value=value)
        )
    return study


INTERIOR = {"factors": 64, "regularization": 1.0, "alpha": 2.0, "iterations": 15, "confidence": "binary"}


def test_a_best_trial_on_the_upper_bound_of_a_log_range_fires(als: Space) -> None:
    study = study_of(
        als,
        [
            (0.30, INTERIOR),
            (0.35, {**INTERIOR, "regularization": 990.0}),  # the best
            (0.10, {**INTERIOR, "alpha": 0.05}),  # on an edge, but not the best
        ],
    )
    hits = boundary_hits(als, "tpe", study.best_trial.params)
    assert hits == [BoundaryHit("regularization", "upper", 1000.0, 990.0, als.source, "tpe")]
    assert hits[0].message() == (
        f"regularization hit the upper bound 1000 of {als.source} (best trial: 990): widen the space"
    )


def test_the_selected_trial_on_an_edge_fires_where_the_best_is_inside(als: Space) -> None:
    """The one-SE rule steps back to stronger regularization: the trial handed on may sit on the edge the
    best trial does not (issue 23: alpha 49.99 of 50 selected, 43.4 best)."""
    best = {**INTERIOR, "alpha": 43.4, "regularization": 631.0}
    selected = {**INTERIOR, "alpha": 49.99, "regularization": 801.5}
    hits = edge_hits(als, "tpe", best, selected)
    assert hits == [  # 801.5 is within 2% of the 6 decades below 1000 (from 759 up); 631 is not
        BoundaryHit("regularization", "upper", 1000.0, 801.5, als.source, "tpe", "selected"),
        BoundaryHit("alpha", "upper", 50.0, 49.99, als.source, "tpe", "selected"),
    ]
    assert hits[1].message() == (
        f"alpha hit the upper bound 50 of {als.source} (selected trial: 49.99): widen the space"
    )
    assert edge_hits(als, "tpe", best, None) == []  # the selected trial is the best: looked at once


def test_both_trials_on_edges_give_one_warning_each(als: Space) -> None:
    best = {**INTERIOR, "regularization": 990.0}
    selected = {**INTERIOR, "regularization": 1000.0, "factors": 16}
    hits = edge_hits(als, "tpe", best, selected)
    assert [(h.param, h.side, h.trial) for h in hits] == [
        ("regularization", "upper", "best"),
        ("factors", "lower", "selected"),
        ("regularization", "upper", "selected"),
    ]


def test_an_interior_best_trial_does_not_fire(als: Space) -> None:
    study = study_of(
        als,
        [
            (0.35, INTERIOR),
            (0.30, {**INTERIOR, "regularization": 1000.0, "factors": 256, "iterations": 5}),
            (0.20, {**INTERIOR, "alpha": 0.05, "confidence": "rating"}),
        ],
    )
    assert boundary_hits(als, "tpe", study.best_trial.params) == []


@pytest.mark.parametrize(
    ("name", "value", "side"),
    [
        # log range [1e-3, 1e3]: 2% of 6 decades = 0.12 decades, so the edges are at
        # 1e-3 * 10**0.12 = 1.318e-3 and 1e3 / 10**0.12 = 758.6
        ("regularization", 770.0, "upper"),
        ("regularization", 740.0, None),
        ("regularization", 0.0013, "lower"),
        ("regularization", 0.00134, None),
        # linear range [5, 30]: 2% of 25 = 0.5, so only the bounds themselves
        ("iterations", 30, "upper"),
        ("iterations", 29, None),
        ("iterations", 5, "lower"),
        ("iterations", 6, None),
        ("confidence", "rating_quality", None),  # categorical: no edges
    ],
)
def test_the_tolerance_is_2_percent_of_the_width_on_the_sampled_scale(
    als: Space, name: str, value: Any, side: str | None
) -> None:
    hits = boundary_hits(als, "tpe", {**INTERIOR, name: value})
    assert [(h.param, h.side) for h in hits] == ([] if side is None else [(name, side)])


def test_position_is_measured_on_the_ranges_scale(als: Space) -> None:
    assert position(1.0, als.tpe["regularization"]) == pytest.approx(0.5)  # 1 is mid-way on a log scale
    assert position(17.5, als.tpe["iterations"]) == pytest.approx(0.5)


def test_a_grid_best_at_an_end_of_three_or_more_values_fires() -> None:
    space = parse_space(
        {
            "model": "bpr",
            "grid": {
                "learning_rate": [0.01, 0.05, 0.1],
                "regularization": [1e-5, 1e-4, 1e-3],
                "epochs": [30, 50],  # two values: every value is an end, so never a warning
            },
        },
        source="bpr-space.yaml",
    )
    best = {"learning_rate": 0.1, "regularization": 1e-5, "epochs": 50}
    hits = boundary_hits(space, "grid", best)
    assert [(h.param, h.side, h.bound) for h in hits] == [
        ("learning_rate", "upper", 0.1),
        ("regularization", "lower", 1e-5),
    ]
    assert hits[0].message().startswith("learning_rate hit the largest grid value 0.1 of bpr-space.yaml")
    assert boundary_hits(space, "grid", {**best, "learning_rate": 0.05, "regularization": 1e-4}) == []


def record_with(hits: list[BoundaryHit]) -> StudyRecord:
    from search.record import BestTrial

    record = StudyRecord(
        study_name="s",
        model="als",
        status="FINISHED",
        data_source="d",
        synthetic=False,
        data_version_hash="h",
        metric="ndcg@10",
        sampler="tpe",
        pruner="median",
        tracking_uri="u",
        parent_run_id="p",
        trials={"complete": 3},
        wall_seconds=1.0,
        steps_computed=3,
        steps_unpruned=3,
        boundary_hits=hits,
    )
    record.best_trial = BestTrial(
        1, {"regularization": 990.0}, {"regularization": 990.0}, 0.35, None, {}, None
    )
    return record


def test_the_warning_is_in_the_summary_and_the_record(als: Space) -> None:
    hit = BoundaryHit("regularization", "upper", 1000.0, 990.0, als.source, "tpe")
    record = record_with([hit])
    assert f"  warning: {hit.message()}" in format_summary(record).splitlines()
    assert StudyRecord.from_json(record.to_json()).boundary_hits == [hit]
    assert "warning" not in format_summary(record_with([]))


def test_a_record_written_before_boundary_hits_still_loads() -> None:
    import json

    raw = json.loads(record_with([]).to_json())
    del raw["boundary_hits"]
    assert StudyRecord.from_json(json.dumps(raw)).boundary_hits == []
