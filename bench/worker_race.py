"""Claims: workers started together on one study never crash, agree on one MLflow parent run and finish
every grid point exactly once, on SQLite stores (one machine) and on PostgreSQL + an ``mlflow server`` (the
scale-out setup of ``scripts/stores.sh``); and two studies registering the same model at the same moment
leave the registry as the rule says (``@champion`` on the better validation NDCG@10, every ``decision`` tag
agreeing with the aliases). Each claim is checked over many repetitions on fresh stores, since a race shows
up only sometimes. Writes bench/results/worker_race.json.

Scenarios (each repetition on fresh stores, all ``search.run`` processes started together with Popen):

- ``sqlite``: two ``--no-register`` workers, an 8-point ALS grid (2 iterations), SQLite Optuna and MLflow
  stores.
- ``postgres``: the same against a throw-away PostgreSQL cluster and ``mlflow server`` started by
  ``scripts/stores.sh`` (ports picked free); a fresh database and study name per repetition, parent runs
  counted per study.
- ``registration``: two registering studies (one-point grids far apart) on the same SQLite stores.

Run: ``python bench/worker_race.py [--scenarios sqlite postgres registration] [--reps N]
[--sqlite-reps 20] [--postgres-reps 20] [--registration-reps 10]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from core.names import DEFAULT_METRIC, PARENT_RUN_TAG, filter_value, mlflow_key  # noqa: E402

GRID = """\
model: als
fixed: {confidence: rating_quality, iterations: 2}
grid:
  factors: [8, 16]
  regularization: [0.01, 1.0]
  alpha: [1.0, 5.0]
"""
GRID_POINTS = 8
#: Two one-point grids far apart (heavy regularization on 4 factors vs light on 32): different best NDCG.
REGISTRATION_GRIDS = {
    "reg-small": """\
model: als
fixed: {confidence: rating_quality, iterations: 2, alpha: 1.0}
grid:
  factors: [4]
  regularization: [100.0]
""",
    "reg-large": """\
model: als
fixed: {confidence: rating_quality, iterations: 2, alpha: 1.0}
grid:
  factors: [32]
  regularization: [0.1]
""",
}
MODEL_NAME = "als-recommender"
GATE = mlflow_key(DEFAULT_METRIC, "valid")
DEFAULT_REPS = {"sqlite": 20, "postgres": 20, "registration": 10}
RACE_TIMEOUT = 300
REGISTRATION_TIMEOUT = 600


# ------------------------------------------------------------------------------------------------- helpers
def cli(space: Path, storage: str, tracking: str, study: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "search.run",
        "--model",
        "als",
        "--space",
        str(space),
        "--pruner",
        "none",
        "--no-report",
        "--quiet",
        "--storage",
        storage,
        "--tracking-uri",
        tracking,
        "--study-name",
        study,
        *extra,
    ]


def worker_env(home: Path) -> dict[str, str]:
    """The project on the path; default stores (artifacts, reference cache) in this repetition's folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CFTUNE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_together(
    cmds: list[list[str]], folder: Path, env: dict[str, str], timeout: float
) -> list[dict[str, Any]]:
    """Start every command at once (output to files: no pipe can fill up and stall a worker), wait for all."""
    procs = []
    for i, cmd in enumerate(cmds):
        out = open(folder / f"worker{i}.out", "w")  # noqa: SIM115 (closed below)
        err = open(folder / f"worker{i}.err", "w")  # noqa: SIM115
        procs.append(
            (subprocess.Popen(cmd, cwd=folder, env=env, stdout=out, stderr=err, text=True), out, err)
        )
    deadline = time.monotonic() + timeout
    results = []
    for i, (p, out, err) in enumerate(procs):
        timed_out = False
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            p.wait()
        out.close()
        err.close()
        stderr = (folder / f"worker{i}.err").read_text(errors="replace")
        stdout = (folder / f"worker{i}.out").read_text(errors="replace")
        results.append(
            {
                "rc": p.returncode,
                "timed_out": timed_out,
                "traceback": "Traceback" in stderr,
                "stderr": stderr,
                "registry_lines": [line for line in stdout.splitlines() if line.startswith("registry:")],
            }
        )
    return results


