"""Search spaces as YAML: a grid (the seed's) and a TPE space per model, validated on load.

A space file has ``model`` (als or bpr), optional ``fixed`` parameters passed to every trial, a ``grid`` of
value lists and a ``tpe`` block of ranges::

    factors: {type: int, low: 16, high: 256, log: true}
    alpha: {type: float, relative: [0.1, 10], log: true}
    confidence: {type: categorical, choices: [rating_quality, binary]}

A ``relative`` range is ``[a, b]`` times the data-driven default of the parameter (:mod:`core.defaults`) on
the study's training data: where the data sets a parameter's scale (ALS's alpha follows the confidence scale,
its regularization the density), a fixed range fits some logs and misses others. :func:`resolve_ranges`
turns it into an absolute range once per study, before any trial; the study prints and records it.

Parameter names are checked against the model's constructor (plus the pipeline's ``confidence``), so a typo is
an error naming the file and the key, never a silently ignored setting. BPR's names are both trainers' (the
numba kernel's and the torch trainer's, :func:`core.params.param_kinds`) and ``trainer``; each name must be
one that every trainer the space can pick takes (``trainer`` fixed, searched, or else the kernel). A named
value (``trainer``, ``optimizer``, ``scheduler``, ``curriculum``, ALS's ``confidence``) must be one the model
knows.
YAML is read with ``safe_load``, which takes ``1e-4`` (no dot) for a string: a string where a number belongs
is an error that says how to write it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from core.defaults import sig3
from core.errors import ConfigError
from core.params import kind_mismatch, param_choices, param_kinds, trainer_params

SPACES_DIR = Path(__file__).resolve().parent
#: Constructor arguments that are run settings, not hyperparameters.
NOT_SEARCHABLE = frozenset(
    {"random_state", "num_threads", "show_progress", "calculate_training_loss", "device", "schedule_epochs"}
)
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
    #: ``[a, b]`` times the data-driven default, for :func:`resolve_ranges`; ``low`` and ``high`` are None
    #: until then. Left out of the repr, which the study's fingerprint hashes: a resolved range is its bounds.
    relative: tuple[float, float] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Space:
    model: str
    grid: dict[str, list[Any]]
    tpe: dict[str, ParamRange]
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    #: TPE trials enqueued before the sampler's own: configurations known to do well across datasets.
    start: tuple[dict[str, Any], ...] = ()

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) if self.grid else 0


def searchable_params(model: str) -> frozenset[str]:
    """Hyperparameters a space may name: the estimator's constructor arguments and the pipeline's own."""
    if model not in ("als", "bpr"):
        raise ConfigError(f"model must be 'als' or 'bpr', but got {model!r}")
    return frozenset(set(param_kinds(model)) - NOT_SEARCHABLE)


def _fail(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {message}")


def yaml_number(text: str) -> str | None:
    """``text`` written so that YAML reads a number (``1e-4`` -> ``1.0e-4``: YAML 1.1 floats need a dot and a
    signed exponent), or None when it is no number."""
    mantissa, e, exponent = text.strip().lower().partition("e")
    if e:
        mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
        exponent = exponent if exponent[:1] in ("+", "-") else f"+{exponent}"
    candidate = f"{mantissa}{e}{exponent}"
    try:
        number = yaml.safe_load(candidate)
    except yaml.YAMLError:
        return None
    return candidate if isinstance(number, int | float) and not isinstance(number, bool) else None


def _check_value(
    source: str, where: str, value: object, kind: str | None, choices: tuple[str, ...] | None = None
) -> None:
    """A value of a parameter of ``kind`` (see :func:`core.params.param_kinds`), one of ``choices`` when it
    has named values; a number YAML left a string is named as such."""
    if kind in ("int", "float") and isinstance(value, str) and (fix := yaml_number(value)) is not None:
        raise _fail(source, where, f"{value!r} is a string; write {fix}")
    problem = kind_mismatch(kind, value)
    if problem is None and choices is not None and value not in choices:
        problem = f"must be one of {list(choices)}"
    if problem is not None:
        raise _fail(source, where, f"{problem}, got {value!r}")


def _parse_range(
    source: str, name: str, spec: object, value_kind: str | None, choices: tuple[str, ...] | None = None
) -> ParamRange:
    where = f"tpe.{name}"
    if not isinstance(spec, dict):
        raise _fail(
            source, where, f"expected a mapping like {{type: float, low: .., high: ..}}, got {spec!r}"
        )
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices", "relative"}
    if unknown:
        raise _fail(source, where, f"unknown keys {sorted(unknown)}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise _fail(source, where, f"type must be one of {PARAM_TYPES}, got {kind!r}")
    if kind == "categorical" and "relative" in spec:
        raise _fail(source, where, "a categorical parameter has no relative range")
    if kind == "categorical":
        listed = spec.get("choices")
        if not isinstance(listed, list) or not listed:
            raise _fail(source, where, "categorical needs a non-empty list of choices")
        for choice in listed:
            _check_value(source, f"{where}.choices", choice, value_kind, choices)
        return ParamRange(name, kind, choices=tuple(listed))
    if "relative" in spec:
        return _parse_relative(source, where, name, kind, spec)
    low, high = spec.get("low"), spec.get("high")
    for key in ("low", "high", "step"):
        if key != "step" or spec.get(key) is not None:
            _check_value(source, f"{where}.{key}", spec.get(key), "float")
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


def _parse_relative(source: str, where: str, name: str, kind: str, spec: dict[str, Any]) -> ParamRange:
    """``{type: int|float, relative: [a, b], log: ..}``: ``0 < a < b`` times the data default."""
    rel = spec["relative"]
    if set(spec) & {"low", "high", "step"}:
        raise _fail(source, where, "relative replaces low and high (and takes no step)")
    numbers = isinstance(rel, list) and len(rel) == 2 and all(_is_number(x) for x in rel)
    if not numbers or not 0 < rel[0] < rel[1]:
        raise _fail(source, f"{where}.relative", f"must be [a, b] with 0 < a < b (multiples), got {rel!r}")
    return ParamRange(name, kind, log=bool(spec.get("log", False)), relative=(float(rel[0]), float(rel[1])))


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def resolve_ranges(space: Space, default: Mapping[str, Any]) -> tuple[Space, dict[str, dict[str, float]]]:
    """``space`` with each ``relative`` range made absolute around ``default`` (the data-driven default
    configuration, :func:`search.factories.data_default`), and what was resolved: per name the default, the
    multiples and the bounds. Float bounds keep 3 significant digits; int bounds are whole (at least 1) and
    apart."""
    tpe, resolved = dict(space.tpe), {}
    for name, r in space.tpe.items():
        if r.relative is None or r.low is not None:
            continue
        given: Any = default.get(name)
        base = float(given) if _is_number(given) else 0.0
        if base <= 0:
            raise _fail(
                space.source,
                f"tpe.{name}",
                f"a relative range needs a positive data-driven default of {name}, but the default has "
                f"{given!r}",
            )
        a, b = r.relative
        if r.type == "int":
            low = float(max(1, math.floor(base * a)))
            high = float(max(low + 1, math.ceil(base * b)))
        else:
            low, high = sig3(base * a), sig3(base * b)
        tpe[name] = replace(r, low=low, high=high)
        resolved[name] = {"default": base, "times_low": a, "times_high": b, "low": low, "high": high}
    return replace(space, tpe=tpe), resolved


def relative_ranges(space: Space) -> dict[str, list[float]]:
    """The resolved bounds of ``space``'s relative ranges, by name (what a study records)."""
    return {
        n: [r.low, r.high]
        for n, r in space.tpe.items()
        if r.relative is not None and r.low is not None and r.high is not None
    }


