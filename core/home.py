"""Where the project keeps what it writes by default: one rule for every store and cache.

``$CFTUNE_HOME``, else the project's ``mlruns/`` folder, absolute either way and never the current folder, so
commands run from anywhere find the same studies, champions and caches.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project's root folder (the one holding ``core/``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The environment variable that moves the home.
HOME_ENV = "CFTUNE_HOME"


def home() -> Path:
    """``$CFTUNE_HOME``, else the project's ``mlruns/`` folder (absolute either way)."""
    return Path(os.environ.get(HOME_ENV) or PROJECT_ROOT / "mlruns").resolve()
