#!/usr/bin/env bash
# Shared stores for many workers on one study: a local PostgreSQL cluster (the Optuna storage, database
# `cftune`; MLflow's backend, database `mlflow`) and an `mlflow server` bound to 127.0.0.1.
#
#   scripts/stores.sh start  [DIR]   # initialise if absent, start both, print two `export` lines
#   scripts/stores.sh status [DIR]   # exit 0 when both run, 3 otherwise
#   scripts/stores.sh stop   [DIR]   # stop both (fine when already stopped)
#
#   eval "$(scripts/stores.sh start)"
#   python -m search.run --model als --storage "$CFTUNE_STORAGE" --study-name shared --no-register  # helpers
#   python -m search.run --model als --storage "$CFTUNE_STORAGE" --study-name shared                # registers
#
# DIR defaults to ${CFTUNE_HOME:-<project>/mlruns}/stores and holds pgdata/ (the cluster), the cluster's unix
# socket and postgres.log, artifacts/ (the server's artifact store), mlflow.pid and mlflow.log.
# Ports: CFTUNE_PG_PORT (default 54329), CFTUNE_MLFLOW_PORT (default 5055); server worker processes:
# CFTUNE_MLFLOW_WORKERS (default 2). PostgreSQL trusts local connections (initdb --auth=trust) and listens
# on 127.0.0.1 only: fine on one machine; open it to other machines only behind real authentication.
# As root, the cluster runs as the `postgres` user and DIR is chowned to it (postgres refuses to run as root).
# Messages go to stderr; only the export lines go to stdout, so `eval "$(scripts/stores.sh start)"` works.
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_PORT="${CFTUNE_PG_PORT:-54329}"
MLFLOW_PORT="${CFTUNE_MLFLOW_PORT:-5055}"
MLFLOW_WORKERS="${CFTUNE_MLFLOW_WORKERS:-2}"
HEALTH_TRIES=240 # x 0.5 s: how long `start` waits for the server's /health (its first start migrates a schema)

say() { echo "stores: $*" >&2; }
die() {
  echo "stores: error: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start|stop|status [DIR]" >&2
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
ACTION="$1"
DIR="${2:-${CFTUNE_HOME:-$PROJECT/mlruns}/stores}"
case "$ACTION" in start | stop | status) ;; *) usage ;; esac
if [ "$ACTION" = start ]; then
  mkdir -p "$DIR" || die "cannot create $DIR"
fi
if [ -d "$DIR" ]; then DIR="$(cd "$DIR" && pwd)"; fi

PGDATA="$DIR/pgdata"
PID_FILE="$DIR/mlflow.pid"
MLFLOW_LOG="$DIR/mlflow.log"
PG_LOG="$DIR/postgres.log"
STORAGE_URL="postgresql+psycopg2://cftune@127.0.0.1:$PG_PORT/cftune"
MLFLOW_BACKEND="postgresql+psycopg2://cftune@127.0.0.1:$PG_PORT/mlflow"
TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"

# --- PostgreSQL ------------------------------------------------------------------------------------------------
find_pg_bin() {
  local found
  found="$(compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" | sort -V | tail -n 1 || true)"
  if [ -n "$found" ]; then
    dirname "$found"
  elif command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  else
    die "PostgreSQL is not installed (apt-get install -y postgresql, or: make system-deps)"
  fi
}

AS_PG=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user to run the cluster as"
  AS_PG=(runuser -u postgres --)
fi

pg() { "${AS_PG[@]}" "$PG_BIN/$1" "${@:2}"; }

pg_running() { [ -f "$PGDATA/PG_VERSION" ] && pg pg_ctl -D "$PGDATA" status >/dev/null 2>&1; }

psql_q() { "$PG_BIN/psql" -h "$DIR" -p "$PG_PORT" -U cftune -d postgres -v ON_ERROR_STOP=1 -tAqc "$1"; }

ensure_db() {
  if [ "$(psql_q "SELECT 1 FROM pg_database WHERE datname = '$1'")" != 1 ]; then
    "$PG_BIN/createdb" -h "$DIR" -p "$PG_PORT" -U cftune "$1" || die "cannot create database $1"
    say "created database $1"
  fi
}

