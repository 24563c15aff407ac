"""``--keep-factors``: the store keeps full factor matrices only for the trials that can matter (the best K by
value and what ``--select`` may pick), the others keep everything else and say so, whatever the number of
workers or resumes; the record counts the bytes the study wrote."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient

from core.errors import ConfigError
from search.arguments import build_parser, settings_from_args
from search.keep import DEFAULT_KEEP, FACTORS_TAG, KEPT, KeepFactors, Scored, kept, margin
from search.record import StudyRecord
from search.run import run_study
from search.selection import select_trial, standard_error
from search.settings import StudySettings

GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 4}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
  alpha: [1.0, 5.0]
"""
#: On the synthetic data the one-standard-error rule picks trial 0 (regularization 13), not the best by
#: value (trial 2, regularization 11).
STRONGER = """\
model: als
fixed: {confidence: rating_quality, iterations: 4, factors: 16, alpha: 1.0}
grid:
  regularization: [13.0, 8.0, 11.0, 4.0, 1.0]
"""


# ------------------------------------------------------------------------------------------- the rule
def test_keep_factors_reads_best_k_all_and_none() -> None:
    assert KeepFactors.parse("best:3") == KeepFactors(3)
    assert KeepFactors.parse("best:0") == KeepFactors.parse("none") == KeepFactors(0)
    assert KeepFactors.parse("all") == KeepFactors(None)
    assert DEFAULT_KEEP == "best:3" == StudySettings(model="als").keep_factors


@pytest.mark.parametrize("text", ["best", "best:", "best:-1", "best:2.5", "top:3", "ALL", ""])
def test_keep_factors_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match="--keep-factors must be best:K, all or none"):
        KeepFactors.parse(text)


def test_the_command_line_option_reaches_the_settings() -> None:
    parser = build_parser("")
    args = parser.parse_args(["--model", "als", "--keep-factors", "all"])
    assert settings_from_args(args).keep_factors == "all"
    assert settings_from_args(parser.parse_args(["--model", "als"])).keep_factors == "best:3"
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "als", "--keep-factors", "best:x"])


@pytest.mark.parametrize("users", [2, 10, 1000])
def test_the_margin_bounds_the_standard_error_of_any_values_in_0_1(users: int) -> None:
    rng = np.random.default_rng(users)
    for _ in range(300):
        kind = rng.integers(3)
        if kind == 0:  # 0/1 values (hitrate): the bound is reached
            x = (rng.random(users) < rng.random()).astype(float)
        elif kind == 1:  # ndcg-like: mostly zeros, a few reciprocal logs
            x = np.where(rng.random(users) < rng.random(), 1 / np.log2(rng.integers(2, 12, users)), 0.0)
        else:
            x = rng.random(users) ** rng.uniform(0.2, 5)
        se = standard_error(x)
        assert se is not None and se <= margin(float(x.mean()), users)


def test_the_margin_keeps_everything_where_the_floor_would_still_fall() -> None:
    assert margin(0.0, 1000) == math.inf and margin(0.5, 1) == math.inf
    assert margin(1e-5, 1000) == math.inf  # best - margin(best) falls as best grows below ~1/(4n)
    assert margin(1.0, 1000) == 0.0
    assert margin(0.1, 1001) == pytest.approx(math.sqrt(0.09 / 1000))
    floors = [v - margin(v, 1000) for v in np.linspace(0.001, 1.0, 500)]
    assert floors == sorted(floors)  # a higher best never lowers the floor: a dropped trial stays dropped


def test_kept_is_the_best_k_and_what_the_rule_may_pick() -> None:
    trials = [Scored(0, 0.10), Scored(1, 0.20), Scored(2, 0.195), Scored(3, 0.15), Scored(4, 0.20)]
    wide = margin(0.20, 101)  # 0.04: trials 0.16 and up may be picked by one-se
    assert wide == pytest.approx(0.04)
    assert kept(trials, KeepFactors(1), rule="one-se", users=101) == {1, 2, 4}
    assert kept(trials, KeepFactors(4), rule="one-se", users=101) == {1, 2, 3, 4}
    assert kept(trials, KeepFactors(0), rule="best", users=101) == {1, 4}  # the best and its tie
    assert kept(trials, KeepFactors(1), rule="best", users=101) == {1, 4}
    assert kept(trials, KeepFactors(None), rule="best", users=101) == {0, 1, 2, 3, 4}
    assert kept([], KeepFactors(2), rule="one-se", users=101) == set()


