"""``python -m search.promote``: the ALS and BPR champions compared on the same data, and the
``champion`` alias of ``cf-recommender`` pointed at the winner.

Both champions must carry the same ``data_version_hash`` (data AND split): numbers from different splits are
not comparable, so that is an error, not a guess. The winner is chosen on validation NDCG@10 (the number the
champions were selected on); test NDCG@10 is recorded beside it. The comparison goes into version tags.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import CftuneError
from search.registry import GATE_METRIC, champion_of

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


def candidate(client: Any, name: str) -> Candidate:
    mv = champion_of(client, name)
    if mv is None:
        raise PromotionError(f"{name} has no @champion yet; run a study for it first")
    return Candidate(
        name=name,
        version=str(mv.version),
        valid=float(mv.tags.get(GATE_METRIC, "nan")),
        test=float(mv.tags.get("test_ndcg_at_10", "nan")),
        data_hash=mv.tags.get("data_version_hash", ""),
        source=mv.source,
        run_id=mv.run_id,
    )


def promote(client: Any, names: Sequence[str] = ("als-recommender", "bpr-recommender")) -> dict[str, Any]:
    """Register the best champion as a new version of ``cf-recommender`` and give it ``champion``."""
    from mlflow.exceptions import MlflowException

    cands = [candidate(client, n) for n in names]
    hashes = {c.data_hash for c in cands}
    if len(hashes) != 1:
        detail = ", ".join(f"{c.name} v{c.version}: {c.data_hash}" for c in cands)
        raise PromotionError(
            f"the champions were trained on different data/splits ({detail}); not comparable"
        )
    winner = max(cands, key=lambda c: c.valid)
    others = [c for c in cands if c is not winner]
    with contextlib.suppress(MlflowException):  # exists already
        client.create_registered_model(COMBINED)
    existing = client.search_model_versions(f"name = '{COMBINED}'")
    same = [v for v in existing if v.tags.get("source_model") == f"{winner.name}:{winner.version}"]
    mv = same[0] if same else client.create_model_version(COMBINED, winner.source, run_id=winner.run_id)
    tags = {
        "source_model": f"{winner.name}:{winner.version}",
        "data_version_hash": winner.data_hash,
        GATE_METRIC: repr(winner.valid),
        "test_ndcg_at_10": repr(winner.test),
        "comparison": "; ".join(
            f"{c.name} v{c.version}: valid ndcg@10 {c.valid:.6f}, test ndcg@10 {c.test:.6f}" for c in cands
        ),
        "decision_reason": f"{winner.name} has the higher validation ndcg@10 "
        + ", ".join(f"({winner.valid:.6f} vs {o.valid:.6f} for {o.name})" for o in others),
    }
    for key, value in tags.items():
        client.set_model_version_tag(COMBINED, mv.version, key, value)
    client.set_registered_model_alias(COMBINED, "champion", mv.version)
    return {
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
    args = p.parse_args(argv)
    from search.tracking import Tracker

    try:
        tracker = Tracker(args.tracking_uri)
        result = promote(tracker.client, args.models)
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for c in result["candidates"]:
        print(
            f"{c['name']:<18} v{c['version']:<4} valid ndcg@10 {c['valid']:.5f}  test ndcg@10 {c['test']:.5f}"
        )
    print(f"{COMBINED} v{result['version']} -> @champion: {result['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
