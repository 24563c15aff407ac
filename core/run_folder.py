"""A finished run as a run folder: the refit model, its metrics, the split and the metadata that identifies
data, code and machine. The atomic writing itself is :mod:`core.artifacts`'s; this module decides what goes
in.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from core.artifacts import save_run
from core.evaluate import EvalResult
from core.final import FinalResult
from core.interactions import Interactions
from core.model import Model
from core.params import split_params
from core.prepare import Prepared


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_metadata(prepared: Prepared, fitted: Model, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_version_hash": prepared.data_version_hash,
        "data_source": prepared.data.source,
        "synthetic": prepared.synthetic,
        "git_commit": git_commit(),
        "system_info": {
            "platform": platform.platform(),
            "python_version": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 2),
            "cpu_count": os.cpu_count(),
        },
        "training": {
            "fit_seconds": fitted.fit_seconds_,
            "peak_rss_mb": fitted.peak_rss_mb_,
            "iterations": fitted.n_iterations_,
            "stopped_early": fitted.stopped_early_,
        },
        **prepared.describe(),
        **(extra or {}),
    }


def save(
    out: str | Path,
    prepared: Prepared,
    model: str,
    params: dict[str, Any],
    final: FinalResult,
    valid: EvalResult | dict[str, float] | None,
    *,
    overwrite: bool = False,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    s = prepared.split
    fitted = final.model
    metadata = run_metadata(
        prepared,
        fitted,
        {
            "score_range": final.score_range.to_dict(),
            "refit": "U and V are refit on train + validation; test metrics come from them, "
            "validation metrics from the fit on train only",
            **(extra_metadata or {}),
        },
    )
    return save_run(
        out,
        model=model,
        user_factors=fitted.user_factors_,
        item_factors=fitted.item_factors_,
        params={**fitted.get_params(), **split_params(params)[1]},
        metrics=final.metrics_json(valid),
        metadata=metadata,
        users=s.train.users,
        items=s.train.items,
        train=split_frame(s.train),
        valid=split_frame(s.valid),
        test=split_frame(s.test),
        extra_json={"history.json": fitted.history_.to_dict()},
        overwrite=overwrite,
    )


def split_frame(part: Interactions) -> pd.DataFrame:
    """A split part as stored in a run folder: original ids, rating, time (review texts stay out)."""
    return part.to_frame().drop(columns=["text"], errors="ignore")
