"""Claim (issue 23): the defaults and the searches hold on every shape a user may bring, not on the handful of
datasets they were measured on. Default ALS and default BPR (``python -m core.train``, no preset, no params)
reach >= 1.2x popularity's test NDCG@10 on every shape of a sweep of generated logs; where the data leaves
little to learn (EASE under 1.3x popularity) they never fall below popularity and reach >= 0.9x EASE; and
30-trial TPE studies of both models reach EASE on a subset of the shapes.

The sweep: :data:`SWEEP_SIZE` shapes drawn by a scrambled Sobol design (seed :data:`SEED`) over the
:data:`DIMENSIONS` (users, items, mean history length, its tail, taste rank, popularity skew, share of
positives, rating noise, taste strength), each point mapped to :func:`core.planted.make_planted`'s arguments
by :func:`shape_params` (at most :data:`MAX_INTERACTIONS` interactions, at most a quarter of the items per
user on average); plus the :data:`NAMED` shapes: the logs where issue 23 saw the defaults fail, and corners
where the data leaves little to learn (few items, short histories, strong popularity, weak tastes).

Every shape is assigned once, by a seeded draw made before any result was seen (:func:`assignment`), to the
**design** set, where rules may be fitted, or the **check** set, where they are judged; :data:`TPE_PER_SET`
shapes of each set (and every named shape of 1M interactions or more) also get a 30-trial TPE study per
model. Per shape: popularity and EASE (the studies' own references), default ALS and BPR
(:func:`bench.quality.default_model`), and the TPE studies (:func:`bench.quality.tpe_study`, with the best
trial by validation value tested beside the selected one); on the design set, the scans that rules are
fitted on (BPR's regularization, ALS's regularization and alpha, one at a time around the default); every
ratio with a 95% paired bootstrap CI over test users.

Run: ``python bench/shapes.py [--trials 30] [--datasets s00,s01] [--resume] [--only defaults,scan_bpr]``
(parts of :data:`PARTS`): the JSON is written after each shape, so an interrupted run continues with
``--resume``, and processes on different shapes can share one results file (one per core: ``--datasets`` of
each). ``--only defaults`` re-measures the defaults of shapes already measured, keeping their other parts
(after a change to a rule).
``--list`` prints the shapes, their sets and arguments; ``--table`` the README summary. Writes
bench/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_dataset_arguments, read_result, run_per_dataset
from bench.quality import (
    METRICS,
    dataset_workspace,
    default_model,
    ease_row,
    ratio_cell,
    tpe_study,
    versus,
)

NAME = "shapes"
SEED = 2026
SWEEP_SIZE = 32
MAX_INTERACTIONS = 2_000_000
#: The sweep's dimensions: (low, high, log scale?). ``history`` is the mean interactions per user, and
#: ``activity_sigma`` the log-normal tail of the per-user counts around it.
DIMENSIONS: dict[str, tuple[float, float, bool]] = {
    "users": (500, 100_000, True),
    "items": (300, 20_000, True),
    "history": (2, 100, True),
    "activity_sigma": (0.5, 1.5, False),
    "rank": (4, 64, True),
    "popularity_skew": (0.2, 1.5, False),
    "positive_share": (0.3, 0.9, False),
    "rating_noise": (0.2, 1.5, False),
    "signal": (0.75, 3.0, False),
}
#: Shapes named for what they stand for: the logs of issue 23 (as far as their shape is known) and corners
#: with little to learn. In :func:`make_planted`'s arguments (``density`` = history / items).
NAMED: dict[str, dict[str, Any]] = {
    "issue-bpr-8k": {"n_users": 8000, "n_items": 3900, "rank": 20, "density": 25 / 3900},
    "issue-visits": {"n_users": 10_000, "n_items": 3700, "rank": 16, "density": 3 / 3700, "signal": 1.5},
    "issue-restaurants": {
        "n_users": 3700,
        "n_items": 420,
        "rank": 8,
        "density": 6.6 / 420,
        "popularity_skew": 1.2,
        "signal": 0.75,
    },
    "issue-als-1m": {"n_users": 40_000, "n_items": 4000, "rank": 16, "density": 25 / 4000},
    "corner-few-items": {
        "n_users": 5000,
        "n_items": 300,
        "rank": 4,
        "density": 4 / 300,
        "popularity_skew": 1.5,
        "signal": 0.5,
    },
    "corner-short-popular": {
        "n_users": 20_000,
        "n_items": 1000,
        "rank": 8,
        "density": 2 / 1000,
        "popularity_skew": 1.4,
        "signal": 1.0,
        "activity_sigma": 0.5,
    },
    "large-1m": {"n_users": 60_000, "n_items": 20_000, "rank": 32, "density": 20 / 20_000},
}
#: TPE studies per set (design, check), drawn among shapes of at most :data:`TPE_MAX_INTERACTIONS`.
TPE_PER_SET = 5
TPE_MAX_INTERACTIONS = 400_000
SETS = ("design", "check")


def shape_params(point: Sequence[float], seed: int) -> dict[str, Any]:
    """A point of the unit cube (a coordinate per :data:`DIMENSIONS` entry) as ``make_planted`` arguments."""
    v = {}
    for x, (name, (low, high, log)) in zip(point, DIMENSIONS.items(), strict=True):
        v[name] = math.exp(math.log(low) + x * math.log(high / low)) if log else low + x * (high - low)
    items = round(v["items"])
    history = min(v["history"], items / 4)
    users = min(round(v["users"]), int(MAX_INTERACTIONS / history))
    return {
        "n_users": users,
        "n_items": items,
        "rank": round(v["rank"]),
        "density": round(history / items, 8),
        "popularity_skew": round(v["popularity_skew"], 3),
        "rating_noise": round(v["rating_noise"], 3),
        "activity_sigma": round(v["activity_sigma"], 3),
        "signal": round(v["signal"], 3),
        "positive_share": round(v["positive_share"], 3),
        "seed": seed,
    }


def all_shapes() -> dict[str, dict[str, Any]]:
    """Every shape of the sweep by name: ``s00``... from the Sobol design, then the :data:`NAMED` ones."""
    from scipy.stats import qmc

    points = qmc.Sobol(d=len(DIMENSIONS), scramble=True, seed=SEED).random(SWEEP_SIZE)
    shapes = {f"s{k:02d}": shape_params(p, seed=SEED + k) for k, p in enumerate(points)}
    for k, (name, params) in enumerate(NAMED.items()):
        shapes[name] = {**params, "seed": SEED + SWEEP_SIZE + k}
    return shapes


def interactions(params: dict[str, Any]) -> int:
    """About how many interactions a shape has (the mean history times the users)."""
    return round(params["n_users"] * params["density"] * params["n_items"])


def assignment() -> dict[str, dict[str, Any]]:
    """Each shape's set and whether it gets the TPE studies: a seeded draw, made before any result was seen
    and never redrawn. Half the shapes go to each set; in each set :data:`TPE_PER_SET` shapes of at most
    :data:`TPE_MAX_INTERACTIONS` are studied, and every named shape of 1M interactions or more."""
    import numpy as np

    shapes = all_shapes()
    names = list(shapes)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(names))
    sets = {names[i]: SETS[rank % 2] for rank, i in enumerate(order)}
    tpe = {n for n in NAMED if interactions(shapes[n]) >= 1_000_000}
    for which in SETS:
        small = [n for n in names if sets[n] == which and interactions(shapes[n]) <= TPE_MAX_INTERACTIONS]
        tpe |= {small[i] for i in rng.choice(len(small), size=min(TPE_PER_SET, len(small)), replace=False)}
    return {n: {"set": sets[n], "tpe": n in tpe, "params": shapes[n]} for n in names}


ASSIGNMENT = assignment()
DATASETS = tuple(ASSIGNMENT)
PARTS = ("defaults", "tpe", "scan_bpr", "scan_als")
#: The ``scan_*`` parts (design set only): the default with one parameter changed, refit on train + validation
#: and tested: the evidence the rules are fitted on. BPR's regularization at these values; ALS's
#: regularization and alpha at these multiples of their defaults.
SCAN_REGULARIZATION = (0.001, 0.003, 0.01, 0.03, 0.1)
SCAN_ALS_MULTIPLES = {"regularization": (0.03, 0.1, 0.3, 3.0), "alpha": (0.1, 0.3, 3.0)}


# ---------------------------------------------------------------------------------------------- measuring
def measure(name: str, trials: int, previous: dict[str, Any] | None, only: Sequence[str]) -> dict[str, Any]:
    """One shape's row, on stores and files that vanish afterwards: the :data:`PARTS` in ``only``, the others
    kept from ``previous``."""
    t0 = time.perf_counter()
    entry = ASSIGNMENT[name]
    row: dict[str, Any] = dict(previous or {})
    with dataset_workspace(name, "cftune-shapes-", entry["params"]) as (root, data, prepared, refs):
        d = prepared.data
        row.update(
            {
                "set": entry["set"],
                "generator": {"function": "make_planted", **entry["params"]},
                "shape": {
                    "users": d.n_users,
                    "items": d.n_items,
                    "interactions": len(d),
                    "density": len(d) / (d.n_users * d.n_items),
                    "liked_share": float(d.positive_mask().mean()),
                    "test_users": int(refs.popularity_test.metrics["users"]),
                },
                "popularity": {m: refs.popularity_test.metrics[m] for m in METRICS},
                "ease": ease_row(refs),
            }
        )
        if "defaults" in only:
            for model in ("als", "bpr"):
                row[f"default_{model}"] = default_model(model, data, prepared, refs, root)
            print(f"{name}: defaults done ({time.perf_counter() - t0:.0f}s)", flush=True)
        for part, scan in (("scan_bpr", regularization_scan), ("scan_als", als_scan)):
            if part in only and entry["set"] == "design":
                row[part] = scan(prepared, refs)
                print(f"{name}: {part} done ({time.perf_counter() - t0:.0f}s)", flush=True)
        if "tpe" in only and entry["tpe"]:
            for model in ("als", "bpr"):
                row[f"tpe_{model}"] = tpe_study(data, prepared, refs, root, trials, model, curve=False)
                print(f"{name}: TPE {model} done ({time.perf_counter() - t0:.0f}s)", flush=True)
    row["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _tested(prepared: Any, refs: Any, model: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` refit on train + validation and tested once: test metrics and the ratio to popularity."""
    from core.final import final_test
    from core.names import DEFAULT_KS

    test = final_test(prepared, model, params, ks=DEFAULT_KS).test
    metrics = {m: test.metrics[m] for m in METRICS}
    return {"test": metrics, "vs_popularity": versus(test, refs.popularity_test)}