def crashed(workers: list[dict[str, Any]]) -> bool:
    return any(w["rc"] != 0 or w["timed_out"] or w["traceback"] for w in workers)


def worker_fields(workers: list[dict[str, Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "return_codes": [w["rc"] for w in workers],
        "timed_out": [w["timed_out"] for w in workers],
        "traceback_in_stderr": [w["traceback"] for w in workers],
    }
    if crashed(workers):  # what went wrong, for the report
        fields["stderr_tails"] = [w["stderr"][-3000:] for w in workers]
    return fields


def study_outcome(storage: str, study: str, points: int) -> dict[str, Any]:
    """Grid points of COMPLETE trials; whether each point finished exactly once."""
    import optuna
    from optuna.trial import TrialState

    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        trials = []
    done = sorted(int(t.user_attrs["grid_point"]) for t in trials if t.state == TrialState.COMPLETE)
    return {
        "trials": len(trials),
        "states": dict(Counter(t.state.name for t in trials)),
        "points_completed": done,
        "every_point_once": done == list(range(points)),
        "workers_used": sorted({int(t.user_attrs.get("worker", -1)) for t in trials}),
    }


def mlflow_runs(tracking_uri: str, kind: str, study: str | None = None) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    query = f"tags.kind = {filter_value(kind)}"
    if study:
        query += f" and tags.study_name = {filter_value(study)}"
    return list(client.search_runs(experiments, filter_string=query, max_results=5000))


def parent_fields(tracking_uri: str, study: str) -> dict[str, Any]:
    parents = mlflow_runs(tracking_uri, "study", study)
    children = mlflow_runs(tracking_uri, "trial", study)
    parent_ids = {r.info.run_id for r in parents}
    return {
        "parent_runs": len(parents),
        "trial_runs": len(children),
        "trial_runs_under_the_parent": len(parents) == 1
        and all(r.data.tags.get(PARENT_RUN_TAG) in parent_ids for r in children),
    }


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_seconds"] for r in reps]
    return {
        "reps": len(reps),
        "crashes": sum(r["crashed"] for r in reps),
        "one_parent_run": sum(r["one_parent_run"] for r in reps),
        "every_point_once": sum(r["every_point_once"] for r in reps),
        "ok": sum(r["ok"] for r in reps),
        "median_wall_seconds": round(statistics.median(walls), 2) if walls else None,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------------------------- scenarios
def race(folder: Path, storage: str, tracking: str, study: str) -> dict[str, Any]:
    """Two helper workers started together on the 8-point grid; what the stores say afterwards."""
    space = folder / "space.yaml"
    space.write_text(GRID)
    cmd = cli(space, storage, tracking, study, "--no-register")
    t0 = time.perf_counter()
    workers = run_together([cmd, cmd], folder, worker_env(folder / "home"), RACE_TIMEOUT)
    wall = time.perf_counter() - t0
    rep: dict[str, Any] = {"study": study, "wall_seconds": round(wall, 2), **worker_fields(workers)}
    rep.update(study_outcome(storage, study, GRID_POINTS))
    rep.update(parent_fields(tracking, study))
    rep["crashed"] = crashed(workers)
    rep["one_parent_run"] = rep["parent_runs"] == 1
    rep["ok"] = (
        not rep["crashed"]
        and rep["one_parent_run"]
        and rep["every_point_once"]
        and rep["trial_runs_under_the_parent"]
    )
    return rep


def scenario_sqlite(reps: int, base: Path) -> list[dict[str, Any]]:
    out = []
    for i in range(reps):
        folder = base / f"sqlite-{i}"
        folder.mkdir()
        rep = race(folder, f"sqlite:///{folder}/optuna.db", f"sqlite:///{folder}/mlflow.db", "race")
        out.append({"rep": i, **rep})
        progress("sqlite", i, reps, rep)
        shutil.rmtree(folder, ignore_errors=True)
    return out


def start_stores(base: Path) -> tuple[Path, dict[str, str], str, str, int]:
    """A throw-away cluster + mlflow server by scripts/stores.sh: (its folder, env, storage URL, tracking URI,
    PostgreSQL port)."""
    stores = Path(tempfile.mkdtemp(prefix="cftune-race-stores-"))
    stores.chmod(0o755)  # the postgres user (when we are root) must reach it
    pg_port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "CFTUNE_PG_PORT": str(pg_port), "CFTUNE_MLFLOW_PORT": str(mlflow_port)}
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stores.sh"), "start", str(stores)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if started.returncode != 0:
        raise RuntimeError(f"scripts/stores.sh start failed:\n{started.stderr[-3000:]}")
    exports = dict(  # export lines are shell-quoted (a passfile path may hold anything)
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in started.stdout.splitlines()
        if line.startswith("export ")
    )
    return stores, env, exports["CFTUNE_STORAGE"], exports["MLFLOW_TRACKING_URI"], pg_port


def scenario_postgres(reps: int, base: Path) -> list[dict[str, Any]]:
    import psycopg2

    stores, env, storage, tracking, pg_port = start_stores(base)
    print(f"postgres: stores in {stores}: {storage}, {tracking}", flush=True)
    # the role's password file names its own database only; the race's databases need a line of their own
    secret = (stores / "secrets" / "cftune.pgpass").read_text().strip().rsplit(":", 1)[1]
    passfile = stores / "secrets" / "race.pgpass"
    passfile.touch(mode=0o600)
    passfile.write_text(f"127.0.0.1:*:*:cftune:{secret}\n")
    out = []
    try:
        for i in range(reps):
            db = f"race_{i}"
            # the study role may not create databases: the cluster's superuser does, for it
            admin = {"user": "cftune_admin", "passfile": str(stores / "secrets" / "admin.pgpass")}
            conn = psycopg2.connect(host="127.0.0.1", port=pg_port, dbname="postgres", **admin)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db} OWNER cftune")
            conn.close()
            folder = base / f"postgres-{i}"
            folder.mkdir()
            query = f"passfile={quote(str(passfile))}"
            url = urlunsplit(urlsplit(storage)._replace(path=f"/{db}", query=query))
            rep = race(folder, url, tracking, f"race-{i}")
            out.append({"rep": i, "database": db, **rep})
            progress("postgres", i, reps, rep)
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        stopped = subprocess.run(
            ["bash", str(ROOT / "scripts" / "stores.sh"), "stop", str(stores)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if stopped.returncode != 0:
            print(f"warning: scripts/stores.sh stop failed:\n{stopped.stderr}", file=sys.stderr)
        else:
            shutil.rmtree(stores, ignore_errors=True)
    return out


def registry_state(tracking_uri: str) -> dict[str, Any]:
    """Every version of the model with its study, gate value, decision and aliases; and the verdict."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    versions = [
        client.get_model_version(MODEL_NAME, v.version)  # aliases come with a direct read
        for v in client.search_model_versions(f"name = {filter_value(MODEL_NAME)}")
    ]
    table: dict[str, dict[str, Any]] = {
        str(v.version): {
            "study": v.tags.get("study_name"),
            GATE: float(v.tags[GATE]) if GATE in v.tags else None,
            "decision": v.tags.get("decision"),
            "aliases": sorted(v.aliases),
        }
        for v in versions
    }
    try:
        champion: str | None = str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)
    except MlflowException:
        champion = None
    values = {row["study"]: row[GATE] for row in table.values()}
    gates = [row[GATE] for row in table.values() if row[GATE] is not None]
    best = max(gates) if gates else None
    champion_is_best = champion is not None and table[champion][GATE] == best
    decisions_agree = all(
        row["decision"] == ("champion" if version == champion else "challenger")
        for version, row in table.items()
    )
    challenger_alias = all(
        ("challenger" in row["aliases"]) == (version != champion) for version, row in table.items()
    )
    return {
        "versions": table,
        "champion_version": champion,
        "champion_study": table[champion]["study"] if champion else None,
        "values": values,
        "values_differ": len(set(gates)) == len(gates) == 2,
        "two_versions": len(table) == 2,
        "champion_is_best": champion_is_best,
        "decisions_agree_with_aliases": decisions_agree,
        "challenger_alias_on_the_other": challenger_alias,
    }


def scenario_registration(reps: int, base: Path) -> list[dict[str, Any]]:
    out = []
    for i in range(reps):
        folder = base / f"registration-{i}"
        folder.mkdir()
        storage, tracking = f"sqlite:///{folder}/optuna.db", f"sqlite:///{folder}/mlflow.db"
        cmds = []
        for study, text in REGISTRATION_GRIDS.items():
            space = folder / f"{study}.yaml"
            space.write_text(text)
            cmds.append(cli(space, storage, tracking, study))
        t0 = time.perf_counter()
        workers = run_together(cmds, folder, worker_env(folder / "home"), REGISTRATION_TIMEOUT)
        wall = time.perf_counter() - t0
        rep: dict[str, Any] = {"rep": i, "wall_seconds": round(wall, 2), **worker_fields(workers)}
        rep["registry_lines"] = [line for w in workers for line in w["registry_lines"]]
        per_study = {s: study_outcome(storage, s, 1) for s in REGISTRATION_GRIDS}
        parents = {s: parent_fields(tracking, s)["parent_runs"] for s in REGISTRATION_GRIDS}
        rep["parent_runs"] = parents
        rep["points_completed"] = {s: o["points_completed"] for s, o in per_study.items()}
        try:
            rep.update(registry_state(tracking))
        except Exception as exc:  # an unreadable registry is a failed repetition, not a failed benchmark
            rep["registry_error"] = f"{type(exc).__name__}: {exc}"
        rep["crashed"] = crashed(workers)
        rep["one_parent_run"] = all(n == 1 for n in parents.values())
        rep["every_point_once"] = all(o["every_point_once"] for o in per_study.values())
        rep["ok"] = bool(
            not rep["crashed"]
            and rep.get("two_versions")
            and rep.get("values_differ")
            and rep.get("champion_is_best")
            and rep.get("decisions_agree_with_aliases")
            and rep.get("challenger_alias_on_the_other")
        )
        out.append(rep)
        progress("registration", i, reps, rep)
        shutil.rmtree(folder, ignore_errors=True)
    return out


def progress(name: str, i: int, reps: int, rep: dict[str, Any]) -> None:
    flags = "ok" if rep["ok"] else "FAILED"
    extra = f" rc={rep['return_codes']}"
    if "parent_runs" in rep:
        extra += f" parents={rep['parent_runs']}"
    if "champion_version" in rep:
        extra += f" champion=v{rep['champion_version']} values={rep.get('values')}"
    elif "points_completed" in rep:
        extra += f" points={rep['points_completed']}"
    print(f"{name} {i + 1}/{reps}: {flags} ({rep['wall_seconds']} s){extra}", flush=True)


def table(summaries: dict[str, dict[str, Any]]) -> str:
    cols = ["reps", "crashes", "one_parent_run", "every_point_once", "ok", "median_wall_seconds"]
    lines = [f"{'scenario':<14}" + "".join(f"{c:>20}" for c in cols)]
    for name, s in summaries.items():
        lines.append(f"{name:<14}" + "".join(f"{s.get(c)!s:>20}" for c in cols))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", nargs="+", choices=list(DEFAULT_REPS), default=list(DEFAULT_REPS))
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions of every scenario (overrides the rest)"
    )
    for name, n in DEFAULT_REPS.items():
        p.add_argument(f"--{name}-reps", type=int, default=n, help=f"repetitions of {name} (default {n})")
    args = p.parse_args()
    runners = {
        "sqlite": scenario_sqlite,
        "postgres": scenario_postgres,
        "registration": scenario_registration,
    }
    results: dict[str, Any] = {"grid_points": GRID_POINTS, "scenarios": {}}
    summaries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cftune-race-") as tmp:
        os.chdir(tmp)  # nothing stray lands in the project
        for name in args.scenarios:
            reps = args.reps if args.reps is not None else getattr(args, f"{name}_reps")
            t0 = time.perf_counter()
            try:
                rows = runners[name](reps, Path(tmp))
            except Exception as exc:  # e.g. PostgreSQL missing: record why, keep the other scenarios
                print(f"{name}: not run: {type(exc).__name__}: {exc}", file=sys.stderr)
                results["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
                continue
            summaries[name] = {**summarize(rows), "total_seconds": round(time.perf_counter() - t0, 1)}
            results["scenarios"][name] = {"summary": summaries[name], "reps": rows}
    results["summary"] = summaries
    write_result("worker_race", results)
    print()
    print(table(summaries))


if __name__ == "__main__":
    main()
