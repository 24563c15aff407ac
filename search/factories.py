"""Sampler, pruner and storage from the settings, and a trial's configuration from the space.

Grid studies do not use Optuna's ``GridSampler``: it lets two workers pick the same remaining point. The grid
is enqueued once as waiting trials (see :mod:`search.budget`), which the storage hands out one per worker.
TPE workers each sample from their own seed stream, derived from ``--seed`` and the worker's number.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import optuna

from core.bpr.settings import per_row_regularization
from core.confidence import default_mode
from core.errors import ConfigError, StoreFault
from core.faults import first_sentence
from core.params import default_params, steps_param, trainer_defaults
from core.prepare import Prepared
from search.faults import cause_at, shown_url
from search.locks import sqlite_path, store_lock, use_wal
from search.settings import HEARTBEAT_SECONDS, StudySettings
from spaces import Space, resolve_ranges

#: TPE samples at random until this many trials have finished.
TPE_STARTUP_TRIALS = 10


def choose_sampler(space: Space, settings: StudySettings) -> tuple[str, int, str]:
    """(sampler name, the study's trial budget, a sentence saying why) from --sampler / --trials."""
    grid = space.grid_size
    if settings.sampler not in (None, "grid", "tpe"):
        raise ConfigError(f"--sampler must be grid or tpe, but got {settings.sampler!r}")
    if settings.trials is not None and settings.trials < 1:
        raise ConfigError(f"--trials must be >= 1, but got {settings.trials}")
    if settings.sampler == "grid" or (
        settings.sampler is None and (settings.trials is None or settings.trials >= grid)
    ):
        if not grid:
            raise ConfigError(f"{space.source} has no grid; use --sampler tpe")
        trials = grid if settings.trials is None else min(settings.trials, grid)
        return "grid", trials, f"grid sampler over the {grid}-point grid of {space.source}"
    if not space.tpe:
        raise ConfigError(f"{space.source} has no tpe block; use --sampler grid")
    trials = settings.trials if settings.trials is not None else 100
    why = "TPE sampler"
    if settings.sampler is None:
        why += (
            f" (--trials {trials} is below the grid size {grid}, so the wide TPE space is searched instead)"
        )
    return "tpe", trials, why


def worker_seed(seed: int, worker: int) -> int:
    """Worker ``worker``'s own seed stream: distinct for every worker, reproducible from ``--seed``."""
    return int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


def make_sampler(name: str, seed: int) -> Any:
    """Grid points arrive as enqueued (fixed) trials, so a grid study's sampler is never asked for a value."""

    if name == "grid":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # multivariate TPE and constant_liar are "experimental" in name only
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: running trials count as bad guesses, so concurrent workers spread out
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=TPE_STARTUP_TRIALS, multivariate=True, group=True, constant_liar=True
        )


def warmup_steps(sampler: str, max_steps: int, every: int) -> int:
    """Steps before the median pruner may prune.

    Grid: two evaluations. Every point gets run anyway, so an early cut only risks the best point; slow
    starters (BPR at learning rate 0.01) need a second look before they are judged. TPE: a quarter of
    the longest run. Early curves cross (strongly regularised ALS starts slow and ends best), and pruned
    values teach TPE that such regions are bad: on MovieLens a 100-trial TPE study reached 0.986x EASE with
    one step of warm-up, 1.04x with five.
    """
    if sampler == "grid":
        return 2 * every
    quarter = math.ceil(max_steps / 4)
    return max(every, math.ceil(quarter / every) * every)


def make_pruner(name: str, max_steps: int, every: int, sampler: str = "grid") -> Any:

    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=5 if sampler == "grid" else 10,
            n_warmup_steps=warmup_steps(sampler, max_steps, every),
            interval_steps=1,
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=max_steps, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner must be median, hyperband or none, but got {name!r}")


