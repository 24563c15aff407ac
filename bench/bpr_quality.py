"""Claim (issue "BPR that rivals EASE"): where BPR stands against EASE on test NDCG@10, and which of its
parts move it: today's default, each kernel feature alone, a tuned kernel, the torch trainer and its negative
sources, and a tuned torch trainer; every number with a 95% paired bootstrap CI over test users.

Per dataset, one split (the project's standard one: ``core.train``'s and ``search.run``'s defaults), then:

- popularity and EASE (:func:`search.references.compute_references`, the studies' own references);
- ``default``: BPR at ``python -m core.train --model bpr``'s parameters (:func:`core.params.default_params`),
  refit on train + validation and tested once (:func:`core.final.final_test`, core.train's own refit);
- ablation: the default with ONE kernel feature changed, each alone, chosen before any result was seen:
  ``item_bias`` flipped, the positive / negative item L2 split (``reg_pos`` = regularization, ``reg_neg`` =
  regularization / 10), and where :class:`core.bpr.BPR` has them ``n_candidates=4``, ``n_negatives=4``,
  ``loss=hard_bpr``, and ``hard_ratio=0.3`` (with ratio CIs against the default as well);
- ``tpe_kernel``: the best of a TPE study on ``spaces/bpr.yaml`` (``search.run``), refit and tested by the
  study;
- ``torch_default``: ``trainer=torch`` at its defaults (the data's shape from :mod:`core.defaults`, uniform
  negatives); ``torch_adaptive``: the same with ``n_candidates=4`` (the kernel ablation's value); and
  ``torch_contextual`` / ``torch_sentiment``: the same with ``contextual_ratio=0.3`` (item titles embedded by
  MiniLM) / ``sentiment_ratio=0.3`` (ratings) alone, on the data that has titles / ratings (each with CIs
  against ``torch_default`` as well);
- ``tpe_torch``: the best of a TPE study on ``spaces/bpr_advanced.yaml`` (on data without titles or ratings, a
  copy without the ratios it cannot feed).

Datasets: the shared real ones (``$CFTUNE_DATA_DIR``, default ``../shared/data``) and the embedded synthetic
set. Each is measured on throwaway stores (``$CFTUNE_HOME`` in a temporary folder: the reference cache and the
text-embedding cache are shared by the dataset's fits and studies, then removed).

Run: ``python bench/bpr_quality.py [--trials 60] [--datasets ml-100k,synthetic] [--threads N] [--resume]``;
the JSON is written after each dataset, so an interrupted run continues with ``--resume``, and processes on
different datasets can share one results file. ``--only torch,tpe_torch`` (parts of :data:`PARTS`) re-measures
just those rows of datasets already measured (the others kept as they are), after a change to one trainer or
to the rule that picks a study's trial. ``--table`` prints the Markdown table of the results without running
anything. Writes bench/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_dataset_arguments, read_result, run_per_dataset, study_on
from bench.quality import METRICS, dataset_workspace, ratio_cell, versus

DATASETS = ("ml-100k", "amazon-beauty", "lastfm-2k", "synthetic")
NAME = "bpr_quality"
#: The ratio of the torch trainer's single-source runs (the rest of the draws uniform).
SOURCE_RATIO = 0.3
#: The torch trainer's adaptive-sampling row: the kernel ablation's ``n_candidates``.
ADAPTIVE_CANDIDATES = 4
#: What a dataset's measurement is made of (``--only`` picks some): the kernel's default and its ablation,
#: the torch trainer at its defaults with each negative source, and the two TPE studies.
PARTS = ("kernel", "torch", "tpe_kernel", "tpe_torch")
ROWS = (
    "default",
    "tpe_kernel",
    "torch_default",
    "torch_adaptive",
    "torch_contextual",
    "torch_sentiment",
    "tpe_torch",
)


# ---------------------------------------------------------------------------------------------- measuring
def _part_of(row: str) -> str:
    """The :data:`PARTS` entry that measures ``row``."""
    if row == "default" or row.startswith("kernel:"):
        return "kernel"
    return "torch" if row.startswith("torch_") else row


def spaces_dir() -> Path:
    """The built-in search spaces (imported here: ``--table`` needs none of the project)."""
    from spaces import SPACES_DIR

    return SPACES_DIR


def kernel_features(defaults: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One change each to the default BPR, by label; the sampling and loss options only where the kernel
    has them (:func:`core.params.trainer_params`)."""
    from core.params import trainer_params

    takes = trainer_params("kernel")
    bias = not defaults.get("item_bias", False)
    reg = float(defaults["regularization"])
    features: dict[str, dict[str, Any]] = {
        f"item_bias={bias}": {"item_bias": bias},
        "reg_pos=reg,reg_neg=reg/10": {"reg_pos": reg, "reg_neg": reg / 10},
        f"n_candidates={ADAPTIVE_CANDIDATES}": {"n_candidates": ADAPTIVE_CANDIDATES},
        "n_negatives=4": {"n_negatives": 4},
        "loss=hard_bpr": {"loss": "hard_bpr"},
        "hard_ratio=0.3": {"hard_ratio": 0.3},
    }
    return {label: change for label, change in features.items() if set(change) <= takes}


