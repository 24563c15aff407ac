"""Reference models on the study's split, computed once per (data, split) and cached.

Popularity is the floor; EASE (Steck 2019, closed form, lambda tuned on validation) is the strong reference a
tuned model should be measured against. Both are evaluated on validation (train items excluded) and, refit on
train + validation, on test (train and validation items excluded) with per-user values kept for paired CIs.
Above :data:`core.baselines.EASE_MAX_ITEMS` users AND items, EASE is fit on that many most popular items and
ranks the others last (the note says so). The cache is keyed by ``data_version_hash`` (data AND split): a
changed split never gets stale numbers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from core.artifacts import atomic_write_bytes, atomic_write_json
from core.baselines import EASE_L2_GRID, EASE_MAX_ITEMS, EASEScorer, PopularityScorer, tune_ease
from core.evaluate import EvalResult, evaluate_scorer
from core.names import DEFAULT_KS
from core.prepare import Prepared
from search.validation_sample import digest


@dataclass
class References:
    popularity_valid: EvalResult
    popularity_test: EvalResult
    ease_valid: EvalResult | None
    ease_test: EvalResult | None
    ease_l2: float | None
    ease_scores: dict[float, float]
    note: str


def _save(path: Path, results: dict[str, EvalResult | None], meta: dict[str, object]) -> None:

    arrays: dict[str, np.ndarray] = {}
    index: dict[str, object] = {"meta": meta, "results": {}}
    for name, r in results.items():
        if r is None:
            continue
        index["results"][name] = {"metrics": r.metrics, "ks": list(r.ks)}  # type: ignore[index]
        arrays[f"{name}.users"] = r.users
        for metric, values in r.per_user.items():
            arrays[f"{name}.{metric}"] = values
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
    atomic_write_json(path.with_suffix(".json"), index)


def _load(path: Path) -> tuple[dict[str, EvalResult], dict[str, object]] | None:
    if not (path.with_suffix(".json").is_file() and path.with_suffix(".npz").is_file()):
        return None
    index = json.loads(path.with_suffix(".json").read_text())
    out: dict[str, EvalResult] = {}
    with np.load(path.with_suffix(".npz")) as arrays:
        for name, info in index["results"].items():
            per_user = {m: arrays[f"{name}.{m}"] for m in info["metrics"] if f"{name}.{m}" in arrays}
            out[name] = EvalResult(info["metrics"], per_user, arrays[f"{name}.users"], tuple(info["ks"]))
    return out, index["meta"]


def compute_references(
    prepared: Prepared,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    cache_dir: Path | None = None,
    ease: bool = True,
    show_progress: bool | None = None,
    sample: np.ndarray | None = None,
) -> tuple[References, bool]:
    """Popularity and EASE on validation and test; returns (references, served_from_cache). Cached under
    ``cache_dir`` when one is given. ``show_progress``: a bar on stderr over EASE's lambdas and its refit;
    None shows it where stderr is a terminal, False never (a quiet study passes False). ``sample``: the
    validation users EASE's lambda is chosen on (the study's sample, :mod:`search.validation_sample`; None:
    all); every reported number is on all users either way."""
    ks = tuple(sorted(set(ks)))
    key = f"{prepared.data_version_hash}-k{'-'.join(map(str, ks))}-ease{int(ease)}-climb"
    if sample is not None:  # another sample may choose another lambda
        key += f"-s{digest(sample)}"
    path = None if cache_dir is None else Path(cache_dir) / key
    if path is not None and (cached := _load(path)) is not None:
        results, meta = cached
        return (
            References(
                results["popularity_valid"],
                results["popularity_test"],
                results.get("ease_valid"),
                results.get("ease_test"),
                meta.get("ease_l2"),  # type: ignore[arg-type]
                {float(k): v for k, v in dict(meta.get("ease_scores") or {}).items()},  # type: ignore[call-overload]
                str(meta.get("note", "")),
            ),
            True,
        )
    s = prepared.split
    train, valid_truth = s.valid_exclude(), s.valid_truth()
    history, test_truth = s.test_exclude(), s.test_truth()
    pop_valid = evaluate_scorer(PopularityScorer.fit(train), valid_truth, train, ks=ks)
    pop_test = evaluate_scorer(PopularityScorer.fit(history), test_truth, history, ks=ks)
    if ease:
        matrices = (train, valid_truth, history, test_truth)
        ease_valid, ease_test, l2, scores, note = _ease(matrices, s.n_items, ks, show_progress, sample)
    else:
        ease_valid, ease_test, l2, scores, note = None, None, None, {}, "EASE not requested"
    refs = References(pop_valid, pop_test, ease_valid, ease_test, l2, scores, note)
    if path is not None:
        _save(
            path,
            {
                "popularity_valid": pop_valid,
                "popularity_test": pop_test,
                "ease_valid": ease_valid,
                "ease_test": ease_test,
            },
            {"ease_l2": l2, "ease_scores": {str(k): v for k, v in scores.items()}, "note": note},
        )
    return refs, False


def _ease(
    matrices: tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix, sp.csr_matrix],
    n_items: int,
    ks: tuple[int, ...],
    show_progress: bool | None,
    sample: np.ndarray | None,
) -> tuple[EvalResult, EvalResult, float, dict[float, float], str]:
    """EASE's lambda chosen on validation (on ``sample`` when given), its all-user validation result, its
    refit on train + validation tested once, the scores of the lambdas tried, and the note saying so.
    ``matrices``: (train, validation truth, train + validation history, test truth) of the split."""
    train, valid_truth, history, test_truth = matrices
    disable = None if show_progress is None else not show_progress
    with tqdm(desc="EASE", unit="fit", disable=disable, leave=False) as bar:

        def keep(l2_tried: float, result: EvalResult) -> None:
            bar.set_postfix_str(f"lambda {l2_tried:g}: ndcg@10 {result.metrics['ndcg@10']:.4f}")
            bar.update(1)

        tuning = tune_ease(train, valid_truth, l2_grid=EASE_L2_GRID, ks=ks, users=sample, on_result=keep)
        l2, ease_valid = tuning.l2, tuning.valid
        scores = dict(sorted(tuning.scores.items()))
        del tuning  # its scorer before the refit's
        bar.set_postfix_str(f"refit on train + validation, lambda {l2:g}")
        refit = EASEScorer.fit(history, l2)
        ease_test = evaluate_scorer(refit, test_truth, history, ks=ks)
        bar.update(1)
    on = "validation" if sample is None else f"a sample of {len(sample)} validation users"
    note = f"EASE lambda {l2:g} chosen on {on} from {sorted(scores)} (a climb over {list(EASE_L2_GRID)})"
    if refit.kept is not None:
        note += (
            f"; fit on the {len(refit.kept)} most popular of {n_items} items (users with history and"
            f" items both above {EASE_MAX_ITEMS}), the others ranked last"
        )
    return ease_valid, ease_test, l2, scores, note