def fake_trial(number: int, per_user: np.ndarray, regularization: float) -> Any:
    params = {"regularization": regularization}
    attrs = {"valid_se": standard_error(per_user), "params_full": params}
    return SimpleNamespace(number=number, value=float(per_user.mean()), params=params, user_attrs=attrs)


def replay(trials: list[Any], keep: KeepFactors, users: int, rule: str = "one-se") -> set[int]:
    """The rule as the study applies it: at each trial's end, it logs factors if kept, and the others lose
    theirs. Returns the trials holding factors at the end."""
    held: set[int] = set()
    done: list[Scored] = []
    for t in trials:
        done.append(Scored(t.number, t.value))
        now = kept(done, keep, rule=rule, users=users)
        held = (held | {t.number}) & now
    return held


def test_a_trial_the_one_se_rule_selects_in_the_end_was_never_dropped() -> None:
    rng = np.random.default_rng(7)
    users = 400
    for _ in range(200):
        trials = []
        for number in range(int(rng.integers(2, 25))):
            p = rng.uniform(0.05, 0.4)  # a wide spread of standard errors between trials
            per_user = np.where(rng.random(users) < p, rng.uniform(0.3, 1.0, users), 0.0)
            trials.append(fake_trial(number, per_user, float(rng.choice([0.01, 0.1, 1.0, 10.0]))))
        for keep in (KeepFactors(0), KeepFactors(2)):
            held = replay(trials, keep, users)
            selection = select_trial(trials, "one-se")
            assert selection is not None and selection.trial.number in held
            top = sorted(trials, key=lambda t: (-t.value, t.number))[: keep.best]
            assert {t.number for t in top} <= held
            final = kept([Scored(t.number, t.value) for t in trials], keep, rule="one-se", users=users)
            assert held == final  # the running rule ends where the rule over every trial does