def als_scan(prepared: Any, refs: Any) -> dict[str, Any]:
    """Default ALS with its regularization, then its alpha, at each of :data:`SCAN_ALS_MULTIPLES` times the
    default (:func:`_tested`), by parameter and multiple."""
    from core.params import default_params
    from core.prepare import DataOptions

    base = {**default_params("als", None, prepared), "random_state": DataOptions().seed}
    out: dict[str, Any] = {"base": base}
    for name, multiples in SCAN_ALS_MULTIPLES.items():
        out[name] = {
            str(m): _tested(prepared, refs, "als", {**base, name: base[name] * m}) for m in multiples
        }
    return out


def regularization_scan(prepared: Any, refs: Any) -> dict[str, Any]:
    """Default BPR (:func:`core.params.default_params`) at each :data:`SCAN_REGULARIZATION` (:func:`_tested`),
    by regularization."""
    from core.params import default_params
    from core.prepare import DataOptions

    base = {**default_params("bpr", None, prepared), "random_state": DataOptions().seed}
    out: dict[str, Any] = {"base": base}
    for reg in SCAN_REGULARIZATION:
        out[str(reg)] = _tested(prepared, refs, "bpr", {**base, "regularization": reg})
    return out


# ---------------------------------------------------------------------------------------------- the table
def _ratio(cmp: dict[str, Any] | None) -> float | None:
    return None if cmp is None else 1 + cmp["ndcg@10"]["improvement_pct"]["value"] / 100