def ranges_note(resolved: Mapping[str, Mapping[str, float]]) -> str | None:
    """The line a study prints for its relative ranges (None without any)."""
    if not resolved:
        return None
    parts = [
        f"{n} {r['low']:g}..{r['high']:g} ({r['times_low']:g}x-{r['times_high']:g}x the default "
        f"{r['default']:.3g})"
        for n, r in resolved.items()
    ]
    return "ranges from the data: " + ", ".join(parts)


def parse_space(raw: object, *, source: str = "<memory>", model: str | None = None) -> Space:
    """Validate a parsed YAML document; errors name the file and the offending key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a space file is a mapping with model, grid and tpe")
    unknown_top = set(raw) - {"model", "grid", "tpe", "fixed", "start"}
    if unknown_top:
        expected = "model, grid, tpe, fixed, start"
        raise _fail(source, "top level", f"unknown keys {sorted(unknown_top)} (expected {expected})")
    file_model = raw.get("model")
    if file_model not in ("als", "bpr"):
        raise _fail(source, "model", f"must be 'als' or 'bpr', got {file_model!r}")
    if model is not None and file_model != model:
        raise _fail(source, "model", f"this space is for {file_model!r}, but the study is for {model!r}")
    known = searchable_params(file_model)
    kinds, choices = param_kinds(file_model), param_choices(file_model)
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
        for value in values:
            _check_value(source, f"grid.{name}", value, kinds[name], choices.get(name))
        grid[name] = values
    tpe = {
        name: _parse_range(source, name, spec, kinds[name], choices.get(name))
        for name, spec in blocks["tpe"].items()
    }
    for name, value in blocks["fixed"].items():
        _check_value(source, f"fixed.{name}", value, kinds[name], choices.get(name))
    clash = sorted(set(blocks["fixed"]) & (set(grid) | set(tpe)))
    if clash:
        raise _fail(source, f"fixed.{clash[0]}", "is also searched in grid or tpe; fix it or search it")
    if not grid and not tpe:
        raise _fail(source, "grid/tpe", "a space needs a grid, a tpe block, or both")
    if file_model == "bpr":
        _check_trainers(source, blocks, tpe)
    start = _parse_start(source, raw.get("start") or [], tpe, kinds)
    return Space(file_model, grid, tpe, dict(blocks["fixed"]), source, start)


def _check_trainers(source: str, blocks: dict[str, dict[str, Any]], tpe: dict[str, ParamRange]) -> None:
    """Every BPR parameter a space names is one that every trainer it can pick takes, so that no trial fails
    for a parameter of the other trainer (:func:`core.params.check_bpr_params`)."""
    searched = [*blocks["grid"].get("trainer", []), *(tpe["trainer"].choices if "trainer" in tpe else ())]
    trainers = [blocks["fixed"]["trainer"]] if "trainer" in blocks["fixed"] else searched or ["kernel"]
    for trainer in dict.fromkeys(trainers):
        takes = trainer_params(trainer)
        for block in ("fixed", "grid", "tpe"):
            for name in blocks[block]:
                if name != "trainer" and name not in takes:
                    raise _fail(
                        source,
                        f"{block}.{name}",
                        f"trainer={trainer} has no such parameter (the space can pick trainer={trainer})",
                    )


def _parse_start(
    source: str, raw: object, tpe: dict[str, ParamRange], kinds: dict[str, str | None]
) -> tuple[dict[str, Any], ...]:
    """``start``: a list of configurations inside the TPE ranges (a missing parameter is sampled)."""
    if not isinstance(raw, list):
        raise _fail(source, "start", f"must be a list of configurations, got {raw!r}")
    points = []
    for n, point in enumerate(raw):
        where = f"start[{n}]"
        if not isinstance(point, dict) or not point:
            raise _fail(source, where, f"must be a mapping of tpe parameters to values, got {point!r}")
        for name, value in point.items():
            if name not in tpe:
                raise _fail(source, f"{where}.{name}", f"is not in the tpe block ({sorted(tpe)})")
            r = tpe[name]
            if r.type == "categorical":
                if value not in r.choices:
                    raise _fail(source, f"{where}.{name}", f"{value!r} is not one of {list(r.choices)}")
                continue
            _check_value(source, f"{where}.{name}", value, kinds[name])
            if r.relative is not None:  # bounds known per study: clipped into them when enqueued
                continue
            assert r.low is not None and r.high is not None
            if not r.low <= value <= r.high:
                raise _fail(source, f"{where}.{name}", f"{value} is outside the range [{r.low}, {r.high}]")
        points.append(dict(point))
    return tuple(points)


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
