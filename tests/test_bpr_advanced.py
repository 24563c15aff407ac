"""BPR's torch trainer in the pipeline (``trainer=torch``): it learns through :func:`core.fit.fit_model`
with its negative sources, every bad parameter is a one-line exit 2 before any data is read, the advanced
search space loads and proposes only valid configurations, and without ``trainer`` BPR is the numba kernel
as before."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args, get_type_hints

import numpy as np
import pytest

from core.bpr.advanced import CURRICULA, OPTIMIZERS, SCHEDULERS, FlatTorchBPR, text_cache_dir
from core.errors import ConfigError
from core.evaluate import evaluate
from core.final import validate, validation_monitor
from core.fit import fit_model, training_matrix
from core.params import make_model, trainer_params
from core.planted import make_planted
from core.prepare import Prepared, prepare
from core.split import hard_negatives
from core.train import main
from spaces import SPACES_DIR, load_space, parse_space

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="the torch trainer needs torch (the text extra)"
)
#: A small, fast torch configuration (one thread: the suite shares its cores).
TORCH: dict[str, Any] = {
    "trainer": "torch",
    "factors": 16,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "user_weight_decay": 0.0,
    "item_weight_decay": 0.0,
    "scheduler": "constant",
    "batch_size": 256,
    "num_threads": 1,
    "random_state": 0,
}


@pytest.fixture(scope="module")
def planted() -> Prepared:
    """400 users x 120 items with a planted rank-4 taste; ratings 1-5, no item titles."""
    return prepare(make_planted(n_users=400, n_items=120, rank=4, density=0.08, seed=0))


# ---------------------------------------------------------------------------------------------- training
@needs_torch
def test_the_torch_trainer_learns_a_planted_structure_validated_every_epoch(planted: Prepared) -> None:
    monitor = validation_monitor(planted)
    fitted = fit_model(planted, "bpr", {**TORCH, "epochs": 15}, callback=monitor)
    assert isinstance(fitted, FlatTorchBPR)
    assert fitted.history_.val_steps == list(range(1, 16))  # every epoch reaches the callback: pruning works
    s = planted.split
    noise = np.random.default_rng(0)
    random = evaluate(
        noise.normal(size=fitted.user_factors_.shape),
        noise.normal(size=fitted.item_factors_.shape),
        s.valid_truth(),
        s.valid_exclude(),
        ks=(10,),
    )
    ndcg = validate(planted, fitted).metrics["ndcg@10"]
    assert ndcg > 3 * random.metrics["ndcg@10"]
    assert json.loads(json.dumps(fitted.get_params()))["optimizer"] == "adam"  # a run folder takes it as is


@needs_torch
def test_each_negative_source_gets_its_share_of_the_draws(planted: Prepared) -> None:
    ratios = {"hard_ratio": 0.2, "sentiment_ratio": 0.2, "popular_ratio": 0.3}
    fitted = fit_model(planted, "bpr", {**TORCH, "epochs": 2, **ratios})
    stats = fitted.sampling_stats_
    assert abs(stats["popular_share"] - 0.3) < 0.02  # every user has unseen popular items
    rolled = stats["hard_share"] + stats["sentiment_share"] + stats["fallback_share"]  # empty rows: uniform
    assert abs(rolled - 0.4) < 0.02 and abs(stats["random_share"] - 0.3) < 0.02
    assert stats["sentiment_share"] > 0 and stats["hard_share"] > 0
    assert {key[0] for key in planted.derived} >= {"hard", "sentiment", "popular"}  # built once per split


@needs_torch
def test_contextual_negatives_without_titles_and_sentiment_without_ratings_are_config_errors(
    planted: Prepared,
) -> None:
    assert planted.data.item_titles is None
    with pytest.raises(ConfigError, match=r"contextual_ratio=0.2 needs item titles to embed.*set contextual"):
        fit_model(planted, "bpr", {**TORCH, "epochs": 1, "contextual_ratio": 0.2})
    counts = prepare(replace(planted.data, kind="count", rating_scale=None))
    with pytest.raises(ConfigError, match=r"sentiment_ratio=0.1 needs ratings .* holds play counts"):
        fit_model(counts, "bpr", {**TORCH, "epochs": 1, "sentiment_ratio": 0.1})


def test_the_kernel_trainer_is_the_plain_bpr_by_default(planted: Prepared) -> None:
    from core.bpr import BPR

    params = {"factors": 8, "epochs": 3, "hard_ratio": 0.3, "num_threads": 1, "random_state": 7}
    train = planted.split.train
    matrix = training_matrix(train, "bpr", confidence_mode=None, positive_threshold=4.0)
    hard = hard_negatives(train, positive_threshold=4.0)
    direct = BPR(**params, show_progress=False).fit(matrix, hard_negatives=hard)
    liked = np.diff(matrix.indptr) > 0  # users without positives get the average user (fit_model's rule)
    for given in (params, {**params, "trainer": "kernel"}):
        fitted = fit_model(planted, "bpr", given)
        assert type(fitted) is BPR
        np.testing.assert_array_equal(fitted.item_factors_, direct.item_factors_)
        np.testing.assert_array_equal(fitted.user_factors_[liked], direct.user_factors_[liked])


# ---------------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            ["trainer=torch", "optimizer=bogus"],
            "optimizer must be one of ('sgd', 'adagrad', 'adam', 'adamw')",
        ),
        (["trainer=torch", "scheduler=step"], "scheduler must be one of"),
        (["trainer=torch", "curriculum=sometimes"], "curriculum must be one of"),
        (["trainer=gpu"], "trainer must be one of ('kernel', 'torch')"),
        (["trainer=torch", "warmup_epochs=2.5"], "warmup_epochs expects a whole number"),
        (["optimizer=adamw"], "optimizer applies to trainer=torch only, but got trainer=kernel"),
        (["popular_ratio=0.2"], "popular_ratio applies to trainer=torch only"),
        (["trainer=torch", "lr_decay=0.9"], "lr_decay applies to trainer=kernel only"),
        (["trainer=torch", "reg_neg=-1"], "reg_neg must be None or a finite number >= 0"),
        (["trainer=torch", "hard_ratio=0.6", "popular_ratio=0.6"], "sampling ratios must sum to <= 1"),
        (["trainer=torch", "contextual_ratio=1.5"], "contextual_ratio must be in [0, 1]"),
        (["trainer=torch", "source_size=0"], "source_size must be an integer >= 1"),
    ],
)
def test_bad_torch_params_exit_2_with_one_line_before_any_data_is_loaded(
    params: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was loaded before the arguments were checked")

    monkeypatch.setattr("core.prepare.load_data", never)
    monkeypatch.setattr("core.prepare.load", never)
    argv = ["--model", "bpr", *(x for p in params for x in ("--param", p)), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@needs_torch
@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["trainer=torch", "dropout=1.5"], "dropout must be in [0, 1)"),
        (["trainer=torch", "min_lr=0.5"], "min_lr must be in [0, learning_rate=0.01]"),
        (["trainer=torch", "loss=focal"], "loss must be one of"),
        (["trainer=torch", "hard_bpr_c=0"], "hard_bpr_c must be a finite number > 0"),
    ],
)
def test_values_the_torch_trainer_refuses_exit_2_before_any_data_is_loaded(
    params: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", "bpr", *(x for p in params for x in ("--param", p)), "--data", str(tmp_path / "none")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@needs_torch
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cuda"], "--device cuda applies to BPR with --param trainer=torch only"),
        (["--param", "trainer=torch", "--device", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_the_device_is_the_torch_trainers_and_checked_before_any_data_is_loaded(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model", "bpr", *args, "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@needs_torch
def test_the_flat_parameters_mirror_the_torch_trainer_and_its_optimizer() -> None:
    from core.bpr import optimizer, strategy, torch_trainer

    own = inspect.signature(torch_trainer.TorchBPR).parameters
    expected = {name: p.default for name, p in own.items() if name not in ("optimizer", "negative_sampler")}
    config = {f.name: f.default for f in dataclasses.fields(optimizer.OptimizerConfig)}
    beta1, beta2 = config.pop("betas")
    expected.update(config, beta1=beta1, beta2=beta2)
    flat = inspect.signature(FlatTorchBPR).parameters
    assert {name: flat[name].default for name in expected} == expected
    assert OPTIMIZERS == optimizer.OPTIMIZERS and SCHEDULERS == optimizer.SCHEDULERS
    assert ("none", *strategy.SCHEDULES) == CURRICULA
    from core.bpr import BPR

    def types(ctor: Any, name: str) -> set[Any]:
        hint = get_type_hints(ctor)[name]
        return set(get_args(hint) or [hint]) - {type(None)}

    shared = trainer_params("kernel") & trainer_params("torch")
    assert {"factors", "epochs", "learning_rate", "item_bias", "hard_ratio", "num_threads"} <= shared
    for name in shared:  # a name both trainers take has one kind (param_kinds keeps the first)
        assert types(BPR.__init__, name) == types(FlatTorchBPR.__init__, name), name


def test_the_text_cache_lives_where_the_studies_keep_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    from search.settings import home

    assert text_cache_dir() == home() / "text-embeddings"
    monkeypatch.delenv("CFTUNE_HOME")
    assert text_cache_dir() == home() / "text-embeddings"


# ---------------------------------------------------------------------------------------------- spaces
def test_the_advanced_space_loads_and_its_tpe_proposals_are_all_valid() -> None:
    import itertools

    import optuna

    from search.factories import make_sampler, starting_points, suggest

    space = load_space("bpr", SPACES_DIR / "bpr_advanced.yaml")
    assert space.fixed["trainer"] == "torch" and space.grid_size == 6
    searched = {"optimizer", "learning_rate", "user_weight_decay", "scheduler", "dropout", "batch_size"}
    assert searched | {f"{s}_ratio" for s in ("hard", "contextual", "sentiment", "popular")} <= set(space.tpe)
    for values in itertools.product(*space.grid.values()):
        make_model("bpr", {**space.fixed, **dict(zip(space.grid, values, strict=True))})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0))
    for point in starting_points(space):
        study.enqueue_trial(point)
    noise = np.random.default_rng(0)
    for _ in range(25):  # past the sampler's random start-up trials
        trial = study.ask()
        params = {**space.fixed, **suggest(trial, space, "tpe")}
        estimator = make_model("bpr", params)  # every check of the trainer, the optimizer and the ratios
        assert sum(estimator.ratios().values()) <= 1.0
        study.tell(trial, float(noise.random()))


def test_spaces_name_only_parameters_of_their_trainer_and_known_choices() -> None:
    with pytest.raises(ConfigError, match=r"tpe\.optimizer: trainer=kernel has no such parameter"):
        parse_space({"model": "bpr", "tpe": {"optimizer": {"type": "categorical", "choices": ["adam"]}}})
    with pytest.raises(ConfigError, match=r"grid\.lr_decay: trainer=torch has no such parameter"):
        parse_space({"model": "bpr", "fixed": {"trainer": "torch"}, "grid": {"lr_decay": [0.9]}})
    with pytest.raises(ConfigError, match=r"grid\.optimizer: must be one of \['sgd'"):
        parse_space({"model": "bpr", "fixed": {"trainer": "torch"}, "grid": {"optimizer": ["adamw", "lion"]}})


def test_stopping_at_a_step_keeps_the_torch_curve_length_and_only_that() -> None:
    from core.params import stopped_at

    torch_params = {"trainer": "torch", "epochs": 40, "scheduler": "cosine"}
    assert stopped_at("bpr", torch_params, 12) == {**torch_params, "epochs": 12, "schedule_epochs": 40}
    defaults = stopped_at("bpr", {"trainer": "torch"}, 7)  # the trainer's own default length
    assert defaults["epochs"] == 7 and defaults["schedule_epochs"] == FlatTorchBPR().epochs
    assert stopped_at("bpr", {"epochs": 40}, 12) == {"epochs": 12}  # the kernel's step decay: no total
    assert stopped_at("als", {"iterations": 15}, 9) == {"iterations": 9}
