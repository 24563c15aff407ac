"""``python -m search.promote``: the ALS and BPR models compared on one data + split, and the ``champion``
alias of ``cf-recommender`` pointed at the winner.

The data compared is said first: ``--data-hash H`` (a prefix of ``data_version_hash``), else the data of
``als-recommender@champion``. Each model's candidate is its best version on that data
(``@champion-<data>``); numbers from different splits are never compared. The winner is chosen on validation
NDCG@10 (the number versions are ranked on); test NDCG@10 is recorded beside it, and the comparison goes into
version tags. ``--data-hash`` also moves each model's ``champion`` to that data (see :mod:`search.registry`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import CftuneError
from core.names import filter_value
from search.registry import GATE_METRIC_TAG, TEST_TAG, champion_of, data_alias, gate_key, gate_metric, settle
from search.tracking import Tracker

COMBINED = "cf-recommender"


class PromotionError(CftuneError):
    """Nothing to promote: a champion is missing, or the champions were trained on different data."""


@dataclass(frozen=True)
class Candidate:
    name: str
    version: str
    valid: float
    test: float
    data_hash: str
    source: str
    run_id: str | None
    metric: str  # what ``valid`` measures: the version's gate metric


def data_of(client: Any, names: Sequence[str], data_hash: str | None) -> str:
    """The full data hash to compare on: the one ``data_hash`` starts, else the first model's champion's."""
    if data_hash is None:
        mv = champion_of(client, names[0])
        if mv is None:
            raise PromotionError(f"{names[0]} has no @champion yet; run a study for it first")
        return str(mv.tags.get("data_version_hash", ""))
    found = {
        str(v.tags.get("data_version_hash", ""))
        for name in names
        for v in client.search_model_versions(f"name = {filter_value(name)}")
        if str(v.tags.get("data_version_hash", "")).startswith(data_hash)
    }
    if len(found) != 1:
        what = "no registered version" if not found else f"several ({', '.join(sorted(found))})"
        raise PromotionError(f"--data-hash {data_hash!r} matches {what}")
    return found.pop()


def candidate(client: Any, name: str, data_hash: str) -> Candidate:
    mv = champion_of(client, name, data_alias(data_hash))
    if mv is None:
        raise PromotionError(
            f"{name} has no version trained on data {data_hash[:8]} (@{data_alias(data_hash)}); "
            "run a study for it on that data first"
        )
    metric = gate_metric(mv.tags)
    return Candidate(
        name=name,
        version=str(mv.version),
        valid=float(mv.tags.get(gate_key(metric), "nan")),
        test=float(mv.tags.get(TEST_TAG, "nan")),
        data_hash=mv.tags.get("data_version_hash", ""),
        source=mv.source,
        run_id=mv.run_id,
        metric=metric,
    )


def promote(
    client: Any,
    names: Sequence[str] = ("als-recommender", "bpr-recommender"),
    data_hash: str | None = None,
) -> dict[str, Any]:
    """Register the best model on one data as a new version of ``cf-recommender`` and give it ``champion``."""
    # lazy: mlflow costs ~3.5 s to import (-X importtime): only when the tracking store is used
    from mlflow.exceptions import MlflowException

    full_hash = data_of(client, names, data_hash)
    cands = [candidate(client, n, full_hash) for n in names]
    if data_hash is not None:  # the user chose this data: each model's champion moves to it
        for c in cands:
            settle(client, c.name, scope_version=int(c.version))
    winner = max(cands, key=lambda c: c.valid)
    others = [c for c in cands if c is not winner]
    with contextlib.suppress(MlflowException):  # exists already
        client.create_registered_model(COMBINED)
    existing = client.search_model_versions(f"name = {filter_value(COMBINED)}")
    same = [v for v in existing if v.tags.get("source_model") == f"{winner.name}:{winner.version}"]
    mv = same[0] if same else client.create_model_version(COMBINED, winner.source, run_id=winner.run_id)
    tags = {
        "source_model": f"{winner.name}:{winner.version}",
        "data_version_hash": winner.data_hash,
        GATE_METRIC_TAG: winner.metric,
        gate_key(winner.metric): repr(winner.valid),
        TEST_TAG: repr(winner.test),
        "comparison": "; ".join(
            f"{c.name} v{c.version}: valid {c.metric} {c.valid:.6f}, test ndcg@10 {c.test:.6f}" for c in cands
        ),
        "decision_reason": f"{winner.name} has the higher validation {winner.metric} "
        + ", ".join(f"({winner.valid:.6f} vs {o.valid:.6f} for {o.name})" for o in others),
    }
    for key, value in tags.items():
        client.set_model_version_tag(COMBINED, mv.version, key, value)
    client.set_registered_model_alias(COMBINED, "champion", mv.version)
    return {
        "data_version_hash": full_hash,
        "winner": winner.name,
        "winner_version": winner.version,
        "version": str(mv.version),
        "candidates": [c.__dict__ for c in cands],
        "reason": tags["decision_reason"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m search.promote", description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--models", nargs="+", default=["als-recommender", "bpr-recommender"])
    p.add_argument("--data-hash", default=None, help="compare on this data (a data_version_hash prefix)")
    args = p.parse_args(argv)
    try:
        tracker = Tracker(args.tracking_uri)
        result = promote(tracker.client, args.models, args.data_hash)
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"comparing on data {result['data_version_hash']} (data + split)")
    for c in result["candidates"]:
        print(
            f"{c['name']:<18} v{c['version']:<4} valid {c['metric']} {c['valid']:.5f}  "
            f"test ndcg@10 {c['test']:.5f}"
        )
    print(f"{COMBINED} v{result['version']} -> @champion: {result['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
