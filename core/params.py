"""The parameter registry: which parameters each model and BPR trainer takes, of what kind, with which named
choices, how a configuration becomes an estimator, and which parameter counts training steps.

One source for the ``--param`` check, the search-space loader and the fits: none of them drifts from the
estimators' constructors, which are read here (names, annotations, defaults) rather than restated.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Literal, get_args, get_type_hints

from core.confidence import CONFIDENCE_MODES, ConfidenceMode
from core.defaults import als_defaults, bpr_defaults, data_stats
from core.errors import ConfigError
from core.prepare import Prepared

ModelName = Literal["als", "bpr"]


MODELS: tuple[str, ...] = ("als", "bpr")


#: ALS's pipeline parameters (the confidence of a cell, which interactions it learns from).
ALS_PIPELINE_PARAMS = ("confidence", "positives")


#: BPR's pipeline parameter: which trainer fits it (:data:`TRAINERS`).
BPR_PIPELINE_PARAMS = ("trainer",)


#: Parameters the pipeline consumes itself; everything else goes to the model's constructor.
PIPELINE_PARAMS = (*ALS_PIPELINE_PARAMS, *BPR_PIPELINE_PARAMS)


Positives = Literal["all", "liked"]


#: What ALS trains on: ``all`` interactions (a 1-star rating is still a purchase, weighted by its
#: confidence), or the ``liked`` ones only, BPR's positives (:meth:`Interactions.positive_mask`: rating >= the
#: positive threshold, 4 by default; every play of count data). Held-out truth is the liked items either way.
POSITIVES: tuple[str, ...] = ("all", "liked")


#: BPR's trainers: ``kernel`` (:class:`core.bpr.BPR`, the numba SGD kernel, the default) or ``torch``
#: (:class:`core.bpr.advanced.FlatTorchBPR`: mini-batches, adaptive optimizers, schedules, dropout, mixed
#: negative sources).
TRAINERS: tuple[str, ...] = ("kernel", "torch")


#: The allowed values of each pipeline parameter.
PIPELINE_CHOICES: dict[str, tuple[str, ...]] = {
    "confidence": CONFIDENCE_MODES,
    "positives": POSITIVES,
    "trainer": TRAINERS,
}


def estimator(model: str, trainer: str = "kernel") -> type[Any]:
    """The estimator class that fits ``model`` (BPR: with ``trainer``), imported on first use.

    Lazy on purpose: the estimators' modules load numba (``core.ranking``, ``core.bpr.kernel``) and implicit,
    0.7 s of the 1.8 s that ``python -X importtime -c "import core.params"`` took when they were imported at
    the top, and this registry is imported by ``spaces/``, which must stay light."""
    if model == "als":
        from core.als import ALS

        return ALS
    if model != "bpr":
        raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")
    if trainer == "torch":
        return torch_settings().FlatTorchBPR  # type: ignore[no-any-return]
    from core.bpr.model import BPR

    return BPR


def torch_settings() -> ModuleType:
    """:mod:`core.bpr.advanced` (the torch trainer's flat settings and their named choices), imported on first
    use for the reason :func:`estimator` gives (importing it loads the ``core.bpr`` package's kernel)."""
    import core.bpr.advanced

    return core.bpr.advanced


def als_presets() -> ModuleType:
    """:mod:`core.als` (its presets), imported on first use for the reason :func:`estimator` gives."""
    import core.als

    return core.als


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model constructor params, pipeline params)."""
    model = {k: v for k, v in params.items() if k not in PIPELINE_PARAMS}
    pipeline = {k: v for k, v in params.items() if k in PIPELINE_PARAMS}
    return model, pipeline


def make_model(model: str, params: dict[str, Any]) -> Any:
    """An unfitted ALS or BPR estimator from constructor params (pipeline params are read and dropped: BPR's
    ``trainer`` picks :class:`core.bpr.BPR` or :class:`core.bpr.advanced.FlatTorchBPR`)."""
    trainer = check_bpr_params(params) if model == "bpr" else "kernel"
    return estimator(model, trainer)(**split_params(params)[0])


def _ctor_names(ctor: Callable[..., None]) -> frozenset[str]:
    return frozenset(name for name in inspect.signature(ctor).parameters if name != "self")


def _trainer_ctor(trainer: str) -> Callable[..., None]:
    return estimator("bpr", trainer).__init__  # type: ignore[misc]


def trainer_params(trainer: str) -> frozenset[str]:
    """The constructor parameters of a BPR trainer: :class:`core.bpr.BPR`'s (``kernel``), whatever they are
    when this runs, or :class:`core.bpr.advanced.FlatTorchBPR`'s (``torch``)."""
    return _ctor_names(_trainer_ctor(trainer))


def trainer_defaults(trainer: str) -> dict[str, Any]:
    """What each constructor parameter of a BPR trainer (:func:`trainer_params`) is when not given."""
    return {
        name: p.default
        for name, p in inspect.signature(_trainer_ctor(trainer)).parameters.items()
        if name != "self" and p.default is not inspect.Parameter.empty
    }


def check_bpr_params(params: Mapping[str, Any]) -> str:
    """BPR's trainer (``trainer``, default ``kernel``), after checking that every parameter given is one that
    trainer takes: a parameter of the other trainer only is a one-line :class:`ConfigError` naming both."""
    trainer = params.get("trainer") or "kernel"
    if trainer not in TRAINERS:
        raise ConfigError(f"trainer must be one of {TRAINERS}, but got trainer={trainer!r}.")
    other = "torch" if trainer == "kernel" else "kernel"
    own, theirs = trainer_params(trainer), trainer_params(other)
    for name in params:
        if name in own or name not in theirs:
            continue
        why = ""
        if trainer == "kernel" and (name.endswith("_ratio") or name.startswith("curriculum")):
            why = (
                " (the kernel draws its non-uniform negatives from one hard-negative row per user at one "
                "hard_ratio: merged sources would be weighted by their row sizes, not by their own ratios, "
                "and the mix could not change over the epochs)"
            )
        raise ConfigError(f"{name} applies to trainer={other} only, but got trainer={trainer}{why}")
    return trainer


def param_kinds(model: str) -> dict[str, str | None]:
    """Every parameter :func:`fit_model` takes for ``model`` -> ``"int"``, ``"float"`` or ``"bool"``, read
    from the estimator's constructor annotations (None: anything else, e.g. the pipeline's ``confidence``).
    BPR's are both trainers' (:class:`core.bpr.BPR`, :class:`core.bpr.advanced.FlatTorchBPR`) and
    ``trainer``; which of them a configuration may use is :func:`check_bpr_params`'s rule. One source for the
    ``--param`` check and the search-space loader: neither drifts from the estimators."""
    ctors: list[Callable[..., None]]
    extra: tuple[str, ...]
    if model == "als":
        ctors, extra = [estimator("als").__init__], ALS_PIPELINE_PARAMS  # type: ignore[misc]
    elif model == "bpr":
        ctors, extra = [_trainer_ctor("kernel"), _trainer_ctor("torch")], BPR_PIPELINE_PARAMS
    else:
        raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")
    kinds: dict[str, str | None] = dict.fromkeys(extra)
    for ctor in ctors:
        hints = get_type_hints(ctor)
        for name in inspect.signature(ctor).parameters:
            if name != "self" and name not in kinds:
                types = set(get_args(hints.get(name)) or [hints.get(name)]) - {type(None)}
                kinds[name] = next((k.__name__ for k in (bool, int, float) if types == {k}), None)
    return kinds


def param_choices(model: str) -> dict[str, tuple[str, ...]]:
    """The named values a parameter of ``model`` allows (the others are numbers, bools or free)."""
    if model == "als":
        return {name: PIPELINE_CHOICES[name] for name in ALS_PIPELINE_PARAMS}
    if model == "bpr":
        torch = torch_settings()
        return {
            "trainer": TRAINERS,
            "optimizer": torch.OPTIMIZERS,
            "scheduler": torch.SCHEDULERS,
            "curriculum": torch.CURRICULA,
        }
    raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")


def kind_mismatch(kind: str | None, value: object) -> str | None:
    """What is wrong with ``value`` for a parameter of ``kind`` (None: nothing). A bool is not a number, an
    int parameter takes an int only, and a number must be finite."""
    if kind is None:
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "expects true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "expects a number"
    if not math.isfinite(value):
        return "expects a finite number"
    if kind == "int" and not isinstance(value, int):
        return "expects a whole number"
    return None


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--param expects key=value, but got {text!r}")
    key, raw = text.split("=", 1)
    value: Any = raw
    for cast in (int, float):
        try:
            value = cast(raw)
            break
        except ValueError:
            continue
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    return key.strip(), value


def parse_params(model: str, texts: Sequence[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` overrides, each checked against what ``model`` accepts: an unknown key or a value
    of the wrong kind is a one-line error naming it, before any data is read."""
    kinds, choices = param_kinds(model), param_choices(model)
    out: dict[str, Any] = {}
    for text in texts:
        key, value = _parse_param(text)
        if key not in kinds:
            raise ConfigError(f"--param {text!r}: {model} has no parameter {key!r}; known: {sorted(kinds)}")
        if kinds[key] == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)  # 1e2 -> 100
        problem = kind_mismatch(kinds[key], value)
        if key in choices and value not in choices[key]:
            problem = f"must be one of {choices[key]}"
        if problem is not None:
            raise ConfigError(f"--param {text!r}: {key} {problem}, but got {value!r}")
        out[key] = value
    if model == "bpr":  # the trainer takes each of them, and its constructor accepts their values
        make_model(model, out)
    return out


def check_preset(model: str, preset: str | None) -> None:
    """``--preset`` names one of the ALS presets (BPR has none)."""
    if preset is None:
        return
    if model != "als":
        raise ConfigError("--preset applies to ALS only")
    presets = als_presets().PRESETS
    if preset not in presets:
        raise ConfigError(f"unknown ALS preset {preset!r}; choose one of {sorted(presets)}")


def stopped_at(model: str, params: dict[str, Any], step: int) -> dict[str, Any]:
    """``params`` for a fit that ends at ``step`` where the fit of ``params`` stood at that step: the step
    count set to ``step`` and, for the torch trainer, the learning-rate curve kept at its full length
    (``schedule_epochs``), so that a refit at a trial's best epoch follows the trial's own curve."""
    out = dict(params)
    name = steps_param(model)
    if model == "bpr" and out.get("trainer") == "torch" and out.get("schedule_epochs") is None:
        full = out.get(name, inspect.signature(_trainer_ctor("torch")).parameters[name].default)
        out["schedule_epochs"] = int(full)
    out[name] = int(step)
    return out


def steps_param(model: str) -> str:
    """The parameter that counts training steps: ALS iterations, BPR epochs."""
    return "iterations" if model == "als" else "epochs"


#: What the data-driven BPR settings (:func:`core.defaults.bpr_defaults`) pass on to the torch trainer: the
#: data's shape, the model's form and the per-triplet L2 (the same penalty in both trainers: each row read by
#: a triplet shrinks once per read). The kernel's SGD learning rate and its step decay mean nothing to an
#: adaptive optimizer.
TORCH_FROM_DEFAULTS: tuple[str, ...] = (
    "factors",
    "epochs",
    "samples_per_epoch",
    "hard_ratio",
    "item_bias",
    "regularization",
)


def default_params(
    model: str,
    preset: str | None,
    prepared: Prepared,
    *,
    confidence_mode: ConfidenceMode | None = None,
    trainer: str | None = None,
) -> dict[str, Any]:
    """An ALS preset by name, or else settings from the shape of the training data (:mod:`core.defaults`:
    users, items, density, liked interactions, mean confidence). ``confidence_mode`` is the ALS confidence the
    fit will use (None: the data's default); alpha is set from its mean. BPR with ``trainer="torch"`` keeps
    :data:`TORCH_FROM_DEFAULTS` of them."""
    if preset is not None:
        if model != "als":
            raise ConfigError("--preset applies to ALS only")
        return als_presets().preset_params(preset)  # type: ignore[no-any-return]
    if model not in MODELS:
        raise ConfigError(f"model must be one of {MODELS}, but got {model=}.")
    stats = data_stats(
        prepared.split.train, confidence_mode=confidence_mode, positive_threshold=prepared.positive_threshold
    )
    if model == "als":
        return als_defaults(stats)
    params = bpr_defaults(stats)
    if trainer == "torch":  # the data's shape carries over; the rest is the torch trainer's own defaults
        return {name: params[name] for name in TORCH_FROM_DEFAULTS if name in params}
    return params