def test_a_later_best_with_a_larger_error_can_select_what_the_current_best_error_would_drop() -> None:
    """Why the margin is a bound, not the current best's standard error: trial 1 is below trial 0 by more
    than trial 0's error, yet within trial 2's, and the most regularized there."""
    users = 2000
    t0 = fake_trial(0, np.repeat([0.04, 0.16], users // 2), 0.1)  # mean 0.1, standard error 0.0013
    t1 = fake_trial(1, np.full(users, 0.0975), 10.0)
    t2 = fake_trial(2, (np.arange(users) < 201).astype(float), 0.1)  # mean 0.1005, standard error 0.0067
    assert t1.value < t0.value - t0.user_attrs["valid_se"]  # "within one SE of the current best": dropped
    selection = select_trial([t0, t1, t2], "one-se")
    assert selection is not None and selection.trial.number == 1
    assert 1 in replay([t0, t1, t2], KeepFactors(0), users)


# ------------------------------------------------------------------------------------------ studies
def settings(root: Path, space: str, **kw: Any) -> StudySettings:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "space.yaml"
    path.write_text(space)
    base: dict[str, Any] = {
        "model": "als",
        "space": str(path),
        "storage": f"sqlite:///{root}/optuna.db",
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "quiet": True,
        "report": False,
        "threads": 1,
    }
    base.update(kw)
    return StudySettings(**base)


def trial_runs(s: StudySettings) -> dict[int, Any]:
    client = MlflowClient(tracking_uri=s.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.kind = 'trial'", max_results=1000)
    return {int(r.data.tags["trial_number"]): r for r in runs}


def with_factors(s: StudySettings) -> set[int]:
    """Trials whose run folder holds factor files, read from the artifact folders themselves."""
    out = set()
    for number, run in trial_runs(s).items():
        folder = Path(run.info.artifact_uri.removeprefix("file://")) / "run"
        if (folder / "als_U.npy").is_file() and (folder / "als_V.npy").is_file():
            out.add(number)
            assert (folder / "mappings.json").is_file()
    return out


def complete(s: StudySettings, record: StudyRecord) -> list[Any]:
    study = optuna.load_study(study_name=record.study_name, storage=s.storage_url)
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "artifacts").rglob("*") if p.is_file())


def test_best_2_keeps_factors_of_the_best_two_and_what_one_se_may_pick(tmp_path: Path) -> None:
    s = settings(tmp_path, GRID, keep_factors="best:2")
    record = run_study(s)
    trials = complete(s, record)
    users = int(
        optuna.load_study(study_name=record.study_name, storage=s.storage_url).user_attrs["validation_users"]
    )
    expected = kept([Scored(t.number, t.value) for t in trials], KeepFactors(2), rule="one-se", users=users)
    assert with_factors(s) == expected and len(expected) < len(trials)  # some were dropped
    assert record.best_trial is not None and record.best_trial.number in expected
    runs = trial_runs(s)
    for t in trials:
        tag = runs[t.number].data.tags[FACTORS_TAG]
        folder = Path(runs[t.number].info.artifact_uri.removeprefix("file://")) / "run"
        if t.number in expected:
            assert tag == KEPT
        else:  # everything but the factors: params, metrics, metadata (score_range), the curve
            assert tag.startswith(("dropped (not among the best 2", "not logged (not among the best 2"))
            assert {p.name for p in folder.iterdir()} == {
                "params.json",
                "metrics.json",
                "metadata.json",
                "history.json",
            }
            assert "score_range_p99" in runs[t.number].data.metrics
    # the record counts what is on disk: the runs' folders, the registered model, the record itself
    assert record.artifact_bytes == disk_bytes(tmp_path)


def test_the_one_se_choice_keeps_its_factors_when_it_is_not_the_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the unpaired rule, whose choices include the paired rule's (search.selection._error): the wider case
    monkeypatch.setattr("search.selection.paired_error", lambda best, other: None)
    s = settings(tmp_path, STRONGER, keep_factors="none", pruner="none", register=False)
    record = run_study(s)
    selection = select_trial(complete(s, record), "one-se")
    assert selection is not None and selection.changed  # the case under test: the rule stepped back
    assert selection.trial.number in with_factors(s)
    assert selection.best.number in with_factors(s)  # it can still be picked after a resume


def test_all_keeps_every_trial_and_none_keeps_only_what_the_rule_may_pick(tmp_path: Path) -> None:
    s = settings(tmp_path / "all", GRID, keep_factors="all", pruner="none", register=False)
    record = run_study(s)
    assert with_factors(s) == {t.number for t in complete(s, record)} and len(with_factors(s)) == 8

    s = settings(tmp_path / "none", GRID, keep_factors="none", pruner="none", select="best", register=False)
    record = run_study(s)
    best = max(complete(s, record), key=lambda t: (t.value, -t.number))
    assert with_factors(s) == {best.number}  # under --select best, only the best can ever be picked


def kept_points(s: StudySettings, record: StudyRecord) -> set[tuple[Any, ...]]:
    by_number = {t.number: t for t in complete(s, record)}
    return {tuple(sorted(by_number[n].params.items())) for n in with_factors(s)}


def test_resumed_and_two_worker_studies_keep_the_same_trials(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in ("once", "resumed", "workers")}
    common: dict[str, Any] = {"keep_factors": "best:2", "pruner": "none", "sampler": "grid"}
    once = settings(roots["once"], GRID, **common)
    expected = kept_points(once, run_study(once))
    assert 0 < len(expected) < 8  # some trials lost their factors

    resumed = settings(roots["resumed"], GRID, trials=3, **common)
    run_study(resumed)
    resumed.trials = None  # the same study, its whole grid
    assert kept_points(resumed, run_study(resumed)) == expected

    workers = settings(roots["workers"], GRID, workers=2, **common)
    record = run_study(workers)
    assert len(complete(workers, record)) == 8 and kept_points(workers, record) == expected
