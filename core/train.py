"""One training run, end to end, without Optuna or MLflow: ``python -m core.train``.

load -> :class:`Interactions` -> segment -> split -> fit on train (validation callback) -> refit on
train + validation -> evaluate once on test against popularity (bootstrap CIs) -> score_range -> run folder.

This module is the command line only; the library it drives is :mod:`core.prepare`, :mod:`core.params`,
:mod:`core.fit`, :mod:`core.final` and :mod:`core.artifacts`, which ``search/`` calls for each trial and for
the champion refit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.artifacts import RunFolderExists, check_writable
from core.blend import describe
from core.confidence import CONFIDENCE_MODES, default_mode
from core.errors import CftuneError, ConfigError
from core.evaluate import EvalResult
from core.final import FinalResult, choose_blend, final_test, validate, validation_monitor
from core.fit import fit_model
from core.names import DEFAULT_KS
from core.params import MODELS, check_preset, default_params, parse_params, stopped_at
from core.prepare import DataOptions, Prepared, add_data_arguments
from core.run_folder import save
from core.text import item_text_embeddings


def format_summary(
    model: str, params: dict[str, Any], prepared: Prepared, valid: EvalResult, final: FinalResult
) -> str:
    lines = []
    src = prepared.data.source
    lines.append(f"data: {src}" + ("  [SYNTHETIC demo data]" if prepared.synthetic else ""))
    if prepared.segmentation is not None:
        seg = prepared.segmentation
        lines.append(
            f"users: {seg.n_users_total} total, {seg.n_trainable} trainable, {seg.n_cold_start} cold-start "
            f"(excluded from CF training)"
        )
    d = prepared.split.describe()
    lines.append(
        f"split: {d['strategy']}  train {d['train_interactions']}  valid {d['valid_interactions']} "
        f"({d['valid_users']} users)  test {d['test_interactions']} ({d['test_users']} users)"
    )
    lines.append(f"model: {model}  params: {params}")
    lines.append(
        f"validation ndcg@10 {valid.metrics['ndcg@10']:.4f}  recall@10 {valid.metrics['recall@10']:.4f}"
    )
    lines.append("test (refit on train+valid) vs popularity, 95% bootstrap CI over users:")
    lines.append(f"  {'metric':<12}{'model':>9}{'popular':>9}{'improvement':>26}{'difference CI':>24}")
    for name, c in final.comparison.items():
        imp = c.improvement_pct
        lines.append(
            f"  {name:<12}{c.model.value:>9.4f}{c.reference.value:>9.4f}"
            f"{f'{imp.value:+.1f}% [{imp.low:+.1f}, {imp.high:+.1f}]':>26}"
            f"{f'[{c.difference.low:+.4f}, {c.difference.high:+.4f}]':>24}"
        )
    sr = final.score_range
    if final.blend is not None and final.blend.weight > 0:
        lines.append(f"popularity blend: {describe(final.blend.weight)} (chosen on validation, core.blend)")
    lines.append(f"score_range: p01 {sr.p01:.4f}  p99 {sr.p99:.4f}  ({sr.num_samples} scores)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="als")
    p.add_argument(
        "--preset", default=None, help="ALS preset: default, normalized, high_quality, fast, sparse_data"
    )
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    add_data_arguments(p)
    p.add_argument("--confidence", choices=CONFIDENCE_MODES, default=None)
    p.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS))
    p.add_argument("--patience", type=int, default=None, help="early stopping on validation ndcg@10")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--checkpoint-dir", default=None, help="write training checkpoints here")
    p.add_argument("--checkpoint-every", type=int, default=0, help="checkpoint every N iterations / epochs")
    p.add_argument("--resume", default=None, help="continue from a checkpoint file or folder")
    p.add_argument(
        "--device",
        default=None,
        help="where the torch trainer runs (BPR with --param trainer=torch): cpu (default), cuda or cuda:N",
    )
    p.add_argument(
        "--init-items",
        choices=("random", "text"),
        default="random",
        help="text: start item factors from sentence embeddings of the item titles (needs the text extra)",
    )
    p.add_argument("--text-model", default=None, help="local sentence-transformers folder (default: MiniLM)")
    p.add_argument(
        "--popularity-weight",
        default="auto",
        help="the popularity blend's weight (core.blend): auto (default) chooses it on validation, 0 is none",
    )
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="move an existing --out aside and write anew")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (CftuneError, RunFolderExists) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was saved", file=sys.stderr)
        return 130


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every option checked before any data is read, so a typo costs nothing and names itself. Returns the
    ``--param`` overrides, parsed and checked."""
    checks = [
        (all(k >= 1 for k in args.k), f"--k values must be >= 1, but got {args.k}"),
        (args.eval_every >= 1, f"--eval-every must be >= 1, but got {args.eval_every}"),
        (args.patience is None or args.patience >= 1, f"--patience must be >= 1, but got {args.patience}"),
        (args.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, but got {args.checkpoint_every}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    popularity_weight(args.popularity_weight)
    DataOptions.from_args(args).check()
    check_writable(Path(args.out).parent if args.out else Path("runs"))
    check_preset(args.model, args.preset)
    overrides = parse_params(args.model, args.param)
    if args.device is not None:
        if args.model != "bpr" or overrides.get("trainer") != "torch":
            raise ConfigError(f"--device {args.device} applies to BPR with --param trainer=torch only")
        overrides = parse_params(args.model, [*args.param, f"device={args.device}"])  # checks the name
    if args.init_items == "text" and overrides.get("trainer") == "torch":
        raise ConfigError(
            "--init-items text needs trainer=kernel (the torch trainer starts from random factors)"
        )
    return overrides


def popularity_weight(text: str) -> float | None:
    """``--popularity-weight``: None for ``auto`` (chosen on validation), else the weight (``inf``: popularity
    alone), checked."""
    if text == "auto":
        return None
    try:
        weight = float(text)
    except ValueError:
        weight = float("nan")
    if not weight >= 0:
        raise ConfigError(f"--popularity-weight must be auto, a number >= 0 or inf, but got {text!r}")
    return weight


def _main(args: argparse.Namespace) -> int:
    overrides = check_args(args)
    args.k = sorted(set(args.k) | {10})  # ndcg@10 drives validation and the summary
    prepared = DataOptions.from_args(args).prepare()
    if prepared.synthetic:
        print(f"using the embedded SYNTHETIC dataset: {prepared.data.source}", file=sys.stderr)
    params = default_params(
        args.model,
        args.preset,
        prepared,
        confidence_mode=args.confidence or overrides.get("confidence"),
        trainer=overrides.get("trainer"),
    )
    params["random_state"] = args.seed
    params.update(overrides)
    if args.model == "als":
        params["confidence"] = args.confidence or params.get("confidence") or default_mode(prepared.data)
    elif args.confidence is not None:
        raise ConfigError("--confidence applies to ALS only (BPR learns from positives)")
    monitor = validation_monitor(prepared, every=args.eval_every, patience=args.patience)
    init: dict[str, Any] = {}
    if args.init_items == "text":
        init["item_factors_init"] = item_text_embeddings(prepared.split.train, model_dir=args.text_model)
    fit_kwargs = {
        "checkpoint_dir": args.checkpoint_dir,
        "checkpoint_every": args.checkpoint_every,
        "resume_from": args.resume,
        **init,
    }
    fitted = fit_model(
        prepared,
        args.model,
        params,
        callback=monitor,
        show_progress=not args.no_progress,
        fit_kwargs=fit_kwargs,
    )
    if args.patience is not None and monitor.best_step:
        params = stopped_at(args.model, params, monitor.best_step)  # the refit trains as long as the best did
    valid = validate(prepared, fitted, ks=args.k)
    weight = popularity_weight(args.popularity_weight)
    choice = choose_blend(prepared, fitted) if weight is None else None
    final = final_test(
        prepared,
        args.model,
        params,
        ks=args.k,
        show_progress=not args.no_progress,
        fit_kwargs=init,
        popularity_weight=choice.weight if choice is not None else weight or 0.0,
    )
    out = args.out or f"runs/{args.model}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    extra: dict[str, Any] = {"item_init": args.init_items} if args.init_items != "random" else {}
    if final.blend is not None:
        chosen = {"validation": choice.to_dict()} if choice is not None else {}
        extra["popularity_blend"] = final.blend.to_dict() | chosen
    path = save(
        out, prepared, args.model, params, final, valid, overwrite=args.overwrite, extra_metadata=extra
    )
    print(format_summary(args.model, params, prepared, valid, final))
    print(f"artifacts: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
