"""scripts/stores.sh: the shared stores authenticate every client, run nothing a path says, and bring a
cluster of the old script (trust, superuser) up to that.

The tests start their own clusters and servers (the cluster as the ``postgres`` user when run as root); they
skip when PostgreSQL is not installed.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg2
import pytest
from mlflow import MlflowClient

from tests.local_stores import (
    STORES_SH,
    Stores,
    as_cluster_user,
    exports,
    free_port,
    reachable_folder,
    require_pg_bin,
    stores_in,
    trusting_cluster,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SHELL_CODE_NAME = "stores with spaces $(touch canary) `touch canary`"


class Started:
    """One running set of stores (basic auth on) in a folder whose name is shell code."""

    def __init__(self, root: Path, stores: Stores, exported: dict[str, str]) -> None:
        self.root, self.stores, self.exported = root, stores, exported
        self.port = int(stores.env["CFTUNE_PG_PORT"])
        self.secrets = stores.folder / "secrets"

    def password(self, role: str) -> str:
        return (self.secrets / f"{role}.pgpass").read_text().strip().split(":")[4]


@pytest.fixture(scope="module")
def started() -> Iterator[Started]:
    bindir = require_pg_bin()
    assert bindir.is_dir()
    root = reachable_folder("cftune-stores-")
    work = (
        root / "work"
    )  # the shell's working directory: anyone a `$(touch canary)` could run as may write it
    work.mkdir()
    work.chmod(0o777)
    stores = stores_in(root / SHELL_CODE_NAME, auth="basic")
    try:
        yield Started(root, stores, stores.start(cwd=work))
    finally:
        stores.run("stop")
        shutil.rmtree(root, ignore_errors=True)


def connect(port: int, user: str, dbname: str, **auth: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname=dbname, connect_timeout=10, **auth)


def query(port: int, user: str, dbname: str, sql: str, **auth: str) -> list[tuple[object, ...]]:
    conn = connect(port, user, dbname, **auth)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


IS_SUPERUSER = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"


def test_a_stores_folder_named_like_shell_code_is_used_and_none_of_it_runs(started: Started) -> None:
    assert (started.stores.folder / "pgdata" / "PG_VERSION").is_file()
    assert sorted(started.root.rglob("canary")) == []


@pytest.mark.parametrize(
    ("user", "dbname"), [("cftune", "cftune"), ("mlflow", "mlflow"), ("cftune_admin", "postgres")]
)
def test_every_role_needs_its_password(started: Started, user: str, dbname: str) -> None:
    with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
        connect(started.port, user, dbname, passfile=str(started.root / "no such file"))
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(started.port, user, dbname, password="a guess")


def test_another_local_user_can_neither_connect_nor_read_the_password_files(started: Started) -> None:
    if os.geteuid() != 0:
        pytest.skip("acting as another local user needs root")
    psql = require_pg_bin() / "psql"
    as_nobody = ["runuser", "-u", "nobody", "--"]
    query = [
        str(psql),
        "-w",
        "-h",
        "127.0.0.1",
        "-p",
        str(started.port),
        "-U",
        "cftune",
        "-d",
        "cftune",
        "-c",
        "select 1",
    ]
    tried = subprocess.run([*as_nobody, *query], capture_output=True, text=True, timeout=60, cwd="/")
    assert tried.returncode != 0 and "no password supplied" in tried.stderr
    read = subprocess.run(
        [*as_nobody, "cat", str(started.secrets / "cftune.pgpass")], capture_output=True, timeout=60
    )
    assert read.returncode != 0 and read.stdout == b""


def test_the_storage_url_reaches_optuna_through_its_password_file(started: Started) -> None:
    url = started.exported["CFTUNE_STORAGE"]
    assert "passfile=" in url and started.password("cftune") not in url
    study = optuna.create_study(study_name="through-passfile", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert len(optuna.load_study(study_name="through-passfile", storage=url).trials) == 2


def test_the_study_role_is_no_superuser_and_reaches_its_own_database_only(started: Started) -> None:
    password = started.password("cftune")
    flags = "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles"
    flags += " WHERE rolname = current_user"
    assert query(started.port, "cftune", "cftune", flags, password=password) == [(False,) * 5]
    owned = "SELECT datname FROM pg_database WHERE datdba = 'cftune'::regrole"
    assert query(started.port, "cftune", "cftune", owned, password=password) == [("cftune",)]
    for other in ("mlflow", "postgres", "template1"):
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            connect(started.port, "cftune", other, password=password)


def test_secrets_are_private_files_and_no_password_is_on_a_command_line(started: Started) -> None:
    assert stat.S_IMODE(started.secrets.stat().st_mode) == 0o700
    files = sorted(started.secrets.iterdir())
    assert {f.name for f in files} >= {"admin.pgpass", "cftune.pgpass", "mlflow.pgpass", "mlflow-credentials"}
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    passwords = [started.password(role) for role in ("admin", "cftune", "mlflow")]
    passwords.append(started.exported["MLFLOW_TRACKING_PASSWORD"])
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        assert not [p for p in passwords if p in args], cmdline


def test_the_mlflow_server_answers_401_without_credentials_and_serves_with_them(
    started: Started, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = started.exported["MLFLOW_TRACKING_URI"]
    search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=30)
    assert refused.value.code == 401
    user, password = (
        started.exported["MLFLOW_TRACKING_USERNAME"],
        started.exported["MLFLOW_TRACKING_PASSWORD"],
    )
    credentials = (started.secrets / "mlflow-credentials").read_text()
    assert (
        f"mlflow_tracking_username = {user}" in credentials
        and f"mlflow_tracking_password = {password}" in credentials
    )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(search, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("behind-basic-auth"))
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_status_of_running_stores_prints_the_same_exports(started: Started) -> None:
    status = started.stores.run("status")
    assert status.returncode == 0, status.stderr
    assert "auth: basic" in status.stderr
    assert exports(status.stdout) == started.exported


def test_an_old_trusting_cluster_is_migrated_and_keeps_its_studies() -> None:
    bindir = require_pg_bin()
    root = reachable_folder("cftune-old-stores-")
    folder, port = root / "old stores", free_port()
    trusting_cluster(bindir, folder, port)
    old_url = f"postgresql+psycopg2://cftune@127.0.0.1:{port}/cftune"
    stores = stores_in(folder)
    stores.env["CFTUNE_PG_PORT"] = str(port)
    try:
        assert query(port, "cftune", "cftune", IS_SUPERUSER) == [(True,)]  # before: anyone, as a superuser
        optuna.create_study(study_name="kept", storage=old_url).optimize(
            lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3
        )

        url = stores.start()["CFTUNE_STORAGE"]

        study = optuna.load_study(study_name="kept", storage=url)
        assert len(study.trials) == 3
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)  # its tables are the role's now
        assert len(optuna.load_study(study_name="kept", storage=url).trials) == 4
        with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
            connect(port, "cftune", "cftune", passfile=str(root / "no such file"))
        password = (folder / "secrets" / "cftune.pgpass").read_text().strip().split(":")[4]
        assert query(port, "cftune", "cftune", IS_SUPERUSER, password=password) == [(False,)]
        assert (folder / "pgdata" / "pg_hba.conf.trust").is_file()  # the old file, kept

        stores.stop()
        assert stores.run("status").returncode == 3
        assert len(optuna.load_study(study_name="kept", storage=stores.start()["CFTUNE_STORAGE"]).trials) == 4
    finally:
        stores.run("stop")
        subprocess.run(
            [
                *as_cluster_user(),
                str(bindir / "pg_ctl"),
                "-D",
                str(folder / "pgdata"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CFTUNE_MLFLOW_AUTH", "kerberos", "CFTUNE_MLFLOW_AUTH must be 'none' or 'basic'"),
        ("CFTUNE_PG_PORT", "5432; touch canary", "PG_PORT must be a number"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_starts(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    env = {**os.environ, variable: value}
    refused = subprocess.run(
        ["bash", str(STORES_SH), "start", str(tmp_path / "stores")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and says in refused.stderr
    assert not (tmp_path / "stores").exists() and not (tmp_path / "canary").exists()
