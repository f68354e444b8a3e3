#!/usr/bin/env bash
# Bring up (or check) the PostgreSQL and Redis that Backforth needs, from Debian's packages.
#
#   scripts/services.sh up      install if missing, start, create role + database, wait until they answer
#   scripts/services.sh status  say what answers, change nothing
#   scripts/services.sh down    stop the Redis this script started (PostgreSQL is left to the system cluster)
#
# It reads DATABASE_URL and REDIS_URL (from the environment, else .env through app/dotenv.py, else the defaults below); `up` first makes sure .env
# exists with random passwords (scripts/secrets.sh). A service that already answers on its URL, with that URL's
# password, is used as it is. On this machine's own services the passwords of .env win: a PostgreSQL role that
# exists with another password gets the one in .env, a Redis this script started without a password gets one.
# Passwords never appear on a command line (ps): SQL and Redis config go through stdin, redis-cli uses
# REDISCLI_AUTH. Idempotent: running `up` twice changes nothing.
#
# Where they listen (for workers on other hosts; README "More than one machine"), on this machine's own services:
#   BACKFORTH_PG_LISTEN    addresses PostgreSQL listens on besides localhost ("10.0.0.5", or "*"); unset: as it is
#   BACKFORTH_PG_ALLOW     networks whose hosts may log in as the app's role to its database, with its password
#                          ("10.0.0.0/24"): one `host` line each in pg_hba.conf
#   BACKFORTH_REDIS_BIND   addresses the Redis started here binds besides REDIS_URL's host (default: only that one)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

LOG_TAG=services
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
[ "${1:-up}" != up ] || scripts/secrets.sh
load_env
: "${DATABASE_URL:=postgres://backforth:backforth@127.0.0.1:5432/backforth}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"

# Split a URL into shell variables with Python's own parser (no venv needed).
parsed=$(python3 - "$DATABASE_URL" "$REDIS_URL" <<'PY'
import shlex, sys
from urllib.parse import unquote, urlsplit
db, rd = urlsplit(sys.argv[1]), urlsplit(sys.argv[2])
if db.scheme not in ("postgres", "postgresql", "pgsql"):
    sys.exit(f"DATABASE_URL must be a postgres:// URL, got {sys.argv[1]!r}")
if rd.scheme != "redis":
    sys.exit(f"REDIS_URL must be a redis:// URL, got {sys.argv[2]!r}")
vals = {
    "PG_HOST": db.hostname or "127.0.0.1", "PG_PORT": db.port or 5432,
    "PG_USER": unquote(db.username or "backforth"), "PG_PASSWORD": unquote(db.password or ""),
    "PG_DB": db.path.lstrip("/") or "backforth",
    "REDIS_HOST": rd.hostname or "127.0.0.1", "REDIS_PORT": rd.port or 6379,
    "REDIS_USER": unquote(rd.username or ""), "REDIS_PASSWORD": unquote(rd.password or ""),
}
for k, v in vals.items():
    print(f"{k}={shlex.quote(str(v))}")
PY
) || die "bad DATABASE_URL / REDIS_URL (see above)"
eval "$parsed"

is_local() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" || "$1" == "::1" ]]; }

# --- PostgreSQL ----------------------------------------------------------------------------------------
pg_answers() { PGCONNECT_TIMEOUT=3 PGPASSWORD="$PG_PASSWORD" timeout 5 psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -Atqc 'select 1' >/dev/null 2>&1; }

as_postgres() { runuser -u postgres -- "$@"; }

# True when the server answers but refuses us for something a new password cannot fix (pg_hba.conf, no database).
pg_login_refused_for_other_reasons() {
  local err
  err=$(PGCONNECT_TIMEOUT=3 PGPASSWORD="$PG_PASSWORD" timeout 5 psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -Atqc 'select 1' 2>&1 >/dev/null) && return 1
  ! grep -q "password authentication failed" <<<"$err"
}