def verdicts(row: dict[str, Any]) -> list[str]:
    """What a shape fails of the claim (empty: it passes): each default's floor against popularity, and
    where EASE is under 1.3x popularity its floors against popularity and EASE."""
    fails = []
    pop, ease = row["popularity"]["ndcg@10"], (row["ease"] or {}).get("ndcg@10")
    little = ease is not None and ease < 1.3 * pop
    for model in ("als", "bpr"):
        r = row.get(f"default_{model}")
        if r is None:
            continue
        ratio = _ratio(r["vs_popularity"])
        if little:
            if ratio is not None and ratio < 1.0:
                fails.append(f"default {model} below popularity")
            vs_ease = _ratio(r["vs_ease"])
            if vs_ease is not None and vs_ease < 0.9:
                fails.append(f"default {model} under 0.9x EASE")
        elif ratio is not None and ratio < 1.2:
            fails.append(f"default {model} under 1.2x popularity")
    for model, floor in (("als", 1.0), ("bpr", 0.95)):
        r = row.get(f"tpe_{model}")
        if r is not None and row["set"] == "check" and (_ratio(r["vs_ease"]) or 0.0) < floor:
            fails.append(f"TPE {model} under {floor}x EASE")
    return fails


def _worst(rows: dict[str, Any], key: str, against: str, n: int = 3) -> str:
    scored = [
        (_ratio(r[key][against]), name) for name, r in rows.items() if r.get(key) and r[key].get(against)
    ]
    scored.sort(key=lambda x: x[0] if x[0] is not None else math.inf)
    return "; ".join(f"{name} {ratio_cell(rows[name][key][against])}" for _, name in scored[:n]) or "n/a"


def _median(rows: dict[str, Any], key: str, against: str) -> str:
    values = sorted(v for r in rows.values() if r.get(key) and (v := _ratio(r[key][against])) is not None)
    return "n/a" if not values else f"{values[len(values) // 2]:.2f}x"


