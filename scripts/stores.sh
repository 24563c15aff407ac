#!/usr/bin/env bash
# Shared stores for many workers on one study: a local PostgreSQL cluster (the Optuna storage, database
# `cftune` owned by role `cftune`; MLflow's backend, database `mlflow` owned by role `mlflow`) and an
# `mlflow server`, both bound to 127.0.0.1.
#
#   scripts/stores.sh start  [DIR]   # initialise if absent, start both, print the `export` lines
#   scripts/stores.sh status [DIR]   # exit 0 when both run, 3 otherwise
#   scripts/stores.sh stop   [DIR]   # stop both (fine when already stopped)
#
#   eval "$(scripts/stores.sh start)"
#   python -m search.run --model als --storage "$CFTUNE_STORAGE" --study-name shared --no-register  # helpers
#   python -m search.run --model als --storage "$CFTUNE_STORAGE" --study-name shared                # registers
#
# DIR (default ${CFTUNE_HOME:-<project>/mlruns}/stores; any characters: no path goes through a shell) holds
# pgdata/, postgres.log, artifacts/, mlflow.pid, mlflow.log and secrets/ (0700, files 0600): cftune.pgpass and
# mlflow.pgpass, libpq password files of the two roles (no superusers; each owns its database, no other role
# may connect to it); admin.pgpass, the superuser cftune_admin, for this script only; with basic auth,
# mlflow-credentials (the format of ~/.mlflow/credentials), mlflow-auth.ini, mlflow-auth.db, flask-secret-key.
# PostgreSQL takes passwords only (scram-sha-256), on 127.0.0.1, no unix socket. Passwords are generated here,
# never on a command line: CFTUNE_STORAGE names its password file (libpq's `passfile=`).
# The mlflow server has no authentication unless CFTUNE_MLFLOW_AUTH=basic (MLflow's basic-auth app; clients
# then need MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, which `start` and `status` print).
# A cluster of the earlier stores.sh (trust, role cftune a superuser) is migrated at `start`, data kept.
# Ports: CFTUNE_PG_PORT (default 54329), CFTUNE_MLFLOW_PORT (default 5055); server worker processes:
# CFTUNE_MLFLOW_WORKERS (default 2); the Python with mlflow: CFTUNE_PYTHON (default <project>/.venv, python3).
# As root, the cluster runs as the `postgres` user and DIR is chowned to it (postgres refuses to run as root).
# pg_ctl runs its -D, -l and -o through /bin/sh: it gets relative paths (from inside DIR) and no -o at all.
# Messages go to stderr; only the export lines go to stdout, so `eval "$(scripts/stores.sh start)"` works.
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_PORT="${CFTUNE_PG_PORT:-54329}"
MLFLOW_PORT="${CFTUNE_MLFLOW_PORT:-5055}"
MLFLOW_WORKERS="${CFTUNE_MLFLOW_WORKERS:-2}"
MLFLOW_AUTH="${CFTUNE_MLFLOW_AUTH:-none}"
HEALTH_TRIES=240 # x 0.5 s: how long `start` waits for the server's /health (its first start migrates a schema)
ADMIN=cftune_admin

say() { echo "stores: $*" >&2; }
die() { echo "stores: error: $*" >&2; exit 1; }

usage() { echo "usage: $0 start|stop|status [DIR]" >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
ACTION="$1"
DIR="${2:-${CFTUNE_HOME:-$PROJECT/mlruns}/stores}"
case "$ACTION" in start | stop | status) ;; *) usage ;; esac
for var in PG_PORT MLFLOW_PORT MLFLOW_WORKERS; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || die "$var must be a number, got '${!var}'"
done
case "$MLFLOW_AUTH" in none | basic) ;; *) die "CFTUNE_MLFLOW_AUTH must be 'none' or 'basic', got '$MLFLOW_AUTH'" ;; esac
if [ "$ACTION" = start ]; then
  mkdir -p -- "$DIR" || die "cannot create $DIR"
fi
if [ -d "$DIR" ]; then
  DIR="$(cd -- "$DIR" && pwd)"
  cd -- "$DIR" # from here on, paths handed to PostgreSQL's tools are relative to DIR
fi

SECRETS="$DIR/secrets"
PID_FILE="$DIR/mlflow.pid"
MLFLOW_LOG="$DIR/mlflow.log"

say_path() { printf '%q' "$1"; } # a path in a message, as one would type it