pg_up() {
  if command -v psql >/dev/null && pg_answers; then
    say "PostgreSQL answers at $PG_HOST:$PG_PORT/$PG_DB"
    return 0
  fi
  is_local "$PG_HOST" || die "DATABASE_URL points at $PG_HOST:$PG_PORT, which does not answer, and is not local: start it yourself"
  apt_install postgresql
  local ver
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  [ -n "$ver" ] || die "postgresql is installed but /usr/lib/postgresql holds no version"

  # The cluster that owns our port: Debian's default (main, 5432) or one we create for this port.
  local cluster holder
  cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1 "/" $2; exit}')
  if [ -z "$cluster" ] || ! pg_lsclusters -h | awk -v c="$cluster" '($1 "/" $2) == c && $4 == "online" {f=1} END {exit !f}'; then
    holder=$(port_holder "$PG_PORT")
    [ -z "$holder" ] || die "port $PG_PORT is taken by $holder, not PostgreSQL: free it or set DATABASE_URL to another port"
    if [ -z "$cluster" ]; then
      say "creating PostgreSQL $ver cluster 'backforth' on port $PG_PORT"
      pg_createcluster -p "$PG_PORT" "$ver" backforth >/dev/null || die "pg_createcluster failed"
      cluster="$ver/backforth"
    fi
    say "starting PostgreSQL cluster $cluster"
    pg_ctlcluster "${cluster%/*}" "${cluster#*/}" start ||
      die "PostgreSQL cluster $cluster did not start; see /var/log/postgresql/postgresql-${cluster/\//-}.log"
  fi
  wait_for 30 as_postgres pg_isready -q -p "$PG_PORT" || die "PostgreSQL did not answer on port $PG_PORT within 30 s"

  # Role (with CREATEDB, so the test runner can make its test database) and database. SQL goes through stdin,
  # so the password is never on a command line.
  local q_user q_pass
  q_user=$(printf '%s' "$PG_USER" | sed "s/\"/\"\"/g")
  q_pass=$(printf '%s' "$PG_PASSWORD" | sed "s/'/''/g")
  if [ "$(as_postgres psql -p "$PG_PORT" -Atqc "select 1 from pg_roles where rolname = '$(printf '%s' "$PG_USER" | sed "s/'/''/g")'")" != 1 ]; then
    say "creating role $PG_USER"
    printf '%s\n' "create role \"$q_user\" login createdb password '$q_pass'" | as_postgres psql -p "$PG_PORT" -qX >/dev/null
  fi
  if [ "$(as_postgres psql -p "$PG_PORT" -Atqc "select 1 from pg_database where datname = '$(printf '%s' "$PG_DB" | sed "s/'/''/g")'")" != 1 ]; then
    say "creating database $PG_DB"
    as_postgres createdb -p "$PG_PORT" -O "$PG_USER" "$PG_DB"
  fi
  # A role left by an earlier checkout (or an older .env) with another password: .env is the truth here.
  if ! pg_answers && ! pg_login_refused_for_other_reasons; then
    say "role $PG_USER exists with another password: setting the one in .env"
    printf '%s\n' "alter role \"$q_user\" with login password '$q_pass'" | as_postgres psql -p "$PG_PORT" -qX >/dev/null
  fi
  wait_for 15 pg_answers || die "PostgreSQL runs but $PG_USER cannot log in to $PG_DB over TCP (check pg_hba.conf / password)"
  say "PostgreSQL ready at $PG_HOST:$PG_PORT/$PG_DB (cluster $cluster)"
}

# Addresses and networks from a setting: commas or spaces between them.
words() { printf '%s\n' "${1//,/ }" | xargs -n1 2>/dev/null || true; }

pg_cluster() {  # "version name" of the online cluster on our port
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p && $4 == "online" {print $1, $2; exit}'
}

