"""BPR's step budget at scale: how many samples one epoch of a search trial draws, from the data's size and
the configuration's cost per sample.

The BPR space counts training in epochs of ``samples_per_epoch`` (5) samples per liked interaction, and two
of its parameters multiply the work of a sample: ``n_negatives`` negatives per positive, each the best-scored
of ``n_candidates`` draws. That does not scale. On the ML-1M shape (``bench/scale.py --cli 1m``: 6,040 users
x 3,706 items, 1.0M interactions, about 372,000 liked in training) a 60-trial TPE study was stopped after
520 s: trial 3 (201 factors, 76 epochs, 4 negatives of 7 candidates) ran 398 s alone, and the ETA was 2h42m
against a 10-minute goal; at the ML-20M shape every epoch is ten times longer again. With this budget the
same study took 830 s (``bench/results/scale.json``).

Up to :data:`REFERENCE_LIKED` liked training interactions nothing changes (every dataset of
``bench/quality.py`` and ``bench/bpr_quality.py`` is below it). Above it, a search trial's epoch

- draws ``samples_per_epoch * sqrt(REFERENCE_LIKED / liked)`` samples per liked interaction: an epoch grows
  with the square root of the data, not with it (a large log's passes each carry more data);
- and is counted in work, not in positives: a sample of ``n`` negatives of ``c`` candidates costs
  ``n * (1 + CANDIDATE_COST * (c - 1))`` plain samples, so its epoch draws that many times fewer. The
  count phases in between :data:`REFERENCE_LIKED` and twice that (the cost's exponent goes from 0 to 1 with
  ``log2(liked / REFERENCE_LIKED)``), so no configuration's epoch jumps at a size.

Every configuration then costs, per epoch, what its factors cost, and TPE compares them at equal compute.
The epoch's size is written into the trial's parameters (``params_full``), so the refit repeats it. Only the
compiled kernel's trainer (the BPR space's) is budgeted; the torch trainer's epochs stay as they are.
"""

from __future__ import annotations

import math
from typing import Any

from core.defaults import BPR_SAMPLES_PER_EPOCH
from core.prepare import Prepared

#: Liked training interactions up to which a search trial's epoch is the space's.
REFERENCE_LIKED = 200_000
#: One more candidate's score, in plain samples' updates (bench/bpr_throughput.py: 9.1M samples/s with
#: hard negatives against 4.2M/s with 4 candidates: 3 more candidates cost 1.15 samples).
CANDIDATE_COST = 0.4


def liked_interactions(prepared: Prepared) -> int:
    """The training interactions BPR learns from (``positives: liked``, its default)."""
    train = prepared.split.train
    return int(train.positive_mask(prepared.positive_threshold).sum())


def sample_cost(params: dict[str, Any]) -> float:
    """A sample's work in plain samples: its negatives, each scored over its candidates."""
    negatives = int(params.get("n_negatives", 1) or 1)
    candidates = int(params.get("n_candidates", 1) or 1)
    return negatives * (1.0 + CANDIDATE_COST * (candidates - 1))


def epoch_samples(samples_per_epoch: float, liked: int, cost: float) -> float:
    """Samples per liked interaction that one budgeted epoch draws (the rule of the module docstring)."""
    if liked <= REFERENCE_LIKED:
        return float(samples_per_epoch)
    ratio = liked / REFERENCE_LIKED
    weight = min(1.0, math.log2(ratio))
    return float(f"{samples_per_epoch / math.sqrt(ratio) / cost**weight:.4g}")


def applies(model: str, params: dict[str, Any], liked: int) -> bool:
    """Whether ``params`` train the compiled kernel's BPR (the only trainer budgeted) on a log above
    :data:`REFERENCE_LIKED` liked training interactions."""
    return model == "bpr" and (params.get("trainer") or "kernel") == "kernel" and liked > REFERENCE_LIKED


def budgeted(model: str, params: dict[str, Any], liked: int) -> dict[str, Any]:
    """``params`` with a search trial's epoch size; unchanged for ALS, the torch trainer and small data."""
    if not applies(model, params, liked):
        return params
    per = params.get("samples_per_epoch", BPR_SAMPLES_PER_EPOCH)
    return {**params, "samples_per_epoch": epoch_samples(per, liked, sample_cost(params))}


def budget_note(model: str, fixed: dict[str, Any], prepared: Prepared) -> str | None:
    """The line a study prints where its trials' epochs are budgeted; None where they are the space's."""
    if not applies(model, fixed, liked := liked_interactions(prepared)):
        return None
    per = fixed.get("samples_per_epoch", BPR_SAMPLES_PER_EPOCH)
    plain = epoch_samples(per, liked, 1.0)
    return (
        f"step budget: {liked:,} liked training interactions (over {REFERENCE_LIKED:,}): an epoch draws "
        f"{plain:g} samples per liked interaction instead of {per:g}, fewer for more negatives or candidates "
        "(search.step_budget)"
    )
