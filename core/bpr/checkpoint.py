"""The kernel BPR's checkpoints (one ``.npz`` an epoch, everything a bit-for-bit resume needs), and the
checkpoint arguments both trainers take."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.artifacts import atomic_write_npz
from core.bpr.settings import is_int
from core.callbacks import TrainingHistory
from core.errors import ConfigError, DataError

CHECKPOINT_GLOB = "bpr_epoch_*.npz"


def check_checkpointing(checkpoint_dir: str | Path | None, checkpoint_every: int) -> None:
    """``checkpoint_every`` (both trainers): an integer >= 0, and above 0 only with a ``checkpoint_dir``."""
    if not is_int(checkpoint_every) or checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be an integer >= 0, but got {checkpoint_every=}.")
    if checkpoint_every and checkpoint_dir is None:
        raise ConfigError(f"checkpoint_every needs a checkpoint_dir, but got {checkpoint_dir=}.")


def save_checkpoint(
    path: Path,
    *,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    epoch: int,
    learning_rate: float,
    seed: int,
    num_threads: int,
    seeds: np.ndarray,
    counts: np.ndarray,
    history: TrainingHistory,
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Everything a resume needs to continue bit-for-bit: factors, epoch, seeding, counts, history, and the
    sampling / loss ``options`` (``n_candidates``, ``n_negatives``, ``loss``, ...) the run used."""
    return atomic_write_npz(
        path,
        user_factors=user_factors,
        item_factors=item_factors,
        epoch=np.int64(epoch),
        learning_rate=np.float64(learning_rate),
        seed=np.int64(seed),
        num_threads=np.int64(num_threads),
        seeds=seeds,
        counts=counts,
        history=np.array(json.dumps(history.to_dict())),
        options=np.array(json.dumps(dict(options or {}))),
    )


def load_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read a checkpoint file, or the latest one in a folder."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(CHECKPOINT_GLOB))
        if not found:
            raise DataError(f"no BPR checkpoint ({CHECKPOINT_GLOB}) in {path}")
        path = found[-1]
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
