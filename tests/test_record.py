"""The study record round-trips through its one JSON writer and reader, and a version 1 record (written by
the code before the record named its parent run, ``tests/data/summary_v1.json``) still reads, typed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.evaluate import Comparison, Interval, ScoreRange
from reports import summary
from reports.analysis import StudyReport
from reports.markdown import markdown
from reports.sources import StudyResults, read_record_file
from search.record import (
    SCHEMA_VERSION,
    Baselines,
    BestTrial,
    BoundaryHit,
    EaseMetrics,
    GivenUp,
    RecordError,
    ReferenceMetrics,
    RegistryDecision,
    SegmentCounts,
    SelectionRecord,
    StudyRecord,
)

V1 = Path(__file__).parent / "data" / "summary_v1.json"


def _interval(value: float) -> Interval:
    return Interval(value, value - 0.01, value + 0.02)


def full_record() -> StudyRecord:
    """A record with every nested part filled (finite numbers, so that equality is exact)."""
    comparison = Comparison("ndcg@10", _interval(0.3), _interval(0.1), _interval(0.2), _interval(200.0))
    return StudyRecord(
        study_name="als-x",
        model="als",
        status="FINISHED",
        data_source="synthetic",
        synthetic=True,
        data_version_hash="0123456789abcdef",
        metric="ndcg@10",
        sampler="tpe",
        pruner="median",
        tracking_uri="sqlite:///mlflow.db",
        parent_run_id="parent123",
        trials={"complete": 2, "pruned": 1},
        wall_seconds=1.5,
        steps_computed=30,
        steps_unpruned=45,
        data_description={"users": 10, "rating_share": {"5": 0.5}},
        split_description={"strategy": "random", "seed": 0},
        best_trial=BestTrial(1, {"factors": 8}, {"factors": 8, "x": 1}, 0.3, 15, {"ndcg@10": 0.3}, "run1"),
        given_up=[GivenUp({"factors": 4}, "diverged", [0, 3])],
        segmentation=SegmentCounts(10, 8, 2, 5, 1, 2, ">= 2 interactions"),
        boundary_hits=[BoundaryHit("factors", "upper", 8.0, 8.0, "als.yaml", "tpe")],
        selection=SelectionRecord("one-se", 1, 2, 0.31, 0.01, 2, "a note"),
        test={"ndcg@10": 0.3},
        baselines=Baselines(
            ReferenceMetrics({"ndcg@10": 0.09}, {"ndcg@10": 0.1}),
            EaseMetrics({"ndcg@10": 0.28}, {"ndcg@10": 0.29}, 10.0, {"10.0": 0.28}),
            "EASE lambda 10",
        ),
        baselines_cached=True,
        vs={"popularity": {"ndcg@10": comparison}, "ease": {"ndcg@10": comparison}},
        score_range=ScoreRange("validation_set", -1.0, 1.0, 0.0, 0.5, -0.5, 0.5, 100),
        final_params={"factors": 8, "random_state": 0},
        registry=RegistryDecision("als-recommender", "1", "champion", "why", 0.3, None, None, "c", "m", "r"),
    )


def test_round_trip_is_the_identity() -> None:
    record = full_record()
    back = StudyRecord.from_json(record.to_json())
    assert back == record
    assert back.to_json() == record.to_json()
    assert isinstance(back.vs["ease"]["ndcg@10"].improvement_pct, Interval)
    assert back.schema_version == SCHEMA_VERSION


def test_round_trip_of_an_unfinished_study() -> None:
    record = replace(
        full_record(), status="KILLED", best_trial=None, selection=None, test=None, baselines=None, vs={}
    )
    record = replace(record, score_range=None, segmentation=None, registry=None, given_up=[])
    assert StudyRecord.from_json(record.to_json()) == record


def test_a_version_1_record_reads_typed_with_the_run_it_came_from() -> None:
    record = StudyRecord.from_json(V1.read_text(), parent_run_id="from-the-run")
    raw = json.loads(V1.read_text())
    assert record.schema_version == SCHEMA_VERSION and record.parent_run_id == "from-the-run"
    assert record.data_description == {} and record.split_description == {}
    assert record.tracking_uri == raw["tracking_uri"]
    pop = record.vs["popularity"]["ndcg@10"]
    assert pop.model.value == raw["vs"]["popularity"]["ndcg@10"]["model"]["value"] == record.test["ndcg@10"]
    assert record.baselines is not None and record.baselines.ease is not None
    assert record.baselines.popularity.test["ndcg@10"] == raw["baselines"]["popularity"]["test"]["ndcg@10"]
    assert record.baselines.ease.l2 == raw["baselines"]["ease"]["l2"]
    assert record.segmentation is not None and record.segmentation.users_trainable == 1495
    assert record.selection is not None and record.selection.note is None
    assert record.score_range is not None and record.score_range.num_samples == 258795
    # read again as version 2, it is the same record
    assert StudyRecord.from_json(record.to_json()) == record


def test_a_version_1_record_needs_the_run_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="does not name its parent run"):
        StudyRecord.from_json(V1.read_text())
    path = tmp_path / "summary.json"
    path.write_text(V1.read_text())
    with pytest.raises(RecordError, match="does not name its parent run"):
        read_record_file(path)


@pytest.mark.parametrize("version", [None, 0, 3, "2"])
def test_an_unknown_version_is_refused(version: object) -> None:
    raw = json.loads(full_record().to_json())
    raw["schema_version"] = version
    with pytest.raises(RecordError, match="reads versions 1, 2"):
        StudyRecord.from_json(json.dumps(raw))


def test_malformed_parts_are_a_record_error() -> None:
    raw = json.loads(full_record().to_json())
    del raw["vs"]["ease"]["ndcg@10"]["difference"]
    with pytest.raises(RecordError, match="malformed"):
        StudyRecord.from_json(json.dumps(raw))
    with pytest.raises(RecordError, match="not JSON"):
        StudyRecord.from_json("{")


def test_the_report_reads_a_version_1_record_as_the_old_code_printed_it() -> None:
    """The Markdown numbers of the old record are those its own report (by the old code) printed."""
    record = StudyRecord.from_json(V1.read_text(), parent_run_id="p")
    rows = {row[0]: row for row in summary.test_rows(record)}
    assert rows["ndcg@10"][1:] == [
        "0.2424",
        "[0.2256, 0.2595]",
        "0.0719",
        "0.2504",
        "+237.3% [+193.7, +288.5]",
        "-3.2% [-7.3, +0.8]",
    ]
    assert summary.verdict(record).startswith("ALS, best of 3 trials (trial 2), reaches test ndcg@10 0.2424")
    said = summary.verdict(record)
    assert "vs popularity (significant)" in said and "(not significant)" in said
    assert "| 6000 | 1495 | 4505 |" in markdown_of(record)


def markdown_of(record: StudyRecord) -> str:
    results = StudyResults(None, record, None, record.tracking_uri, None, "no final run")
    return markdown(StudyReport(results, None, None, None))