def tested(
    prepared: Any, params: dict[str, Any], refs: Any, reference: Any = None, reference_name: str | None = None
) -> tuple[dict[str, Any], Any]:
    """``params`` refit on train + validation and tested once: the row, and its EvalResult (a reference for
    others)."""
    from core.final import final_test
    from core.names import DEFAULT_KS

    t0 = time.perf_counter()
    final = final_test(prepared, "bpr", params, ks=DEFAULT_KS)
    row = {
        "params": {k: v for k, v in params.items() if k != "num_threads"},
        "test": {m: final.test.metrics[m] for m in METRICS},
        "vs_ease": versus(final.test, refs.ease_test),
        "reference": reference_name,
        "vs_reference": versus(final.test, reference),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    return row, final.test


def advanced_space(prepared: Any, folder: Path) -> tuple[Path, list[str]]:
    """``spaces/bpr_advanced.yaml``, or a copy in ``folder`` without the ratios this data cannot feed
    (contextual: item titles; sentiment: ratings); and the names left out."""
    import yaml

    path = spaces_dir() / "bpr_advanced.yaml"
    dropped = [
        name
        for name, ok in (
            ("contextual_ratio", prepared.data.item_titles is not None),
            ("sentiment_ratio", prepared.data.kind == "rating"),
        )
        if not ok
    ]
    if not dropped:
        return path, []
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for block in ("fixed", "grid", "tpe"):
        for name in dropped:
            (raw.get(block) or {}).pop(name, None)
    for point in raw.get("start") or []:
        for name in dropped:
            point.pop(name, None)
    copy = folder / "bpr_advanced.yaml"
    copy.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return copy, dropped


def tpe_study(
    root: Path, data: str | None, space: Path, trials: int, threads: int | None, name: str
) -> dict[str, Any]:
    """A TPE study on ``space`` (its own stores under ``root/name``), the best refit and tested by it."""
    folder = root / name
    folder.mkdir()
    record, wall = study_on(
        folder, model="bpr", sampler="tpe", trials=trials, data=data, space=str(space), threads=threads
    )
    if record.test is None or record.best_trial is None:
        raise RuntimeError(f"study {record.study_name} ended without a tested best trial: {record.trials}")
    return {
        "space": space.name,
        "trials": record.trials,
        "best_trial": record.best_trial.number,
        "best_params": record.best_trial.params,
        "params": record.final_params,
        "test": {m: record.test[m] for m in METRICS},
        "vs_ease": None if "ease" not in record.vs else {m: record.vs["ease"][m].to_dict() for m in METRICS},
        "reference": None,
        "vs_reference": None,
        "wall_seconds": wall,
    }


def measure(
    name: str,
    trials: int,
    threads: int | None,
    torch_trials: int | None = None,
    previous: dict[str, Any] | None = None,
    only: Sequence[str] = PARTS,
) -> dict[str, Any]:
    """One dataset's rows, on stores and files that vanish afterwards: the :data:`PARTS` in ``only``; rows of
    the other parts are kept from ``previous`` (the dataset's results so far)."""
    from core.params import default_params
    from core.prepare import DataOptions

    t0 = time.perf_counter()
    seed = DataOptions().seed
    run = {"random_state": seed, "num_threads": threads or 0}
    earlier = previous or {"rows": {}, "skipped": {}}
    # Rows of the parts being measured go (they may come back under other names, or skipped).
    rows = {n: r for n, r in earlier["rows"].items() if _part_of(n) not in only}
    skipped: dict[str, str] = {n: w for n, w in earlier.get("skipped", {}).items() if _part_of(n) not in only}

    def say(what: str) -> None:
        print(f"{name}: {what} ({time.perf_counter() - t0:.0f}s)", flush=True)

    with dataset_workspace(name, "cftune-bpr-quality-") as (root, data, prepared, refs):
        if "kernel" in only:
            defaults = default_params("bpr", None, prepared)
            rows["default"], default_test = tested(prepared, {**defaults, **run}, refs)
            for label, change in kernel_features(defaults).items():
                rows[f"kernel:{label}"], _ = tested(
                    prepared, {**defaults, **run, **change}, refs, default_test, "default"
                )
            say("default and kernel ablation done")

        if "torch" in only:
            torch = {**default_params("bpr", None, prepared, trainer="torch"), "trainer": "torch", **run}
            rows["torch_default"], torch_test = tested(prepared, torch, refs)
            adaptive = {**torch, "n_candidates": ADAPTIVE_CANDIDATES}
            rows["torch_adaptive"], _ = tested(prepared, adaptive, refs, torch_test, "torch_default")
            sources: dict[str, tuple[str, Callable[[], bool]]] = {
                "contextual": ("no item titles", lambda: prepared.data.item_titles is not None),
                "sentiment": ("play counts, no ratings", lambda: prepared.data.kind == "rating"),
            }
            for source, (why, ok) in sources.items():
                if not ok():
                    skipped[f"torch_{source}"] = why
                    continue
                params = {**torch, f"{source}_ratio": SOURCE_RATIO}
                rows[f"torch_{source}"], _ = tested(prepared, params, refs, torch_test, "torch_default")
            say("torch trainer and its sources done")

        if "tpe_kernel" in only:
            kernel_space = spaces_dir() / "bpr.yaml"
            rows["tpe_kernel"] = tpe_study(root, data, kernel_space, trials, threads, "tpe_kernel")
            say("kernel study done")
        budget = trials if torch_trials is None else torch_trials
        if "tpe_torch" in only and budget == 0:
            skipped["tpe_torch"] = "not run (--torch-trials 0): too slow for the torch trainer on this CPU"
        elif "tpe_torch" in only:
            space, dropped = advanced_space(prepared, root)
            rows["tpe_torch"] = tpe_study(root, data, space, budget, threads, "tpe_torch")
            rows["tpe_torch"]["left_out"] = dropped
            rows["tpe_torch"]["budget"] = budget
            say("torch study done")
    d, seg = prepared.data, prepared.segmentation
    return {
        "shape": {
            "users": d.n_users,
            "items": d.n_items,
            "interactions": len(d),
            "density": len(d) / (d.n_users * d.n_items),
            "trainable_users": None if seg is None else seg.n_trainable,
            "test_users": int(refs.popularity_test.metrics["users"]),
        },
        "has": {"titles": d.item_titles is not None, "ratings": d.kind == "rating"},
        "split": prepared.split.describe()["strategy"],
        "popularity": {m: refs.popularity_test.metrics[m] for m in METRICS},
        "ease": None
        if refs.ease_test is None
        else {**{m: refs.ease_test.metrics[m] for m in METRICS}, "l2": refs.ease_l2, "note": refs.note},
        "rows": rows,
        "skipped": skipped,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }


# ---------------------------------------------------------------------------------------------- the table
def _order(rows: dict[str, Any]) -> list[str]:
    """Default, its ablation, then :data:`ROWS`' order; anything else last."""
    wanted = ["default", *(n for n in rows if n.startswith("kernel:")), *ROWS[1:]]
    return [n for n in wanted if n in rows] + [n for n in rows if n not in wanted]


def markdown_table(result: dict[str, Any]) -> str:
    """The README table: per dataset and variant, test NDCG@10, its ratio to EASE and to its reference."""
    datasets = result.get("datasets", {})
    names = [n for n in DATASETS if n in datasets] + [n for n in datasets if n not in DATASETS]
    lines = [
        f"BPR vs EASE, test NDCG@10 (TPE studies of {result.get('trials')} trials); ratios with 95% paired "
        "bootstrap CIs over test users.",
        "",
        "| dataset | variant | NDCG@10 | x EASE | x reference | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        r = datasets[name]
        ease = "skipped" if r["ease"] is None else f"{r['ease']['ndcg@10']:.4f}"
        lines.append(f"| {name} | EASE | {ease} | 1.00x | | |")
        for variant in _order(r["rows"]):
            row = r["rows"][variant]
            ref = f"{ratio_cell(row['vs_reference'])} ({row['reference']})" if row.get("reference") else ""
            budget = row.get("budget")
            label = variant if budget in (None, result.get("trials")) else f"{variant} ({budget} trials)"
            cells = [
                name,
                f"{label} ({row['note']})" if row.get("note") else label,
                f"{row['test']['ndcg@10']:.4f}",
                ratio_cell(row["vs_ease"]),
                ref,
                f"{row['wall_seconds']:.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        for variant, why in r.get("skipped", {}).items():
            lines.append(f"| {name} | {variant} | skipped: {why} | | | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/bpr_quality.py", description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p, DATASETS, NAME)
    p.add_argument(
        "--torch-trials",
        type=int,
        default=None,
        help="the torch study budget where CPU time is short (default: --trials; 0: none; the table says so)",
    )
    p.add_argument("--threads", type=int, default=None, help="training threads (default: every core)")
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated parts of {PARTS} to re-measure on datasets already in the results (the other "
        "rows kept: after a change to one trainer)",
    )
    args = p.parse_args(argv)
    bad_threads = args.threads is not None and args.threads < 1
    if bad_threads or (args.torch_trials is not None and args.torch_trials < 0):
        print("error: --threads must be >= 1 and --torch-trials >= 0", file=sys.stderr)
        return 2
    only = PARTS if args.only is None else tuple(x.strip() for x in args.only.split(",") if x.strip())
    if not only or set(only) - set(PARTS):
        print(f"error: --only takes parts of {PARTS}, but got {args.only!r}", file=sys.stderr)
        return 2
    header = {"claim": __doc__.split("\n\n")[0].replace("\n", " "), "threads": args.threads}

    previous = (read_result(args.name) or {}).get("datasets", {})
    if args.only is not None:
        missing = [n for n in args.datasets.split(",") if n.strip() and n.strip() not in previous]
        if args.resume or missing:
            print(f"error: --only needs results to update ({missing} have none) and no --resume")
            return 2

    def one(name: str) -> dict[str, Any]:
        return measure(name, args.trials, args.threads, args.torch_trials, previous.get(name), only)

    return run_per_dataset(args, DATASETS, one, markdown_table, header)


if __name__ == "__main__":
    sys.exit(main())