def markdown_table(result: dict[str, Any]) -> str:
    """The README summary: per set, the worst 3 and the median of each default (x popularity) and each TPE
    study (x EASE), then every failing shape and what it fails."""
    rows = result.get("datasets", {})
    lines = [
        f"Test NDCG@10 on {len(rows)} generated shapes ({result.get('trials')}-trial TPE studies on the TPE "
        "subset); ratios with 95% paired bootstrap CIs over test users.",
        "",
        "| set | shapes | what | median | worst 3 |",
        "|---|---|---|---|---|",
    ]
    for which in SETS:
        part = {n: r for n, r in rows.items() if r["set"] == which}
        for key, against, label in (
            ("default_als", "vs_popularity", "default ALS x popularity"),
            ("default_bpr", "vs_popularity", "default BPR x popularity"),
            ("tpe_als", "vs_ease", "TPE ALS x EASE"),
            ("tpe_bpr", "vs_ease", "TPE BPR x EASE"),
        ):
            counted = sum(1 for r in part.values() if r.get(key))
            cells = [which, str(counted), label, _median(part, key, against), _worst(part, key, against)]
            lines.append("| " + " | ".join(cells) + " |")
    failing = {n: f for n, r in rows.items() if (f := verdicts(r))}
    lines += ["", f"Failing shapes: {len(failing)} of {len(rows)}."]
    lines += [f"- {n} ({rows[n]['set']}): {', '.join(f)}" for n, f in failing.items()]
    return "\n".join(lines + selection_lines(rows))


def selection_lines(rows: dict[str, Any]) -> list[str]:
    """How the TPE studies' choices went: how often the trial the one-standard-error rule handed on tests
    worse than the best trial by validation value, and by how much; and how often a boundary warning fired."""
    studies = [(n, m, r[f"tpe_{m}"]) for n, r in rows.items() for m in ("als", "bpr") if r.get(f"tpe_{m}")]
    if not studies:
        return []
    other = [(n, m, t) for n, m, t in studies if not t.get("best_by_value", {}).get("same_as_selected", True)]
    worse = []
    for n, m, t in other:
        ratio = t["test"]["ndcg@10"] / t["best_by_value"]["test"]["ndcg@10"]
        if ratio < 1:
            worse.append(f"{n} {m.upper()} {ratio:.3f}x")
    looked = [(n, m, t) for n, m, t in studies if "boundary_hits" in t]  # recorded since the blend
    warned = [f"{n} {m.upper()}" for n, m, t in looked if t["boundary_hits"]]
    said = f" ({'; '.join(worse)}: test NDCG@10 of the selected over the best by value)" if worse else ""
    fired = f" ({', '.join(warned)})" if warned else ""
    return [
        "",
        f"Selection: in {len(other)} of {len(studies)} TPE studies the one-standard-error rule handed on "
        f"another trial than the best by validation; it tested worse in {len(worse)}{said}."
        + (f" Boundary warnings: {len(warned)} of {len(looked)}{fired}." if looked else ""),
    ]


def shape_list() -> str:
    """Every shape with its set, its TPE flag and its arguments (``--list``)."""
    out = []
    for name, e in ASSIGNMENT.items():
        p = e["params"]
        out.append(
            f"{name:22s} {e['set']:6s} {'tpe' if e['tpe'] else '   '} ~{interactions(p):>9,} "
            + " ".join(f"{k}={v}" for k, v in p.items() if k != "seed")
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/shapes.py", description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p, DATASETS, NAME)
    p.set_defaults(trials=30)
    p.add_argument("--only", default=None, help=f"comma-separated parts of {PARTS} to re-measure")
    p.add_argument("--list", action="store_true", help="print the shapes and their sets, and exit")
    args = p.parse_args(argv)
    if args.list:
        print(shape_list())
        return 0
    only = PARTS if args.only is None else tuple(x.strip() for x in args.only.split(",") if x.strip())
    if not only or set(only) - set(PARTS):
        print(f"error: --only takes parts of {PARTS}, but got {args.only!r}", file=sys.stderr)
        return 2
    previous = (read_result(args.name) or {}).get("datasets", {})
    header = {
        "claim": __doc__.split("\n\n")[0].replace("\n", " "),
        "design": {"seed": SEED, "sweep": SWEEP_SIZE, "dimensions": DIMENSIONS, "named": list(NAMED)},
    }

    def one(name: str) -> dict[str, Any]:
        return measure(name, args.trials, previous.get(name), only)

    return run_per_dataset(args, DATASETS, one, markdown_table, header)


if __name__ == "__main__":
    sys.exit(main())
