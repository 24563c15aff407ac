"""``python -m search.serve``: serve a registered model (default ``cf-recommender@champion``) over HTTP on
127.0.0.1 with ``mlflow models serve``, whether or not the virtualenv is activated.

Why a wrapper: ``mlflow models serve --env-manager local`` starts the server as ``bash -c "exec uvicorn ..."``
(``mlflow/pyfunc/backend.py``), which looks ``uvicorn`` up on PATH; ``.venv/bin/mlflow`` run without
activating the venv dies with ``bash: line 1: exec: uvicorn: not found``. This command puts its own
interpreter's scripts folder first on PATH, points MLflow at the project's tracking store (``--tracking-uri``,
else ``MLFLOW_TRACKING_URI``, else the store under ``$CFTUNE_HOME``), checks that the model resolves there (a
one-line error naming the URI and the store, exit 2, instead of MLflow's traceback), then becomes
``mlflow models serve``. Request and response formats: README, "Serving the champion".
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import CftuneError
from core.home import resolve_tracking_uri
from search.locks import sqlite_path
from search.promote import COMBINED

DEFAULT_MODEL_URI = f"models:/{COMBINED}@champion"
DEFAULT_PORT = 5000  # mlflow models serve's own default
#: Local only: the scoring server has no authentication.
HOST = "127.0.0.1"
MODELS_SCHEME = "models:/"


class NotServable(CftuneError):
    """Nothing to serve: no such model, version, alias or tracking store; or the port is taken."""


def scripts_dir() -> Path:
    """The folder holding this interpreter's console scripts (``.venv/bin``): where ``uvicorn`` and ``mlflow``
    were installed alongside the packages this process imports."""
    return Path(sysconfig.get_path("scripts"))


def serve_env(tracking_uri: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ``mlflow models serve`` runs in: the scripts folder first on PATH (its ``bash -c
    "exec uvicorn ..."`` finds this venv's uvicorn) and the tracking store the model was checked in."""
    env = dict(os.environ if environ is None else environ)
    env["PATH"] = os.pathsep.join([str(scripts_dir()), *filter(None, env.get("PATH", "").split(os.pathsep))])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def serve_command(model_uri: str, port: int) -> list[str]:
    return [
        str(scripts_dir() / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-p",
        str(port),
        "--host",
        HOST,
    ]


def model_name(model_uri: str) -> str:
    """The registered model a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names."""
    return model_uri.removeprefix(MODELS_SCHEME).split("@", 1)[0].split("/", 1)[0]


def _registry_reason(client: Any, model_uri: str) -> str | None:
    """Why a ``models:/`` URI does not resolve in the client's registry, or None when it does."""
    # lazy: mlflow costs ~3.5 s to import (-X importtime): only once the store is known to exist
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    rest = model_uri.removeprefix(MODELS_SCHEME)
    name = model_name(model_uri)
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        return f"no registered model {name!r}"
    if "@" in rest:
        alias = rest.split("@", 1)[1]
        if alias not in (registered.aliases or {}):
            have = ", ".join(f"@{a}" for a in sorted(registered.aliases or {})) or "none"
            return f"{name} has no alias @{alias} (its aliases: {have})"
    try:
        resolved = get_model_name_and_version(client, model_uri)
        if len(resolved) == 2:  # (name, version); a logged model's id (models:/m-...) has no version
            client.get_model_version(*resolved)  # models:/NAME/VERSION is not looked up by the above
    except MlflowException as exc:
        return str(exc).splitlines()[0][:300]
    return None


def check_model(model_uri: str, tracking_uri: str) -> None:
    """Raise :class:`NotServable` unless ``model_uri`` resolves in ``tracking_uri``. URIs other than
    ``models:/`` (a run, a folder) are left to MLflow."""
    if not model_uri.startswith(MODELS_SCHEME):
        return
    where = f"{model_uri} is not in the tracking store {tracking_uri}"
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():  # opening it would create an empty store
        raise NotServable(f"{where}: the store does not exist (run a study first: make run)")
    from search.tracking import Tracker  # lazy: imports mlflow

    reason = _registry_reason(Tracker(tracking_uri).client, model_uri)
    if reason is not None:
        promoted = model_name(model_uri) == COMBINED
        hint = f"; python -m search.promote sets {COMBINED}@champion" if promoted else ""
        raise NotServable(f"{where}: {reason}{hint}")


def check_port(port: int) -> None:
    """A taken port is a one-line error here rather than uvicorn's after the model has loaded."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            taken = f"cannot serve on {HOST}:{port}: {exc.strerror} (choose another --port)"
            raise NotServable(taken) from None


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m search.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-uri", default=DEFAULT_MODEL_URI, help=f"default {DEFAULT_MODEL_URI}")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="default: MLFLOW_TRACKING_URI, else sqlite:///$CFTUNE_HOME/mlflow.db",
    )
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error(f"--port must be in 1..65535, got {args.port}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Check, then replace this process with ``mlflow models serve`` (returns only on an error)."""
    args = parse(argv)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    command = serve_command(args.model_uri, args.port)
    try:
        if not Path(command[0]).is_file() or not (scripts_dir() / "uvicorn").is_file():
            raise NotServable(f"mlflow and uvicorn must be installed in {scripts_dir()} (make install)")
        check_model(args.model_uri, tracking_uri)
        check_port(args.port)
    except CftuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"serving {args.model_uri} from {tracking_uri} on http://{HOST}:{args.port}/invocations "
        "(GET /ping answers once the model is loaded; Ctrl-C stops)",
        flush=True,
    )
    os.execve(command[0], command, serve_env(tracking_uri))
    return 0  # not reached: execve replaces the process


if __name__ == "__main__":
    sys.exit(main())
