"""Shared fixtures: where the real datasets live (``CFTUNE_DATA_DIR`` overrides ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder holding ml-100k/, lastfm-2k/ and amazon-beauty/; tests that need it skip when it is absent."""
    root = Path(os.environ.get("CFTUNE_DATA_DIR", DEFAULT_DATA_DIR))
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set CFTUNE_DATA_DIR)")
    return root


@pytest.fixture(autouse=True)
def cftune_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default stores (``$CFTUNE_HOME``): nothing lands in the project's mlruns/."""
    home = tmp_path_factory.mktemp("cftune-home")
    monkeypatch.setenv("CFTUNE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CFTUNE_STORAGE", raising=False)
    return home
