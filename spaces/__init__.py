"""Search spaces as YAML: a grid (the seed's) and a TPE space per model, validated on load.

A space file has ``model`` (als or bpr), optional ``fixed`` parameters passed to every trial, a ``grid`` of
value lists and a ``tpe`` block of ranges::

    factors: {type: int, low: 16, high: 256, log: true}
    confidence: {type: categorical, choices: [rating_quality, binary]}

Parameter names are checked against the model's constructor (plus the pipeline's ``confidence``), so a typo is
an error naming the file and the key, never a silently ignored setting. YAML is read with ``safe_load``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError

SPACES_DIR = Path(__file__).resolve().parent
#: Constructor arguments that are run settings, not hyperparameters.
NOT_SEARCHABLE = frozenset({"random_state", "num_threads", "show_progress", "calculate_training_loss"})
PARAM_TYPES = ("int", "float", "categorical")


@dataclass(frozen=True)
class ParamRange:
    """One TPE dimension: an int or float range (optionally log-scaled, stepped), or categorical choices."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Space:
    model: str
    grid: dict[str, list[Any]]
    tpe: dict[str, ParamRange]
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) if self.grid else 0


def searchable_params(model: str) -> frozenset[str]:
    """Hyperparameters a space may name: the estimator's constructor arguments and the pipeline's own."""
    from core.train import PIPELINE_PARAMS

    ctor: Callable[..., None]
    if model == "als":
        from core.als import ALS

        ctor, extra = ALS.__init__, set(PIPELINE_PARAMS)
    elif model == "bpr":
        from core.bpr import BPR

        ctor, extra = BPR.__init__, set()
    else:
        raise ConfigError(f"model must be 'als' or 'bpr', but got {model!r}")
    names = {p for p in inspect.signature(ctor).parameters if p != "self"}
    return frozenset((names - NOT_SEARCHABLE) | extra)


def _fail(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {message}")


def _parse_range(source: str, name: str, spec: object) -> ParamRange:
    where = f"tpe.{name}"
    if not isinstance(spec, dict):
        raise _fail(
            source, where, f"expected a mapping like {{type: float, low: .., high: ..}}, got {spec!r}"
        )
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
    if unknown:
        raise _fail(source, where, f"unknown keys {sorted(unknown)}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise _fail(source, where, f"type must be one of {PARAM_TYPES}, got {kind!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _fail(source, where, "categorical needs a non-empty list of choices")
        return ParamRange(name, kind, choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(source, where, f"{key} must be a number, got {value!r}")
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if not low < high:
        raise _fail(source, where, f"low must be < high, got low={low}, high={high}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise _fail(source, where, f"a log scale needs low > 0, got low={low}")
    step = spec.get("step")
    if step is not None and (log or not isinstance(step, int | float) or step <= 0):
        raise _fail(source, where, f"step must be a positive number and cannot go with log, got {step!r}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise _fail(source, where, f"an int range needs whole bounds, got low={low}, high={high}")
    return ParamRange(name, kind, float(low), float(high), log, None if step is None else float(step))


def parse_space(raw: object, *, source: str = "<memory>", model: str | None = None) -> Space:
    """Validate a parsed YAML document; errors name the file and the offending key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a space file is a mapping with model, grid and tpe")
    unknown_top = set(raw) - {"model", "grid", "tpe", "fixed"}
    if unknown_top:
        raise _fail(
            source, "top level", f"unknown keys {sorted(unknown_top)} (expected model, grid, tpe, fixed)"
        )
    file_model = raw.get("model")
    if file_model not in ("als", "bpr"):
        raise _fail(source, "model", f"must be 'als' or 'bpr', got {file_model!r}")
    if model is not None and file_model != model:
        raise _fail(source, "model", f"this space is for {file_model!r}, but the study is for {model!r}")
    known = searchable_params(file_model)
    blocks: dict[str, dict[str, Any]] = {}
    for block in ("grid", "tpe", "fixed"):
        value = raw.get(block) or {}
        if not isinstance(value, dict):
            raise _fail(source, block, f"must be a mapping of parameter names, got {value!r}")
        bad = sorted(set(value) - known)
        if bad:
            raise _fail(
                source, f"{block}.{bad[0]}", f"unknown parameter; known for {file_model}: {sorted(known)}"
            )
        blocks[block] = value
    grid: dict[str, list[Any]] = {}
    for name, values in blocks["grid"].items():
        if not isinstance(values, list) or not values:
            raise _fail(source, f"grid.{name}", f"needs a non-empty list of values, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise _fail(source, f"grid.{name}", f"repeated values in {values}")
        grid[name] = values
    tpe = {name: _parse_range(source, name, spec) for name, spec in blocks["tpe"].items()}
    clash = sorted(set(blocks["fixed"]) & (set(grid) | set(tpe)))
    if clash:
        raise _fail(source, f"fixed.{clash[0]}", "is also searched in grid or tpe; fix it or search it")
    if not grid and not tpe:
        raise _fail(source, "grid/tpe", "a space needs a grid, a tpe block, or both")
    return Space(file_model, grid, tpe, dict(blocks["fixed"]), source)


def load_space(model: str, path: str | Path | None = None) -> Space:
    """The built-in ``spaces/<model>.yaml``, or a user's own file."""
    file = Path(path) if path is not None else SPACES_DIR / f"{model}.yaml"
    if not file.is_file():
        raise ConfigError(f"{file}: search space file not found")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_space(raw, source=str(file), model=model)
