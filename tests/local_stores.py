"""Throw-away shared stores for tests: ``scripts/stores.sh`` on free ports in a folder the ``postgres`` user
can reach (the cluster runs as that user when the tests run as root), and a cluster made the way the
scripts/stores.sh of before made them (trust authentication, role cftune the superuser)."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORES_SH = ROOT / "scripts" / "stores.sh"
TIMEOUT = 300  # s: a first start initialises a cluster and migrates MLflow's schema


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin() -> Path | None:
    """The newest PostgreSQL's bin folder, or None when PostgreSQL is not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    ctl = shutil.which("pg_ctl")
    return Path(ctl).parent if ctl else None


def require_pg_bin() -> Path:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql, or: make system-deps)")
    return bindir


def reachable_folder(prefix: str) -> Path:
    """A fresh folder under the system temp dir that other users may traverse (pytest's own are 0700)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def as_cluster_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Stores:
    """A stores folder and what ``scripts/stores.sh`` needs to manage it (ports, the Python with mlflow)."""

    folder: Path
    env: dict[str, str]

    def run(self, action: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(STORES_SH), action, str(self.folder)],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def start(self, cwd: Path | None = None) -> dict[str, str]:
        """Start both stores; the variables ``start`` exports, read the way a shell's ``eval`` reads them."""
        started = self.run("start", cwd)
        assert started.returncode == 0, started.stderr[-3000:]
        return exports(started.stdout)

    def stop(self) -> None:
        stopped = self.run("stop")
        assert stopped.returncode == 0, stopped.stderr[-3000:]


def exports(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, value = words[1].split("=", 1)
        found[name] = value
    return found


def stores_in(folder: Path, auth: str = "none") -> Stores:
    env = {
        **os.environ,
        "CFTUNE_PG_PORT": str(free_port()),
        "CFTUNE_MLFLOW_PORT": str(free_port()),
        "CFTUNE_MLFLOW_WORKERS": "1",
        "CFTUNE_MLFLOW_AUTH": auth,
        "CFTUNE_PYTHON": sys.executable,
    }
    return Stores(folder, env)


def trusting_cluster(bindir: Path, folder: Path, port: int) -> None:
    """A running cluster in folder/pgdata as the old scripts/stores.sh left one: ``initdb --auth=trust`` with
    bootstrap superuser cftune, databases cftune and mlflow, listening on 127.0.0.1:port."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    user = as_cluster_user()

    def run(*cmd: str) -> None:
        subprocess.run([*user, *cmd], check=True, capture_output=True, timeout=120, cwd=folder)

    run(str(bindir / "initdb"), "-D", "pgdata", "-U", "cftune", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    run(str(bindir / "pg_ctl"), "-D", "pgdata", "-l", "postgres.log", "-w", "-o", opts, "start")
    for db in ("cftune", "mlflow"):
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "cftune", db)