# BACKFORTH_PG_LISTEN and BACKFORTH_PG_ALLOW on this machine's PostgreSQL: listen_addresses (a restart, only when it
# changes) and one pg_hba.conf line per network (appended once, then a reload). Passwords stay required.
pg_network() {
  local listen=${BACKFORTH_PG_LISTEN:-} allow=${BACKFORTH_PG_ALLOW:-} a
  [ -n "$listen$allow" ] || return 0
  is_local "$PG_HOST" || die "BACKFORTH_PG_LISTEN / BACKFORTH_PG_ALLOW apply to a PostgreSQL on this machine; DATABASE_URL points at $PG_HOST: set them on that host"
  local cluster
  cluster=$(pg_cluster)
  [ -n "$cluster" ] || die "no PostgreSQL cluster of this machine is online on port $PG_PORT"
  if [ -n "$listen" ]; then
    local want=localhost current
    for a in $(words "$listen"); do
      [[ "$a" =~ ^[A-Za-z0-9.:*-]+$ ]] || die "BACKFORTH_PG_LISTEN: '$a' is not an address"
      if [ "$a" = "*" ]; then want="*"; break; fi
      [[ ",$want," == *",$a,"* ]] || want+=",$a"
    done
    current=$(as_postgres psql -p "$PG_PORT" -AtqXc 'show listen_addresses')
    if [ "$current" != "$want" ]; then
      say "PostgreSQL: listening on $want (was $current): restarting cluster ${cluster/ //}"
      printf "alter system set listen_addresses = '%s'\n" "$want" | as_postgres psql -p "$PG_PORT" -qX >/dev/null
      pg_ctlcluster ${cluster} restart || die "PostgreSQL cluster ${cluster/ //} did not restart; see /var/log/postgresql/"
      wait_for 30 pg_answers || die "PostgreSQL did not answer again after listening on $want"
    fi
  fi
  if [ -n "$allow" ]; then
    local hba line added=()
    hba=$(as_postgres psql -p "$PG_PORT" -AtqXc 'show hba_file')
    for a in $(words "$allow"); do
      python3 -c 'import ipaddress, sys; ipaddress.ip_network(sys.argv[1], strict=False)' "$a" 2>/dev/null ||
        die "BACKFORTH_PG_ALLOW: '$a' is not a network (CIDR such as 10.0.0.0/24, or one address)"
      line="host $PG_DB $PG_USER $a scram-sha-256"
      grep -qxF "$line" "$hba" && continue
      printf '# backforth (scripts/services.sh): %s may log in to %s from %s, with its password\n%s\n' \
        "$PG_USER" "$PG_DB" "$a" "$line" >>"$hba"
      added+=("$a")
    done
    if [ ${#added[@]} -gt 0 ]; then
      as_postgres psql -p "$PG_PORT" -AtqXc 'select pg_reload_conf()' >/dev/null
      say "PostgreSQL: $PG_USER may log in to $PG_DB from ${added[*]} (password required; $hba)"
    fi
  fi
}

# --- Redis ---------------------------------------------------------------------------------------------
redis_dir="$BACKFORTH_DATA_DIR/redis"
redis_pidfile="$redis_dir/redis.pid"
legacy_pidfile="$BACKFORTH_DATA_DIR/run/redis.pid"  # where older versions (Redis as root) kept it
redis_pid() {  # the pid of the Redis this script started, empty if none runs
  local f
  for f in "$redis_pidfile" "$legacy_pidfile"; do
    if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then cat "$f"; return 0; fi
  done
}
# redis-cli takes the password from REDISCLI_AUTH (never -a, which ps would show).
rcli() {
  local args=(-h "$REDIS_HOST" -p "$REDIS_PORT")
  [ -z "$REDIS_USER" ] || args+=(--user "$REDIS_USER")
  if [ -n "$REDIS_PASSWORD" ]; then REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli "${args[@]}" "$@" 2>/dev/null
  else timeout 3 redis-cli "${args[@]}" "$@" 2>/dev/null; fi
}
redis_answers() { [ "$(rcli ping)" = PONG ]; }
# Answers without any password (redis-cli only warns when AUTH fails, so check without one).
redis_open() { [ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
redis_is_ours() { [ -n "$(redis_pid)" ]; }
redis_bind() {  # REDIS_URL's host, then BACKFORTH_REDIS_BIND's addresses
  local want=$REDIS_HOST a
  for a in $(words "${BACKFORTH_REDIS_BIND:-}"); do
    [[ "$a" =~ ^[A-Za-z0-9.:*-]+$ ]] || die "BACKFORTH_REDIS_BIND: '$a' is not an address"
    [[ " $want " == *" $a "* ]] || want+=" $a"
  done
  printf '%s' "$want"
}
# Our running Redis binds what the settings say (CONFIG SET, no restart); another one is left as it is.
redis_network() {
  local want current
  want=$(redis_bind)
  if ! is_local "$REDIS_HOST" || ! redis_is_ours; then
    [ -z "${BACKFORTH_REDIS_BIND:-}" ] ||
      say "WARNING: BACKFORTH_REDIS_BIND applies to a Redis this script starts; the one at $REDIS_HOST:$REDIS_PORT is left as it is"
    return 0
  fi
  current=$(rcli config get bind | sed -n 2p)
  if [ "$current" != "$want" ]; then
    rcli config set bind "$want" >/dev/null || die "could not make the Redis at $REDIS_HOST:$REDIS_PORT bind $want"
    say "Redis: binds $want (was $current)"
  fi
}

redis_up() {
  local bind
  bind=$(redis_bind)  # checked before anything starts
  if command -v redis-cli >/dev/null && redis_answers; then
    if [ -n "$REDIS_PASSWORD" ] && redis_open; then
      if is_local "$REDIS_HOST" && redis_is_ours; then
        say "Redis at $REDIS_HOST:$REDIS_PORT (ours) runs without a password: setting the one in .env"
        printf 'CONFIG SET requirepass "%s"\n' "$REDIS_PASSWORD" | timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" >/dev/null
        redis_answers && ! redis_open || die "could not set a password on the Redis at $REDIS_HOST:$REDIS_PORT"
      else
        say "WARNING: the Redis at $REDIS_HOST:$REDIS_PORT accepts clients without a password (not started by this script, left as it is)"
      fi
    fi
    say "Redis answers at $REDIS_HOST:$REDIS_PORT"
    redis_network
    return 0
  fi
  is_local "$REDIS_HOST" || die "REDIS_URL points at $REDIS_HOST:$REDIS_PORT, which does not answer, and is not local: start it yourself"
  apt_install redis-server
  local holder
  holder=$(port_holder "$REDIS_PORT")
  if [ "$holder" = redis-server ] && redis_is_ours; then
    die "our Redis at $REDIS_HOST:$REDIS_PORT refuses the password in .env: stop it (scripts/services.sh down, or kill $(redis_pid)) and run up again"
  fi
  if [ "$holder" = redis-server ]; then
    die "a Redis we did not start answers at $REDIS_HOST:$REDIS_PORT but refuses the password in .env (another checkout's?): put its password in REDIS_URL, stop it, or set REDIS_URL to another port"
  fi
  [ -z "$holder" ] || die "port $REDIS_PORT is taken by $holder, not Redis: free it or set REDIS_URL to another port"
  mkdir -p "$redis_dir"
  chmod 0750 "$redis_dir"
  # Not as root: as Debian's `redis` user (the package creates it), which owns its directory. Where that user
  # cannot reach the directory (a checkout under /root), Redis runs as root after a warning.
  local run_as=() who=root
  if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then
    chown -R redis:redis "$redis_dir"
    if runuser -u redis -- test -w "$redis_dir" 2>/dev/null; then
      run_as=(runuser -u redis --)
      who=redis
    else
      chown -R root:root "$redis_dir"
      say "WARNING: user redis cannot reach $redis_dir (a directory above it is closed to others): Redis runs as root"
    fi
  fi
  say "starting Redis on $REDIS_HOST:$REDIS_PORT (user $who)"
  # RQ is transport only (the database is the source of truth), so no persistence is needed. The configuration,
  # password included, goes through stdin: nothing secret on the command line or on disk besides .env.
  {
    printf 'bind %s\nport %s\ndaemonize yes\npidfile "%s"\n' "$bind" "$REDIS_PORT" "$redis_pidfile"
    printf 'dir "%s"\nlogfile "%s"\nsave ""\nappendonly no\n' "$redis_dir" "$redis_dir/redis.log"
    [ -z "$REDIS_PASSWORD" ] || printf 'requirepass "%s"\n' "$REDIS_PASSWORD"
  } | "${run_as[@]}" redis-server - >/dev/null || die "redis-server did not start; see $BACKFORTH_DATA_DIR/redis/redis.log"
  wait_for 15 redis_answers || die "Redis did not answer on port $REDIS_PORT within 15 s; see $BACKFORTH_DATA_DIR/redis/redis.log"
  say "Redis ready at $REDIS_HOST:$REDIS_PORT${REDIS_PASSWORD:+ (password required)}, bound to $bind"
}

status() {
  local rc=0
  if command -v psql >/dev/null && pg_answers; then say "PostgreSQL: up ($PG_HOST:$PG_PORT/$PG_DB)"; else say "PostgreSQL: down"; rc=1; fi
  if command -v redis-cli >/dev/null && redis_answers; then say "Redis: up ($REDIS_HOST:$REDIS_PORT)"; else say "Redis: down"; rc=1; fi
  return $rc
}

down() {
  local pid
  pid=$(redis_pid)
  if [ -n "$pid" ]; then
    say "stopping Redis (pid $pid)"
    rcli shutdown nosave >/dev/null 2>&1 || kill "$pid"
  fi
  local cluster
  cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p && $4 == "online" {print $1 "/" $2; exit}')
  if [ -n "$cluster" ]; then
    say "stopping PostgreSQL cluster $cluster"
    pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop
  fi
}

case "${1:-up}" in
  up) pg_up; pg_network; redis_up ;;
  status) status ;;
  down) down ;;
  *) die "usage: $0 up|status|down" ;;
esac
