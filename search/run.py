"""``python -m search.run``: an Optuna study over a model's space, every trial tracked in MLflow, the best
trial refit on train + validation, tested once, registered, and gated into the ``champion`` alias.

Resuming: the same command continues the study (same name, same storage). Finished grid points are not run
again; a trial that was interrupted (Ctrl-C, kill -9: detected by the storage heartbeat) is failed and its
point queued again. Pruning reports validation NDCG through the core's per-iteration callback.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CftuneError, ConfigError, ModelFitError
from core.split import SPLIT_STRATEGIES
from core.train import (
    Prepared,
    fit_model,
    metric_k,
    prepare,
    steps_param,
    validate,
    validation_monitor,
)
from search.summary import format_summary, json_bytes, steps_of, summarize, trial_line
from search.tracking import StudyTracking
from spaces import Space, load_space

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
#: Datasets known by name under the shared data folder.
DATASETS = {"ml-100k": "ml-100k", "lastfm-2k": "lastfm-2k", "amazon-beauty": "amazon-beauty"}
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 6
STORAGE_ATTEMPTS = 5
#: A point that failed this often (not by divergence) is a bug, not an interruption: it is not retried.
MAX_FAILURES = 3


@dataclass
class StudySettings:
    """Everything a study run depends on, parsed from the command line."""

    model: str
    trials: int | None = None
    sampler: str | None = None
    pruner: str = "median"
    data: str | None = None
    dataset: str | None = None
    split: str = "auto"
    metric: str = "ndcg@10"
    study_name: str | None = None
    storage: str = DEFAULT_STORAGE
    seed: int = 42
    space: str | None = None
    tracking_uri: str | None = None
    eval_every: int | None = None
    register: bool = True
    report: bool = True
    quiet: bool = False
    ks: tuple[int, ...] = (10, 20)
    grace_period: int = GRACE_SECONDS


# ---------------------------------------------------------------------------------------------- inputs
def data_dir() -> Path:
    import os

    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("CFTUNE_DATA_DIR", default))


def load_prepared(settings: StudySettings) -> tuple[Prepared, str]:
    """Data by path, by known name, or the embedded synthetic set; returns it prepared plus a short label."""
    from core.train import load_data

    if settings.data and settings.dataset:
        raise ConfigError("--data and --dataset are alternatives; give one")
    path: str | None = settings.data
    label = "synthetic"
    if settings.dataset:
        if settings.dataset == "synthetic":
            path = None
        elif settings.dataset in DATASETS:
            path = str(data_dir() / DATASETS[settings.dataset])
            label = settings.dataset
        else:
            raise ConfigError(
                f"unknown --dataset {settings.dataset!r}; known: synthetic, {', '.join(DATASETS)}"
            )
    elif path:
        label = Path(path).resolve().name if Path(path).is_dir() else Path(path).stem.split(".")[0]
    data = load_data(path, seed=settings.seed)
    prepared = prepare(data, split_strategy=settings.split, seed=settings.seed)  # type: ignore[arg-type]
    return prepared, label


def choose_sampler(space: Space, settings: StudySettings) -> tuple[str, int, str]:
    """(sampler name, number of trials, a sentence saying why) from --sampler / --trials and the space."""
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


def make_sampler(name: str, space: Space, seed: int) -> Any:
    import optuna

    if name == "grid":
        return optuna.samplers.GridSampler(space.grid, seed=seed)
    with warnings.catch_warnings():  # multivariate TPE is "experimental" in name only, stable for years
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True)


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
    import optuna

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


def make_storage(url: str, grace_period: int = GRACE_SECONDS) -> Any:
    """RDB storage with a heartbeat: a trial whose worker died (no heartbeat for ``grace_period`` seconds)
    is failed by the next worker and its point retried.

    Workers started together on an empty database race to create Optuna's tables; the loser sees a
    duplicate-key error from the schema, so creation is retried a few times before it counts as a failure.
    """
    import random

    import optuna

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=min(HEARTBEAT_SECONDS, max(1, grace_period // 2)),
                grace_period=grace_period,
                # a trial found stale while this worker runs is queued again at once (grid point kept)
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_FAILURES
                ),
                engine_kwargs={"pool_pre_ping": True},
            )
        except Exception as exc:  # SQLAlchemy raises many types for a bad URL or a server that is down
            attempt += 1
            message = str(exc)
            if attempt < STORAGE_ATTEMPTS and ("duplicate key" in message or "already exists" in message):
                time.sleep(0.2 + random.random())  # let the other worker finish creating the schema
                continue
            first_line = message.splitlines()[0][:300]
            raise ConfigError(f"cannot open the Optuna storage {url}: {first_line}") from None


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


# ---------------------------------------------------------------------------------------------- resuming
def search_fingerprint(space: Space, settings: StudySettings, sampler: str) -> str:
    """What must not change when a study is resumed: the metric, the space, the sampler and the seed."""
    import hashlib
    import json

    blob = json.dumps(
        {
            "metric": settings.metric,
            "sampler": sampler,
            "seed": settings.seed,
            "grid": space.grid if sampler == "grid" else None,
            "tpe": {k: repr(v) for k, v in space.tpe.items()} if sampler == "tpe" else None,
            "fixed": space.fixed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _point(trial: Any) -> object:
    """The configuration a trial stands for: its grid point, or its parameters."""
    if "grid_id" in trial.system_attrs:
        return ("grid", trial.system_attrs["grid_id"])
    return ("params", tuple(sorted(trial.params.items())))


def counts_as_done(trial: Any) -> bool:
    """Finished for good: complete, pruned, diverged (it would diverge again), or failed too often."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("failure") in ("diverged", "gave up")


