"""The one artifact writer: atomic files, and a run folder that holds everything needed to recompute metrics.

A run folder (``als_U.npy``, ``als_V.npy``, ``params.json``, ``metrics.json``, ``metadata.json``,
``mappings.json``, ``train.parquet``, ``valid.parquet``, ``test.parquet``) is written into a hidden temporary
folder beside the target and renamed into place in one step, so a reader never sees half a run. An existing
folder is never overwritten: with ``overwrite=True`` it is moved aside to ``<name>.previous-<time>`` first.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from core.errors import CftuneError, StoreFault
from core.faults import fault_cause

MODEL_NAMES = ("als", "bpr")


def json_default(obj: object) -> object:
    """``json.dumps(default=...)`` for numpy scalars and arrays, and paths."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _umask() -> int:
    """The process umask, read without setting it (os.umask would, for a moment, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make shared artifacts unreadable to others
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: object) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=json_default, allow_nan=True)
    return atomic_write_bytes(path, (text + "\n").encode())


def atomic_write_npy(path: str | Path, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_npz(path: str | Path, **arrays: ArrayLike) -> Path:
    """Several arrays in one file (training checkpoints)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class RunFolderExists(CftuneError, FileExistsError):
    """The output folder exists and is not empty; nothing was written."""


@dataclass(frozen=True)
class RunArtifacts:
    """A run folder read back: factors, parameters, metrics, metadata, id mappings and the split."""

    path: Path
    model: str
    user_factors: np.ndarray
    item_factors: np.ndarray
    params: dict[str, Any]
    metrics: dict[str, Any]
    metadata: dict[str, Any]
    mappings: dict[str, Any]  # user_to_idx, item_to_idx: {str id: row}; id_types: {column: "int" | "str"}
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    @property
    def users(self) -> pd.Index:
        """Original user ids in row order of ``user_factors`` (integers again where they were)."""
        return self._ids("user")

    @property
    def items(self) -> pd.Index:
        return self._ids("item")

    def matrix(self, *parts: str) -> sp.csr_matrix:
        """Users x items 0/1 matrix of the named split parts ("train", "valid", "test") in the folder's own
        index space: what a reader needs to recompute metrics or filter seen items."""
        frames = [getattr(self, p) for p in parts]
        frame = (
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"user_id": [], "item_id": []})
        )
        u = self.users.get_indexer(frame["user_id"])
        i = self.items.get_indexer(frame["item_id"])
        ok = (u >= 0) & (i >= 0)
        m = sp.csr_matrix(
            (np.ones(int(ok.sum()), dtype=np.float32), (u[ok], i[ok])),
            shape=(len(self.users), len(self.items)),
        )
        m.data[:] = 1
        return m

    def _ids(self, side: str) -> pd.Index:
        mapping = self.mappings[f"{side}_to_idx"]
        keys = sorted(mapping, key=mapping.__getitem__)
        return _restore_ids(keys, self.mappings.get("id_types", {}).get(f"{side}_id", "str"))