# --- secrets ---------------------------------------------------------------------------------------------------
new_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; } # 48 hex digits: nothing to escape anywhere

# FILE CONTENT: write CONTENT to FILE (mode 0600) unless FILE exists; printf is a builtin, so CONTENT never
# appears on a command line
write_secret() {
  [ -e "$1" ] && return 0
  (
    umask 077
    printf '%s\n' "$2" >"$1.tmp"
    mv -f -- "$1.tmp" "$1"
  )
}

ensure_secrets() {
  mkdir -p -m 0700 -- "$SECRETS"
  chmod 0700 -- "$SECRETS"
  write_secret "$SECRETS/admin.pgpass" "127.0.0.1:*:*:$ADMIN:$(new_secret)"
  write_secret "$SECRETS/cftune.pgpass" "127.0.0.1:*:cftune:cftune:$(new_secret)"
  write_secret "$SECRETS/mlflow.pgpass" "127.0.0.1:*:mlflow:mlflow:$(new_secret)"
  chmod 0600 -- "$SECRETS"/*.pgpass # libpq ignores a password file that others may read
}

pgpass_password() { cut -d: -f5 -- "$1"; }
# percent-encode a path for a URL's query: only [A-Za-z0-9._/-] stay as they are
urlencode() {
  local LC_ALL=C s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
    [A-Za-z0-9._/-]) out+="$c" ;;
    *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

set_urls() {
  STORAGE_URL="postgresql+psycopg2://cftune@127.0.0.1:$PG_PORT/cftune?passfile=$(urlencode "$SECRETS/cftune.pgpass")"
  MLFLOW_BACKEND="postgresql+psycopg2://mlflow@127.0.0.1:$PG_PORT/mlflow?passfile=$(urlencode "$SECRETS/mlflow.pgpass")"
  TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
}

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
# stdin into (or onto the end of) a file of the cluster's user
as_cluster_write() { (umask 077 && "${AS_PG[@]}" tee -- "$1" >/dev/null); }
as_cluster_append() { (umask 077 && "${AS_PG[@]}" tee -a -- "$1" >/dev/null); }
pg_running() { [ -f pgdata/PG_VERSION ] && pg pg_ctl -D pgdata status >/dev/null 2>&1; }

# SQL on stdin, as the superuser, over TCP with its password file; in database $1 (default postgres)
admin_psql() {
  PGPASSFILE="$SECRETS/admin.pgpass" PGOPTIONS='-c client_min_messages=warning' \
    "$PG_BIN/psql" -X -w -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$ADMIN" -d "${1:-postgres}" -f -
}

# A cluster made by the scripts/stores.sh of before trusts every local connection and its role cftune is the
# bootstrap superuser: anyone on the machine could connect as a superuser.
trusting_cluster() { grep -Eq '^[[:space:]]*(local|host)[^#]*[[:space:]]trust([[:space:]]|$)' pgdata/pg_hba.conf; }

trust_psql() { # SQL on stdin, as role $1, while the cluster still trusts loopback connections (migration only)
  PGPASSFILE=/nonexistent "$PG_BIN/psql" -X -w -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$1" -d postgres -f -
}

# Migrate it in place, step by step so that a second start finishes an interrupted one: the bootstrap
# superuser is renamed cftune_admin and given a password (through a helper superuser: no session renames
# itself), pg_hba.conf is replaced (the old one kept as pg_hba.conf.trust) and the cluster restarted; the
# start that follows creates the roles cftune and mlflow and hands them their databases and tables.
migrate_trusting_cluster() {
  say "$(say_path "$DIR/pgdata") was made by an older scripts/stores.sh: it trusts every local connection and" \
    "its role cftune is a superuser. Migrating it: passwords (scram-sha-256), roles without superuser rights."
  stop_mlflow # its connections would not survive the change
  stop_pg
  write_cluster_conf
  pg pg_ctl -D pgdata -l postgres.log -w -t 60 start >/dev/null ||
    die "the old cluster did not start for its migration; log: $(say_path "$DIR/postgres.log")"
  if ! echo 'SELECT 1;' | trust_psql cftune_migrate >/dev/null 2>&1; then
    echo 'CREATE ROLE cftune_migrate SUPERUSER LOGIN;' | trust_psql cftune ||
      die "cannot migrate $(say_path "$DIR/pgdata"): connecting as its superuser cftune failed"
  fi
  printf '%s\n' \
    "SELECT 'ALTER ROLE cftune RENAME TO $ADMIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ADMIN') \\gexec" \
    "ALTER ROLE $ADMIN PASSWORD '$(pgpass_password "$SECRETS/admin.pgpass")';" | trust_psql cftune_migrate ||
    die "cannot migrate $(say_path "$DIR/pgdata"): renaming its superuser failed"
  [ -e pgdata/pg_hba.conf.trust ] || "${AS_PG[@]}" cp -p -- pgdata/pg_hba.conf pgdata/pg_hba.conf.trust
  write_hba
  pg pg_ctl -D pgdata -m fast -w -t 60 stop >/dev/null
  say "migrated: the old pg_hba.conf is in $(say_path "$DIR/pgdata/pg_hba.conf.trust")"
}

# Tables, views, sequences and types in the public schema of database $1 that the superuser owns (all of
# them, in a migrated cluster) go to role $1; none in a cluster this script made. The helper superuser of an
# interrupted migration goes too.
hand_over_objects() {
  printf '%s\n' "DROP ROLE IF EXISTS cftune_migrate;" | admin_psql
  admin_psql "$1" <<EOF
DO \$\$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relowner = '$ADMIN'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
  LOOP EXECUTE format(CASE r.relkind WHEN 'S' THEN 'ALTER SEQUENCE public.%I OWNER TO $1'
                      ELSE 'ALTER TABLE public.%I OWNER TO $1' END, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typowner = '$ADMIN'::regrole AND t.typtype IN ('e', 'd', 'r')
  LOOP EXECUTE format('ALTER TYPE public.%I OWNER TO $1', r.typname); END LOOP;
  IF (SELECT nspowner FROM pg_namespace WHERE nspname = 'public') = '$ADMIN'::regrole THEN
    ALTER SCHEMA public OWNER TO $1;
  END IF;
END
\$\$;
EOF
}

write_hba() {
  as_cluster_write pgdata/pg_hba.conf <<'EOF'
# Written by cftune's scripts/stores.sh: loopback TCP only, every role by password (scram-sha-256).
host  all  all  127.0.0.1/32  scram-sha-256
EOF
}

init_cluster() {
  if [ ${#AS_PG[@]} -gt 0 ]; then
    chown postgres:postgres .
    chmod 0700 .
    "${AS_PG[@]}" test -w . ||
      die "the postgres user cannot write $(say_path "$DIR") (a folder above it is not searchable by other users?)"
  fi
  say "initialising a PostgreSQL cluster in $(say_path "$DIR/pgdata") (passwords only, scram-sha-256)"
  pgpass_password "$SECRETS/admin.pgpass" | as_cluster_write initdb.pw
  if ! pg initdb -D pgdata -U "$ADMIN" --auth=scram-sha-256 --pwfile=initdb.pw -E UTF8 >initdb.log 2>&1; then
    rm -f initdb.pw
    die "initdb failed; see $(say_path "$DIR/initdb.log")"
  fi
  rm -f initdb.pw
  write_hba
}

# Every setting a start needs, in a file of the cluster (not in pg_ctl -o, which goes through /bin/sh).
write_cluster_conf() {
  as_cluster_write pgdata/cftune.conf <<EOF
# Written by cftune's scripts/stores.sh at each start (CFTUNE_PG_PORT); edit postgresql.conf instead.
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
EOF
  grep -qx "include 'cftune.conf'" pgdata/postgresql.conf ||
    printf "\n# cftune's scripts/stores.sh: port and addresses, rewritten at each start\ninclude 'cftune.conf'\n" |
    as_cluster_append pgdata/postgresql.conf
}

# ROLE: a login role without any privilege beyond owning its own database, password from its password file
ensure_role_db() {
  local role="$1" password
  password="$(pgpass_password "$SECRETS/$role.pgpass")"
  printf '%s\n' \
    "SELECT 'CREATE ROLE $role' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') \\gexec" \
    "ALTER ROLE $role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '$password';" \
    "SELECT 'CREATE DATABASE $role OWNER $role' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$role') \\gexec" \
    "ALTER DATABASE $role OWNER TO $role;" \
    "REVOKE ALL ON DATABASE $role FROM PUBLIC;" |
    admin_psql || die "cannot set up role and database $role; log: $(say_path "$DIR/postgres.log")"
}

start_pg() {
  if [ -f pgdata/PG_VERSION ] && ! trusting_cluster; then
    [ -f "$SECRETS/admin.pgpass" ] ||
      die "$(say_path "$SECRETS/admin.pgpass") is missing: without the superuser's password this script" \
        "cannot manage the cluster in $(say_path "$DIR/pgdata")"
  fi
  ensure_secrets
  if [ ! -f pgdata/PG_VERSION ]; then
    init_cluster
  elif trusting_cluster; then
    migrate_trusting_cluster
  fi
  if pg_running; then
    say "PostgreSQL already running ($(say_path "$DIR/pgdata"))"
  else
    write_cluster_conf
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    if ! pg pg_ctl -D pgdata -l postgres.log -w -t 60 start >/dev/null; then
      tail -n 20 postgres.log >&2 || true
      die "PostgreSQL did not start (port $PG_PORT taken? set CFTUNE_PG_PORT); log: $(say_path "$DIR/postgres.log")"
    fi
  fi
  local role
  for role in cftune mlflow; do
    ensure_role_db "$role"
    hand_over_objects "$role" || die "cannot hand database $role over to role $role"
  done
  printf '%s\n' "REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC;" | admin_psql ||
    die "cannot close the maintenance databases to other roles"
}

stop_pg() {
  if pg_running; then
    say "stopping PostgreSQL ($(say_path "$DIR/pgdata"))"
    pg pg_ctl -D pgdata -m fast -w -t 60 stop >/dev/null
  else
    say "PostgreSQL is not running"
  fi
}

# --- mlflow server ---------------------------------------------------------------------------------------------
MLFLOW=()
set_mlflow_cmd() {
  if [ -n "${CFTUNE_PYTHON:-}" ]; then
    MLFLOW=("$CFTUNE_PYTHON" -m mlflow)
  elif [ -x "$PROJECT/.venv/bin/python" ]; then
    MLFLOW=("$PROJECT/.venv/bin/python" -m mlflow)
  else
    MLFLOW=(python3 -m mlflow)
  fi
}

# the pid in mlflow.pid, only if that process is alive and is an mlflow server (not a reused pid)
mlflow_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(cat -- "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow.* server" || return 1
  echo "$pid"
}

healthy() { curl -fsS -m 2 "$TRACKING_URI/health" >/dev/null 2>&1; } # /health is open under basic auth too
credential() { sed -n "s/^mlflow_tracking_$1 = //p" "$SECRETS/mlflow-credentials"; }

ensure_auth_files() {
  write_secret "$SECRETS/mlflow-credentials" "$(printf '[mlflow]\nmlflow_tracking_username = cftune\nmlflow_tracking_password = %s' "$(new_secret)")"
  write_secret "$SECRETS/flask-secret-key" "$(new_secret)"
  # the auth database path is relative to the server's working directory (DIR): no path to quote in here
  write_secret "$SECRETS/mlflow-auth.ini" "$(printf '%s\n' '[mlflow]' 'default_permission = READ' \
    'database_uri = sqlite:///secrets/mlflow-auth.db' 'admin_username = cftune' \
    'authorization_function = mlflow.server.auth:authenticate_request_basic_auth')"
}

launch_mlflow() {
  local -a cmd=("${MLFLOW[@]}" server --backend-store-uri "$MLFLOW_BACKEND" --artifacts-destination "$DIR/artifacts"
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers "$MLFLOW_WORKERS")
  if [ "$MLFLOW_AUTH" = basic ]; then cmd+=(--app-name basic-auth); fi
  mkdir -p -- "$DIR/artifacts"
  # its own session (setsid), so that `stop` ends the server and its worker processes together; MLflow's
  # job runner (a dozen huey processes for GenAI jobs cftune never submits) stays off unless asked for.
  # Secrets go in through the environment (readable by this user only), never as arguments.
  (
    umask 077
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
    if [ "$MLFLOW_AUTH" = basic ]; then
      MLFLOW_AUTH_CONFIG_PATH="$SECRETS/mlflow-auth.ini"
      MLFLOW_AUTH_ADMIN_PASSWORD="$(credential password)"
      MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat -- "$SECRETS/flask-secret-key")"
      export MLFLOW_AUTH_CONFIG_PATH MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
    exec setsid "${cmd[@]}" </dev/null >>"$MLFLOW_LOG" 2>&1
  ) &
  echo $! >"$PID_FILE"
}

start_mlflow() {
  local pid i
  if pid="$(mlflow_pid)"; then
    say "mlflow server already running (pid $pid)"
  else
    rm -f -- "$PID_FILE"
    if healthy; then
      die "something else already answers on $TRACKING_URI (set CFTUNE_MLFLOW_PORT)"
    fi
    say "starting mlflow server on $TRACKING_URI, auth: $MLFLOW_AUTH (log: $(say_path "$MLFLOW_LOG"))"
    if [ "$MLFLOW_AUTH" = basic ]; then
      ensure_auth_files
    else
      say "note: the server has no authentication: any user of this machine can read and change the runs" \
        "(CFTUNE_MLFLOW_AUTH=basic turns on MLflow's basic auth)"
    fi
    launch_mlflow
    pid="$(cat -- "$PID_FILE")"
  fi
  for ((i = 0; i < HEALTH_TRIES; i++)); do
    healthy && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 -- "$MLFLOW_LOG" >&2 || true
      rm -f -- "$PID_FILE"
      die "mlflow server exited during start-up; log: $(say_path "$MLFLOW_LOG")"
    fi
    sleep 0.5
  done
  die "mlflow server (pid $pid) did not answer $TRACKING_URI/health within $((HEALTH_TRIES / 2)) s; log: $(say_path "$MLFLOW_LOG")"
}

stop_mlflow() {
  local pid i
  if ! pid="$(mlflow_pid)"; then
    say "mlflow server is not running"
    rm -f -- "$PID_FILE"
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
  rm -f -- "$PID_FILE"
}

# A running cluster or server keeps the port (and the server its authentication) it was started with: use
# those (and say so) if the environment asks otherwise.
adopt_running_settings() {
  local port pid auth=none
  if [ -f pgdata/postmaster.pid ] && pg_running; then
    port="$(sed -n 4p pgdata/postmaster.pid)"
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
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx basic-auth && auth=basic
    if [ "$auth" != "$MLFLOW_AUTH" ]; then
      say "note: the mlflow server is already running with CFTUNE_MLFLOW_AUTH=$auth; stop it to change that"
      MLFLOW_AUTH="$auth"
    fi
  fi
  set_urls
}

shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

exports() {
  echo "export CFTUNE_STORAGE=$(shell_quote "$STORAGE_URL")"
  echo "export MLFLOW_TRACKING_URI=$(shell_quote "$TRACKING_URI")"
  if [ "$MLFLOW_AUTH" = basic ]; then
    echo "export MLFLOW_TRACKING_USERNAME=$(shell_quote "$(credential username)")"
    echo "export MLFLOW_TRACKING_PASSWORD=$(shell_quote "$(credential password)")"
  fi
}

# --- actions ---------------------------------------------------------------------------------------------------
set_urls
case "$ACTION" in
start)
  PG_BIN="$(find_pg_bin)"
  set_mlflow_cmd
  adopt_running_settings
  start_pg
  start_mlflow
  say "ready: PostgreSQL 127.0.0.1:$PG_PORT, mlflow server $TRACKING_URI (stores in $(say_path "$DIR"))"
  exports
  ;;
stop)
  [ -d "$DIR" ] || {
    say "nothing to stop: $(say_path "$DIR") does not exist"
    exit 0
  }
  stop_mlflow
  if [ -f pgdata/PG_VERSION ]; then
    PG_BIN="$(find_pg_bin)"
    stop_pg
  else
    say "PostgreSQL is not running (no cluster in $(say_path "$DIR/pgdata"))"
  fi
  ;;
status)
  rc=0
  if [ -d "$DIR" ] && [ -f pgdata/PG_VERSION ]; then PG_BIN="$(find_pg_bin)"; fi
  if [ -d "$DIR" ]; then adopt_running_settings; fi
  if [ -d "$DIR" ] && [ -f pgdata/PG_VERSION ]; then
    if pg_running; then
      say "PostgreSQL: running on 127.0.0.1:$PG_PORT ($(say_path "$DIR/pgdata"))"
    else
      say "PostgreSQL: stopped ($(say_path "$DIR/pgdata"))"
      rc=3
    fi
  else
    say "PostgreSQL: no cluster in $(say_path "$DIR/pgdata")"
    rc=3
  fi
  if [ -d "$DIR" ] && pid="$(mlflow_pid)"; then
    if healthy; then
      say "mlflow server: running, healthy (pid $pid, $TRACKING_URI, auth: $MLFLOW_AUTH)"
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