def requeue_interrupted(study: Any) -> list[int]:
    """Fail trials whose worker died (stale heartbeat), then queue every failed point again, unless it
    diverged (it would again), another trial already holds it, or it has failed ``MAX_FAILURES`` times (a
    bug, not an interruption: it is then marked as given up). Returns the requeued trial numbers."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    held = {_point(t) for t in trials if t.state != TrialState.FAIL or counts_as_done(t)}
    failures: dict[object, int] = {}
    for t in trials:
        if t.state == TrialState.FAIL:
            failures[_point(t)] = failures.get(_point(t), 0) + 1
    requeued = []
    for t in trials:
        if t.state != TrialState.FAIL or _point(t) in held:
            continue
        if failures[_point(t)] >= MAX_FAILURES:
            study._storage.set_trial_user_attr(t._trial_id, "failure", "gave up")  # finished trials allow it
            held.add(_point(t))
            continue
        if "grid_id" not in t.system_attrs and not t.params:
            continue
        attrs = {k: v for k, v in t.system_attrs.items() if k in ("grid_id", "search_space")}
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=t.params,
                distributions=t.distributions,
                user_attrs={"retry_of": t.number},
                system_attrs=attrs,
            )
        )
        held.add(_point(t))
        requeued.append(t.number)
    return requeued


# ---------------------------------------------------------------------------------------------- objective
class Objective:
    """Fit one configuration on train, report validation to Optuna every few steps, log it all to MLflow."""

    def __init__(
        self,
        settings: StudySettings,
        prepared: Prepared,
        space: Space,
        sampler: str,
        every: int,
        tracking: StudyTracking,
    ) -> None:
        self.settings = settings
        self.prepared = prepared
        self.space = space
        self.sampler = sampler
        self.every = every
        self.tracking = tracking

    def __call__(self, trial: Any) -> float:
        import optuna

        s = self.settings
        params = {**self.space.fixed, **suggest(trial, self.space, self.sampler), "random_state": s.seed}
        steps: list[tuple[int, float]] = []

        last = steps_of(s.model, params)

        def on_evaluate(step: int, metrics: dict[str, float]) -> None:
            value = metrics[s.metric]
            steps.append((step, value))
            # the objective returns the best evaluated step, so pruning judges the best so far too
            trial.report(max(v for _, v in steps), step)
            if step < last and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} with {s.metric}={value:.5f}")

        # every `every` steps and at the end; the model ends on its best evaluated step (early stopping)
        monitor = validation_monitor(
            self.prepared,
            metric=s.metric,
            every=self.every,
            on_evaluate=on_evaluate,
            restore_best=True,
            last_step=last,
        )
        run_id = self.tracking.start_trial(trial.number, params)
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("steps_total", last)
        trial.set_user_attr("params_full", {k: v for k, v in params.items() if k != "random_state"})
        t0 = time.perf_counter()
        try:
            fitted = fit_model(self.prepared, s.model, params, callback=monitor)
            valid = validate(self.prepared, fitted, ks=s.ks)
        except optuna.TrialPruned:
            trial.set_user_attr("steps_computed", steps[-1][0] if steps else 0)
            self.tracking.end_trial(
                run_id, trial.number, "PRUNED", steps, None, None, time.perf_counter() - t0
            )
            raise
        except ModelFitError as err:
            trial.set_user_attr("failure", "diverged")
            trial.set_user_attr("error", str(err))
            self.tracking.end_trial(
                run_id, trial.number, "FAIL", steps, None, None, time.perf_counter() - t0, err
            )
            raise
        except BaseException as err:  # Ctrl-C, kill signals turned into exceptions, bugs: mark and re-raise
            trial.set_user_attr("failure", type(err).__name__)
            self.tracking.end_trial(
                run_id, trial.number, "FAIL", steps, None, None, time.perf_counter() - t0, err
            )
            raise
        value = float(valid.metrics[s.metric])
        trial.set_user_attr("steps_computed", last)
        trial.set_user_attr("best_step", int(monitor.best_step))
        trial.set_user_attr("fit_seconds", round(time.perf_counter() - t0, 3))
        for name in {"ndcg@10", "recall@10", "ndcg@20", "recall@20", s.metric}:
            if name in valid.metrics:
                trial.set_user_attr(f"valid_{name}", valid.metrics[name])
        self.tracking.end_trial(
            run_id, trial.number, "COMPLETE", steps, valid, fitted, time.perf_counter() - t0, params=params
        )
        return value


# ---------------------------------------------------------------------------------------------- the study
def run_study(settings: StudySettings) -> dict[str, Any]:
    """Set up (or resume) the study, optimise, refit the best, register it; returns the summary."""
    import optuna
    from tqdm.auto import tqdm

    from search.tracking import Tracker

    t_start = time.perf_counter()
    settings.ks = tuple(sorted({*settings.ks, metric_k(settings.metric)}))  # the metric is always computed
    if settings.eval_every is not None and settings.eval_every < 1:
        raise ConfigError(f"--eval-every must be >= 1, but got {settings.eval_every}")
    if settings.grace_period < 2:
        raise ConfigError(
            f"--grace-period must be >= 2 seconds (heartbeats come every 1-2 s), got {settings.grace_period}"
        )
    space = load_space(settings.model, settings.space)
    sampler_name, n_trials, why = choose_sampler(space, settings)
    Tracker(settings.tracking_uri)  # fail fast, before any data is loaded or model trained
    prepared, label = load_prepared(settings)
    say = (lambda *_: None) if settings.quiet else (lambda *a: print(*a, flush=True))
    if prepared.synthetic:
        say(f"data: the embedded SYNTHETIC dataset ({prepared.data.source})")
    else:
        say(f"data: {prepared.data.source}")
    say(f"sampler: {why}; pruner: {settings.pruner}; metric: validation {settings.metric}")
    longest = max_steps(space, settings.model)
    every = settings.eval_every or (1 if settings.model == "als" else 5)
    study_name = (
        settings.study_name or f"{settings.model}-{label}-{sampler_name}-{prepared.data_version_hash[:8]}"
    )
    storage = make_storage(settings.storage, settings.grace_period)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=make_sampler(sampler_name, space, settings.seed),
        pruner=make_pruner(settings.pruner, longest, every, sampler_name),
        direction="maximize",
        load_if_exists=True,
    )
    fingerprint = search_fingerprint(space, settings, sampler_name)
    for key, mine, what in (
        ("data_version_hash", prepared.data_version_hash, "other data or another split"),
        ("search_fingerprint", fingerprint, "another metric, space, seed or sampler"),
    ):
        if study.user_attrs.get(key, mine) != mine:
            raise ConfigError(
                f"study {study_name!r} in {settings.storage} was run with {what}; resuming it would mix "
                "incomparable trials. Choose another --study-name, or repeat the original options"
            )
    study.set_user_attr("data_version_hash", prepared.data_version_hash)
    study.set_user_attr("search_fingerprint", fingerprint)
    study.set_user_attr("model", settings.model)
    study.set_user_attr("metric", settings.metric)
    study.set_user_attr("sampler", sampler_name)
    study.set_user_attr("pruner", settings.pruner)
    requeued = requeue_interrupted(study)
    n_done = sum(counts_as_done(t) for t in study.get_trials(deepcopy=False))
    remaining = max(0, n_trials - n_done)
    say(
        f"study: {study_name} ({n_done} trials done, {remaining} to run"
        + (f", {len(requeued)} interrupted requeued)" if requeued else ")")
    )
    tracking = StudyTracking(settings, prepared, study, label, sampler_name)
    say(
        f"dashboard: optuna-dashboard {settings.storage}   "
        f"(or: python -m search.dashboard --storage {settings.storage})"
    )
    objective = Objective(settings, prepared, space, sampler_name, every, tracking)
    bar = tqdm(
        total=remaining, desc=f"{settings.model} study", disable=settings.quiet or not remaining, leave=False
    )

    def on_trial(study: Any, trial: Any) -> None:
        bar.update(1)
        if not settings.quiet:
            bar.write(trial_line(trial, settings.metric))

    status = "FINISHED"
    try:
        if remaining:
            study.optimize(objective, n_trials=remaining, catch=(ModelFitError,), callbacks=[on_trial])
    except KeyboardInterrupt:
        status = "KILLED"
        say(
            "\ninterrupted: the running trial is marked failed; "
            "the same command resumes the study and re-runs its point"
        )
    finally:
        bar.close()
    summary = summarize(settings, prepared, study, time.perf_counter() - t_start, status)
    if status == "FINISHED" and summary.get("best_trial") is not None:
        final_files = finalize(settings, prepared, study, tracking, summary, say)
    else:
        final_files = {}
    files = {"summary.json": json_bytes(summary), **final_files}
    tracking.finish(status, summary, files)
    print(format_summary(summary), flush=True)
    if settings.report and status == "FINISHED":
        from reports.build import build_report  # here: reports imports search.run

        try:
            paths = build_report(
                study.study_name, storage=settings.storage, tracking_uri=settings.tracking_uri
            )
            print(f"report: {paths.html}  (summary: {paths.markdown})", flush=True)
        except Exception as err:  # a report must never fail a study that finished and was recorded
            print(f"warning: report not built: {type(err).__name__}: {err}", file=sys.stderr)
    if status == "KILLED":
        raise KeyboardInterrupt
    return summary


def finalize(
    settings: StudySettings,
    prepared: Prepared,
    study: Any,
    tracking: StudyTracking,
    summary: dict[str, Any],
    say: Any,
) -> dict[str, bytes]:
    """Refit the best configuration on train + validation, test it once against popularity and EASE,
    register it and gate the champion alias. Adds the results to ``summary``; returns files for the parent."""
    from core.evaluate import compare
    from core.train import final_test
    from search.references import compute_references

    best = summary["best_trial"]
    params = {**best["params_full"], "random_state": settings.seed}
    if best.get("best_step"):  # the trial ended on its best step: the refit trains that long
        params[steps_param(settings.model)] = int(best["best_step"])
    say(f"refitting trial {best['number']} on train + validation and testing once ...")
    final = final_test(prepared, settings.model, params, ks=settings.ks)
    refs, cached = compute_references(prepared, ks=settings.ks)
    metric_names = [f"{m}@{k}" for k in settings.ks for m in ("ndcg", "recall")]
    vs: dict[str, Any] = {
        "popularity": {k: c.to_dict() for k, c in final.comparison.items() if k in metric_names}
    }
    if refs.ease_test is not None:
        vs["ease"] = {k: c.to_dict() for k, c in compare(final.test, refs.ease_test, metric_names).items()}
    summary["test"] = {k: v for k, v in final.test.metrics.items()}
    summary["baselines"] = refs.summary()
    summary["baselines_cached"] = cached
    summary["vs"] = vs
    summary["score_range"] = final.score_range.to_dict()
    summary["final_params"] = params
    for name, value in final.test.metrics.items():
        summary["parent_metrics"][f"test_{name}".replace("@", "_at_")] = value
    files: dict[str, bytes] = {}
    if settings.register:
        from search.registry import register_final

        decision = register_final(
            tracking,
            settings.model,
            prepared,
            params,
            final,
            best_value=float(best["value"]),
            study=study.study_name,
            trial_number=int(best["number"]),
            valid_metrics=best["valid"],
        )
        summary["registry"] = decision
    return files


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("als", "bpr"), required=True)
    p.add_argument("--trials", type=int, default=None, help="default: the whole grid (or 100 with TPE)")
    p.add_argument("--sampler", choices=("grid", "tpe"), default=None)
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--data", default=None, help="file or folder (formats detected); default: SYNTHETIC data"
    )
    src.add_argument("--dataset", default=None, help="synthetic, ml-100k, lastfm-2k or amazon-beauty")
    p.add_argument("--split", choices=SPLIT_STRATEGIES, default="auto")
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--study-name", default=None)
    p.add_argument("--storage", default=DEFAULT_STORAGE)
    p.add_argument(
        "--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db"
    )
    p.add_argument("--space", default=None, help="your own search-space YAML")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--eval-every", type=int, default=None, help="validation every N steps (ALS 1, BPR 5)")
    p.add_argument(
        "--grace-period",
        type=int,
        default=GRACE_SECONDS,
        help="seconds without a heartbeat after which a worker's running trial counts as dead and is retried",
    )
    p.add_argument(
        "--no-register",
        action="store_true",
        help="do not register the best model (it is still refit and tested); for extra workers of one study",
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--quiet", action="store_true")
    return p


def quiet_library_warnings() -> None:
    """Warnings about APIs we use on purpose (heartbeats, multivariate TPE, pyfunc without type hints)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_warnings()
    settings = StudySettings(
        model=args.model,
        trials=args.trials,
        sampler=args.sampler,
        pruner=args.pruner,
        data=args.data,
        dataset=args.dataset,
        split=args.split,
        metric=args.metric,
        study_name=args.study_name,
        storage=args.storage,
        seed=args.seed,
        space=args.space,
        tracking_uri=args.tracking_uri,
        eval_every=args.eval_every,
        register=not args.no_register,
        report=not args.no_report,
        quiet=args.quiet,
        grace_period=args.grace_period,
    )
    try:
        run_study(settings)
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
