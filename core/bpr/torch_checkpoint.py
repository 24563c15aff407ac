"""TorchBPR's checkpoints: the net, the optimizer, both random streams and the history, written after an
epoch and loaded back so that a resumed run continues bit for bit. Imports torch."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.artifacts import atomic_write_bytes
from core.bpr.optimizer import OptimizerConfig
from core.bpr.torch_net import BPRNet
from core.callbacks import TrainingHistory
from core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CHECKPOINT_GLOB = "torch_bpr_epoch_*.pt"
_CHECKPOINT_FORMAT = "cftune.torch_bpr/1"


def save_torch_checkpoint(
    path: Path,
    *,
    net: BPRNet,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    generator: torch.Generator,
    epoch: int,
    seed: int,
    config: OptimizerConfig,
    history: TrainingHistory,
    run: dict[str, Any] | None = None,
) -> Path:
    """Everything a resume needs to continue bit for bit, written atomically (temp file + ``os.replace``);
    ``run``: the settings besides the optimizer that shape the remaining epochs, compared on resume."""
    state = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "seed": int(seed),
        "net": {name: t.detach().cpu() for name, t in net.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "optimizer_name": config.optimizer,
        "optimizer_config": json.dumps(dataclasses.asdict(config)),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": generator.get_state(),
        "history": json.dumps(history.to_dict()),
        "run": json.dumps(run or {}),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_torch_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file, or the latest one in a folder (tensors on CPU, no pickled code)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(CHECKPOINT_GLOB))
        if not found:
            raise DataError(f"no TorchBPR checkpoint ({CHECKPOINT_GLOB}) in {path}")
        path = found[-1]
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise DataError(f"{path} is not a TorchBPR checkpoint ({_CHECKPOINT_FORMAT})")
    return ckpt


def restore_torch_checkpoint(
    ckpt: dict[str, Any],
    net: BPRNet,
    optimizer: torch.optim.Optimizer,
    *,
    streams: tuple[np.random.Generator, torch.Generator],
    seed: int,
    config: OptimizerConfig,
    run: dict[str, Any],
    shape_of: str,
) -> int:
    """Load a checkpoint into a fit's freshly built net, optimizer and random ``streams`` (sampling,
    dropout); returns the epoch it was taken after. ``run``: the fit's settings besides the optimizer (a
    change is a warning), ``shape_of``: the settings that shape the weights, named when they do not fit."""
    rng, generator = streams
    shapes = {name: tuple(t.shape) for name, t in ckpt["net"].items()}
    wanted = {name: tuple(p.shape) for name, p in net.state_dict().items()}
    if shapes != wanted:
        raise DataError(f"checkpoint weights {shapes} do not fit {wanted} ({shape_of}, data shape)")
    saved_sparse = bool(json.loads(ckpt["optimizer_config"]).get("sparse", False))
    if ckpt["optimizer_name"] != config.optimizer or saved_sparse != config.sparse:
        raise ConfigError(
            f"checkpoint was trained with optimizer={ckpt['optimizer_name']!r}, sparse={saved_sparse}, "
            f"but this run uses optimizer={config.optimizer!r}, sparse={config.sparse}"
        )
    if int(ckpt["seed"]) != seed:
        log.warning("resuming with a different random_state: the run will not be exact")
    saved = {
        "n_candidates": 1,  # a checkpoint from before adaptive sampling drew one candidate
        **json.loads(ckpt.get("run", "{}")),
        "optimizer": json.loads(ckpt["optimizer_config"]),
    }
    now = {**run, "optimizer": json.loads(json.dumps(dataclasses.asdict(config)))}
    changed = sorted(k for k in saved if k in now and saved[k] != now[k])
    if changed:
        log.warning(
            "resuming with other %s than the checkpoint's: the run will not equal an uninterrupted one",
            ", ".join(changed),
        )
    net.load_state_dict(ckpt["net"])
    optimizer.load_state_dict(ckpt["optimizer"])
    rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
    generator.set_state(ckpt["torch_rng"])
    return int(ckpt["epoch"])
