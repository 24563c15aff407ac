"""The registry's aliases as a rule: a pure function of the registered versions, checked by hand, and the same
answer whichever of two concurrent registrations writes last."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from search.registry import (
    CHALLENGER,
    CHAMPION,
    DATA_CHAMPION,
    GATE_METRIC_TAG,
    Entry,
    data_alias,
    entries,
    settle,
    standing,
)

A, B = "a" * 16, "b" * 16


def test_the_best_version_on_the_champions_data_is_champion_and_the_runner_up_challenger() -> None:
    versions = [Entry(1, A, 0.30), Entry(2, A, 0.35), Entry(3, A, 0.32)]
    st = standing(versions, champion_version=1)
    assert (st.champion, st.challenger) == (versions[1], versions[2])
    assert st.decision(versions[0])[0] == CHALLENGER
    assert st.decision(versions[1]) == (
        CHAMPION,
        "best validation ndcg@10 on data aaaaaaaa: 0.350000 > v3 0.320000",
    )


def test_a_tie_keeps_the_earlier_version() -> None:
    st = standing([Entry(1, A, 0.3), Entry(2, A, 0.3)], champion_version=2)
    assert st.champion == Entry(1, A, 0.3)


def test_other_data_never_takes_champion_but_gets_its_own_alias() -> None:
    versions = [Entry(1, A, 0.10), Entry(2, B, 0.90), Entry(3, A, 0.12)]
    st = standing(versions, champion_version=1)
    assert st.champion == versions[2] and st.scope == A
    assert st.best_by_data == {A: versions[2], B: versions[1]}
    decision, reason = st.decision(versions[1])
    assert decision == DATA_CHAMPION and f"@{data_alias(B)}" in reason and "@champion is v3" in reason
    # alternating datasets: more versions on B never move champion off A
    st2 = standing([*versions, Entry(4, B, 0.95)], champion_version=3)
    assert st2.champion == versions[2]


def test_without_a_champion_the_first_registered_versions_data_decides() -> None:
    st = standing([Entry(2, B, 0.9), Entry(1, A, 0.1)], champion_version=None)
    assert st.champion == Entry(1, A, 0.1) and st.challenger is None
    assert standing([], champion_version=None).champion is None


def test_versions_are_ranked_by_their_studys_metric(tmp_path: Path) -> None:
    """Two versions of a ``--metric recall@20`` study: recall@20 decides, though NDCG@10 says the opposite."""
    uri = f"sqlite:///{tmp_path}/registry.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("gate-model")
    for recall, ndcg in ((0.40, 0.30), (0.50, 0.20)):
        tags = {
            "data_version_hash": A,
            GATE_METRIC_TAG: "recall@20",
            "valid_recall_at_20": repr(recall),
            "valid_ndcg_at_10": repr(ndcg),
        }
        client.create_model_version("gate-model", "file:///nowhere", tags=tags)
    st = settle(client, "gate-model")
    assert st.champion == Entry(2, A, 0.50, "recall@20")
    assert st.challenger == Entry(1, A, 0.40, "recall@20")
    champion = client.get_model_version_by_alias("gate-model", CHAMPION)
    assert int(champion.version) == 2
    reason = "best validation recall@20 on data aaaaaaaa: 0.500000 > v1 0.400000"
    assert champion.tags["decision_reason"] == reason


class _Version:
    def __init__(self, version: int, tags: dict[str, str]) -> None:
        self.version, self.tags = version, tags


def test_a_version_without_a_gate_metric_tag_is_ranked_on_ndcg_at_10() -> None:
    """Versions registered before the ``gate_metric`` tag keep their rank: their ``valid_ndcg_at_10``."""
    old = _Version(1, {"data_version_hash": A, "valid_ndcg_at_10": "0.3", "valid_recall_at_20": "0.9"})
    new = _Version(2, {"data_version_hash": A, GATE_METRIC_TAG: "ndcg@10", "valid_ndcg_at_10": "0.25"})
    assert entries([old, new]) == [Entry(1, A, 0.3), Entry(2, A, 0.25)]
    assert standing(entries([old, new]), None).champion == Entry(1, A, 0.3, "ndcg@10")


def _register_and_settle(uri: str, value: float, barrier: Any) -> None:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    barrier.wait()  # both register, then both settle, as close together as two processes get
    version = client.create_model_version(
        "race-model", "file:///nowhere", tags={"data_version_hash": A, "valid_ndcg_at_10": repr(value)}
    )
    assert version.version
    settle(client, "race-model")


@pytest.mark.slow
def test_two_concurrent_registrations_always_end_on_the_better_version(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for rep in range(10):
        uri = f"sqlite:///{tmp_path}/registry-{rep}.db"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_registered_model("race-model")
        barrier = ctx.Barrier(2)
        values = (0.2, 0.3) if rep % 2 else (0.3, 0.2)  # the better one registers first half the time
        procs = [ctx.Process(target=_register_and_settle, args=(uri, v, barrier)) for v in values]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
        champion = client.get_model_version_by_alias("race-model", CHAMPION)
        assert float(champion.tags["valid_ndcg_at_10"]) == 0.3
        for v in client.search_model_versions("name = 'race-model'"):
            expected = CHAMPION if v.version == champion.version else CHALLENGER
            assert v.tags["decision"] == expected  # every tag agrees with the final aliases
        assert client.get_model_version_by_alias("race-model", CHALLENGER).tags["valid_ndcg_at_10"] == "0.2"