def save_run(
    out_dir: str | Path,
    *,
    model: str,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    metadata: Mapping[str, Any],
    users: pd.Index,
    items: pd.Index,
    train: pd.DataFrame | None,
    valid: pd.DataFrame | None,
    test: pd.DataFrame | None,
    extra_json: Mapping[str, object] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete run folder atomically and return its path.

    ``users[k]`` / ``items[k]`` are the original ids of row ``k`` of ``user_factors`` / ``item_factors``.
    ``extra_json`` adds further files (``{"history.json": {...}}``). A split part given as ``None`` is not
    written (a search trial's folder: the split lives once in the study's parent run).
    """
    if model not in MODEL_NAMES:
        raise ValueError(f"model must be one of {MODEL_NAMES}, but got {model=}.")
    if user_factors.shape[0] != len(users) or item_factors.shape[0] != len(items):
        raise ValueError(
            f"factor rows must match the mappings: U {user_factors.shape} for {len(users)} users, "
            f"V {item_factors.shape} for {len(items)} items"
        )
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise RunFolderExists(
            f"{out} exists and is not empty; choose another --out or pass --overwrite "
            "(the old folder is then kept as <name>.previous-<time>)"
        )
    with output_faults(out.parent):
        _write_run_folder(
            out,
            model,
            user_factors,
            item_factors,
            params,
            metrics,
            metadata,
            users,
            items,
            (("train", train), ("valid", valid), ("test", test)),
            extra_json,
        )
    return out


@contextmanager
def output_faults(folder: Path) -> Iterator[None]:
    """A storage fault (read-only, full) while writing into ``folder``: one line naming it, nothing left."""
    try:
        yield
    except OSError as exc:
        cause = fault_cause(exc)
        if cause is None:
            raise
        raise StoreFault(f"output folder {folder}: {cause}; nothing was saved") from None


def check_writable(folder: Path) -> None:
    """Fail before any training when nothing could be saved into ``folder`` (read-only, full)."""
    with output_faults(folder):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass


def _write_run_folder(
    out: Path,
    model: str,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    metadata: Mapping[str, Any],
    users: pd.Index,
    items: pd.Index,
    parts: Iterable[tuple[str, pd.DataFrame | None]],
    extra_json: Mapping[str, object] | None,
) -> None:
    """The files of a run folder, written into a temporary folder beside ``out`` then renamed to it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # a run folder is for sharing; mkdtemp's 0700 is for secrets
        atomic_write_npy(tmp / f"{model}_U.npy", user_factors)
        atomic_write_npy(tmp / f"{model}_V.npy", item_factors)
        atomic_write_json(tmp / "params.json", dict(params))
        atomic_write_json(tmp / "metrics.json", dict(metrics))
        atomic_write_json(tmp / "metadata.json", {"model": model, **dict(metadata)})
        atomic_write_json(
            tmp / "mappings.json",
            {
                "user_to_idx": {str(u): k for k, u in enumerate(users)},
                "item_to_idx": {str(i): k for k, i in enumerate(items)},
                "id_types": {"user_id": _id_type(users), "item_id": _id_type(items)},
            },
        )
        for name, frame in parts:
            if frame is not None:
                atomic_write_parquet(tmp / f"{name}.parquet", _stringify_ids(frame))
        for name, obj in (extra_json or {}).items():
            atomic_write_json(tmp / name, obj)
        if out.exists():
            if not out.is_dir() or any(out.iterdir()):
                out.rename(_free_name(out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")))
            else:
                out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... whichever does not exist yet (two overwrites in one second)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _id_type(index: pd.Index) -> str:
    """How to turn the stored string keys back into original ids: "int" or "str"."""
    return "int" if pd.api.types.is_integer_dtype(index) else "str"


def _restore_ids(keys: object, id_type: str) -> pd.Index:
    index = pd.Index(list(keys), dtype=object)  # type: ignore[call-overload]
    return pd.Index(index.astype(np.int64)) if id_type == "int" else pd.Index(index.astype(str), dtype=object)


def _stringify_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids are stored as strings, the same keys as ``mappings.json``, so any reader can join them."""
    out = frame.copy()
    for col in ("user_id", "item_id"):
        if col in out.columns:
            out[col] = out[col].astype(str)
    return out


def load_run(path: str | Path) -> RunArtifacts:
    """Read a run folder written by :func:`save_run`."""
    path = Path(path)
    if not (path / "metadata.json").is_file():
        raise CftuneError(f"{path} is not a cftune run folder (no metadata.json)")
    metadata = read_json(path / "metadata.json")
    model = metadata["model"]
    mappings = read_json(path / "mappings.json")
    id_types = mappings.get("id_types", {})

    def split_part(name: str) -> pd.DataFrame:
        if not (path / f"{name}.parquet").is_file():  # a search trial: the split is in the parent run
            return pd.DataFrame({"user_id": [], "item_id": []})
        frame = pd.read_parquet(path / f"{name}.parquet")
        for col in ("user_id", "item_id"):
            if id_types.get(col) == "int" and len(frame):
                frame[col] = frame[col].astype(np.int64)
        return frame

    return RunArtifacts(
        path=path,
        model=model,
        user_factors=np.load(path / f"{model}_U.npy"),
        item_factors=np.load(path / f"{model}_V.npy"),
        params=read_json(path / "params.json"),
        metrics=read_json(path / "metrics.json"),
        metadata=metadata,
        mappings=mappings,
        train=split_part("train"),
        valid=split_part("valid"),
        test=split_part("test"),
    )