def make_storage(url: str, grace_period: int) -> Any:
    """Optuna's RDB storage, its schema created under the store's lock (workers starting together on an empty
    database would otherwise race to create it). The heartbeat finds workers that died on another machine;
    on the same store, dead workers are found at once through their lease (:mod:`search.locks`)."""

    connect_args = {"timeout": 60} if url.startswith("sqlite") else {}
    try:
        with store_lock(url, "schema"):
            storage = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=min(HEARTBEAT_SECONDS, max(1, grace_period // 2)),
                grace_period=grace_period,
                engine_kwargs={"pool_pre_ping": True, "connect_args": connect_args},
            )
            if sqlite_path(url) is not None:
                use_wal(url)
                # lazy: sqlalchemy costs ~0.5 s to import: only for PostgreSQL storages
                from sqlalchemy import event

                # with WAL, NORMAL syncs at checkpoints, not at every commit; the database stays consistent
                event.listen(storage.engine, "connect", _sqlite_normal_sync)
                storage.engine.dispose()  # connections opened before the listener
            return storage
    except Exception as exc:  # SQLAlchemy raises many types for a bad URL or a server that is down
        cause = cause_at(exc, url) or first_sentence(str(exc) or type(exc).__name__)
        raise StoreFault(f"cannot open the Optuna storage {shown_url(url)}: {cause}") from None


def _sqlite_normal_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def suggest(trial: Any, space: Space, sampler: str) -> dict[str, Any]:
    """One configuration: grid values through suggest_categorical, TPE ranges through suggest_int / float."""
    if sampler == "grid":
        return {name: trial.suggest_categorical(name, values) for name, values in space.grid.items()}
    params: dict[str, Any] = {}
    for name, r in space.tpe.items():
        if r.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(r.choices))
        elif r.type == "int":
            step = int(r.step) if r.step else 1
            params[name] = trial.suggest_int(name, int(r.low), int(r.high), step=step, log=r.log)  # type: ignore[arg-type]
        else:
            params[name] = trial.suggest_float(name, r.low, r.high, step=r.step, log=r.log)  # type: ignore[arg-type]
    return params


def starting_points(space: Space, data_default: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The TPE trials to enqueue before the sampler's own: the model's data-driven default configuration
    (:func:`data_default`), then the space's ``start`` list. Each is kept to the space's TPE parameters and
    clipped into their ranges (a relative range's bounds are known per study only); a duplicate point is
    enqueued once."""
    points: list[dict[str, Any]] = []
    for given in ([data_default] if data_default else []) + list(space.start):
        point = _clipped(space, given)
        if point and point not in points:
            points.append(point)
    return points


def _clipped(space: Space, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` kept to the space's TPE parameters, each number clipped into its range (onto its steps), a
    choice the range does not have left out."""
    point: dict[str, Any] = {}
    for name, r in space.tpe.items():
        if name not in given:
            continue
        value = given[name]
        if r.type == "categorical":
            if value in r.choices:
                point[name] = value
            continue
        assert r.low is not None and r.high is not None
        value = min(max(float(value), r.low), r.high)
        if r.step:  # onto the range's steps, as Optuna's distributions require
            value = min(r.low + round((value - r.low) / r.step) * r.step, r.high)
        point[name] = round(value) if r.type == "int" else value
    return point


def max_steps(space: Space, model: str) -> int:
    key = steps_param(model)
    values: list[float] = []
    if key in space.grid:
        values += [float(v) for v in space.grid[key]]
    if key in space.tpe and space.tpe[key].high is not None:
        values.append(float(space.tpe[key].high))  # type: ignore[arg-type]
    if key in space.fixed:
        values.append(float(space.fixed[key]))
    return int(max(values)) if values else (15 if model == "als" else 50)


def study_space(
    model: str, space: Space, sampler: str, prepared: Prepared
) -> tuple[Space, dict[str, dict[str, float]], dict[str, Any]]:
    """``space`` with its relative ranges resolved on ``prepared`` (:func:`spaces.resolve_ranges`), what was
    resolved, and the data-driven default (:func:`data_default`; empty where neither a TPE study's first
    trial nor a relative range needs it, as it reads the whole training data)."""
    needed = sampler == "tpe" or any(r.relative is not None for r in space.tpe.values())
    default = data_default(model, prepared, space.fixed.get("trainer")) if needed else {}
    resolved, ranges = resolve_ranges(space, default)
    return resolved, ranges, default


def data_default(model: str, prepared: Prepared, trainer: str | None = None) -> dict[str, Any]:
    """The configuration ``python -m core.train`` picks for this data (:mod:`core.defaults`; for BPR, that of
    the space's ``trainer``), with the confidence mode its alpha was set for: a TPE study's first trial.

    For BPR it is complete: what the data does not set is the trainer's own default (its optimizer, sampling
    and loss options), and an unset ``reg_user`` / ``reg_pos`` / ``reg_neg`` is the ``regularization`` it
    falls back to, so that a space searching them starts from the same model, not a random one."""

    mode = default_mode(prepared.split.train)
    params = default_params(model, None, prepared, confidence_mode=mode, trainer=trainer)
    if model == "bpr":
        params = {**trainer_defaults(trainer or "kernel"), **params}
        names = ("reg_user", "reg_pos", "reg_neg")
        resolved = per_row_regularization(params["regularization"], *(params.get(name) for name in names))
        params.update({name: value for name, value in zip(names, resolved, strict=True) if name in params})
    return {**params, "confidence": mode, "positives": "all"}