start_pg() {
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    if [ ${#AS_PG[@]} -gt 0 ]; then
      chown postgres:postgres "$DIR"
      chmod 0755 "$DIR"
      "${AS_PG[@]}" test -w "$DIR" ||
        die "the postgres user cannot write $DIR (a folder above it is not searchable by other users?)"
    fi
    say "initialising a PostgreSQL cluster in $PGDATA"
    pg initdb -D "$PGDATA" -U cftune --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 ||
      die "initdb failed; see $DIR/initdb.log"
  fi
  if pg_running; then
    say "PostgreSQL already running ($PGDATA)"
  else
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (socket in $DIR)"
    if ! pg pg_ctl -D "$PGDATA" -l "$PG_LOG" -w -t 60 \
      -o "-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null; then
      tail -n 20 "$PG_LOG" >&2 || true
      die "PostgreSQL did not start (port $PG_PORT taken? set CFTUNE_PG_PORT); log: $PG_LOG"
    fi
  fi
  ensure_db cftune
  ensure_db mlflow
}

stop_pg() {
  if pg_running; then
    say "stopping PostgreSQL ($PGDATA)"
    pg pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
  else
    say "PostgreSQL is not running"
  fi
}

# --- mlflow server ---------------------------------------------------------------------------------------------
mlflow_cmd() {
  if [ -x "$PROJECT/.venv/bin/mlflow" ]; then
    echo "$PROJECT/.venv/bin/mlflow"
  elif [ -x "$PROJECT/.venv/bin/python" ]; then
    echo "$PROJECT/.venv/bin/python -m mlflow"
  else
    echo "python3 -m mlflow"
  fi
}

# the pid in mlflow.pid, only if that process is alive and is an mlflow server (not a reused pid)
mlflow_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow.* server" || return 1
  echo "$pid"
}

healthy() { curl -fsS -m 2 "$TRACKING_URI/health" >/dev/null 2>&1; }

start_mlflow() {
  local pid
  if pid="$(mlflow_pid)"; then
    say "mlflow server already running (pid $pid)"
  else
    rm -f "$PID_FILE"
    if healthy; then
      die "something else already answers on $TRACKING_URI (set CFTUNE_MLFLOW_PORT)"
    fi
    mkdir -p "$DIR/artifacts"
    say "starting mlflow server on $TRACKING_URI (log: $MLFLOW_LOG)"
    # its own session (setsid), so that `stop` ends the server and its worker processes together; MLflow's
    # job runner (a dozen huey processes for GenAI jobs cftune never submits) stays off unless asked for
    # shellcheck disable=SC2046
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
      setsid $(mlflow_cmd) server \
      --backend-store-uri "$MLFLOW_BACKEND" \
      --artifacts-destination "$DIR/artifacts" \
      --host 127.0.0.1 --port "$MLFLOW_PORT" --workers "$MLFLOW_WORKERS" \
      </dev/null >>"$MLFLOW_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
  fi
  local i
  for ((i = 0; i < HEALTH_TRIES; i++)); do
    healthy && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$MLFLOW_LOG" >&2 || true
      rm -f "$PID_FILE"
      die "mlflow server exited during start-up; log: $MLFLOW_LOG"
    fi
    sleep 0.5
  done
  die "mlflow server (pid $pid) did not answer $TRACKING_URI/health within $((HEALTH_TRIES / 2)) s; log: $MLFLOW_LOG"
}

stop_mlflow() {
  local pid i
  if ! pid="$(mlflow_pid)"; then
    say "mlflow server is not running"
    rm -f "$PID_FILE"
    return 0
  fi
  say "stopping mlflow server (pid $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true # its process group (setsid)
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "mlflow server still up after 30 s: killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 20; i++)); do # the group's worker processes too
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.5
  done
  rm -f "$PID_FILE"
}

# A running cluster or server keeps the port it was started on: use it (and say so) if the env asks otherwise.
adopt_running_ports() {
  local port pid
  if [ -f "$PGDATA/postmaster.pid" ] && pg_running; then
    port="$(sed -n 4p "$PGDATA/postmaster.pid")"
    if [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" != "$PG_PORT" ]; then
      say "note: PostgreSQL is already running on port $port (not $PG_PORT); using $port"
      PG_PORT="$port"
    fi
  fi
  if pid="$(mlflow_pid)"; then
    port="$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^--port$/{n;p;q}')"
    if [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" != "$MLFLOW_PORT" ]; then
      say "note: the mlflow server is already running on port $port (not $MLFLOW_PORT); using $port"
      MLFLOW_PORT="$port"
    fi
  fi
  STORAGE_URL="postgresql+psycopg2://cftune@127.0.0.1:$PG_PORT/cftune"
  MLFLOW_BACKEND="postgresql+psycopg2://cftune@127.0.0.1:$PG_PORT/mlflow"
  TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
}

exports() {
  echo "export CFTUNE_STORAGE=$STORAGE_URL"
  echo "export MLFLOW_TRACKING_URI=$TRACKING_URI"
}

# --- actions ---------------------------------------------------------------------------------------------------
case "$ACTION" in
start)
  PG_BIN="$(find_pg_bin)"
  adopt_running_ports
  start_pg
  start_mlflow
  say "ready: PostgreSQL 127.0.0.1:$PG_PORT, mlflow server $TRACKING_URI (stores in $DIR)"
  exports
  ;;
stop)
  [ -d "$DIR" ] || {
    say "nothing to stop: $DIR does not exist"
    exit 0
  }
  stop_mlflow
  if [ -f "$PGDATA/PG_VERSION" ]; then
    PG_BIN="$(find_pg_bin)"
    stop_pg
  else
    say "PostgreSQL is not running (no cluster in $PGDATA)"
  fi
  ;;
status)
  rc=0
  if [ -f "$PGDATA/PG_VERSION" ]; then
    PG_BIN="$(find_pg_bin)"
    adopt_running_ports
    if pg_running; then
      say "PostgreSQL: running on 127.0.0.1:$PG_PORT ($PGDATA)"
    else
      say "PostgreSQL: stopped ($PGDATA)"
      rc=3
    fi
  else
    say "PostgreSQL: no cluster in $PGDATA"
    rc=3
  fi
  if pid="$(mlflow_pid)"; then
    if healthy; then
      say "mlflow server: running, healthy (pid $pid, $TRACKING_URI)"
    else
      say "mlflow server: pid $pid alive but $TRACKING_URI/health does not answer"
      rc=3
    fi
  else
    say "mlflow server: stopped"
    rc=3
  fi
  [ "$rc" = 0 ] && exports
  exit "$rc"
  ;;
esac
