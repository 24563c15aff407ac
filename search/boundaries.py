"""Is the best trial on an edge of the search space? Then the optimum may lie outside it, and the user should
widen the space before trusting the study.

Ranges (TPE): a numeric parameter hits a bound when the best value lies within :data:`TOLERANCE` (2%) of the
range's width from it, measured on the scale the range is sampled on: log ranges in log space, others
linearly. For ``regularization`` in [1e-3, 1e3] on a log scale (6 decades) that is 0.12 decades, so values
from 1e3 / 10**0.12 = 759 up hit the upper bound; for ``iterations`` in [5, 30], only 5 and 30 do.

Grid: a numeric parameter with at least :data:`MIN_GRID_VALUES` (3) values hits an end when the best point
takes its smallest or largest value. With two values every value is an end, so the warning would say nothing;
with three or more, a best point at an end means the metric was still improving where the grid stopped.

Categorical parameters have no edges.

Both the trial with the best validation value and the trial the selection rule hands on
(:mod:`search.selection`) are checked: the rule steps back to stronger regularization, so the handed-on trial
can sit on an edge (an upper bound of ``regularization`` or ``alpha``) where the best one does not, and then
it is the model a user gets that the edge limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search.record import BoundaryHit
from spaces import ParamRange, Space

TOLERANCE = 0.02
MIN_GRID_VALUES = 3

__all__ = ["MIN_GRID_VALUES", "TOLERANCE", "BoundaryHit", "boundary_hits", "edge_hits", "position"]


def _number(value: object) -> float | None:
    """``value`` as a float when it is a number (a bool is not), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def position(value: float, r: ParamRange) -> float:
    """Where ``value`` lies in ``r``: 0 at ``low``, 1 at ``high``, on the range's scale (log or linear)."""
    assert r.low is not None and r.high is not None
    scale = math.log if r.log else float
    return (scale(value) - scale(r.low)) / (scale(r.high) - scale(r.low))


def edge_hits(
    space: Space, sampler: str, best: Mapping[str, Any], selected: Mapping[str, Any] | None
) -> list[BoundaryHit]:
    """The edges that the best trial's parameters (``best``) and, where the rule handed on another trial,
    the selected one's (``selected``; None where it is the best) sit on."""
    hits = boundary_hits(space, sampler, best)
    if selected is not None:
        hits += boundary_hits(space, sampler, selected, trial="selected")
    return hits


def boundary_hits(
    space: Space,
    sampler: str,
    params: Mapping[str, Any],
    *,
    tolerance: float = TOLERANCE,
    trial: str = "best",
) -> list[BoundaryHit]:
    """The numeric parameters whose value in ``params`` (the ``trial``'s: "best" or "selected") sits on an
    edge of ``space``: its grid's ends for a grid study, its TPE ranges' bounds otherwise."""
    hits: list[BoundaryHit] = []
    if sampler == "grid":
        for name, values in space.grid.items():
            numbers = [n for n in map(_number, values) if n is not None]
            value = _number(params.get(name))
            if len(values) < MIN_GRID_VALUES or len(numbers) < len(values) or value is None:
                continue
            for side, end in (("lower", min(numbers)), ("upper", max(numbers))):
                if value == end:
                    hits.append(BoundaryHit(name, side, end, value, space.source, sampler, trial))
        return hits
    for name, r in space.tpe.items():
        value = _number(params.get(name))
        if r.type == "categorical" or value is None or (r.log and value <= 0):
            continue
        at = position(value, r)
        for side, bound, near in (("lower", r.low, at <= tolerance), ("upper", r.high, at >= 1 - tolerance)):
            if near:
                assert bound is not None
                hits.append(BoundaryHit(name, side, bound, value, space.source, sampler, trial))
    return hits
