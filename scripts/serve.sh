#!/usr/bin/env bash
# Run the web app (gunicorn) and the RQ workers in the background.
#   scripts/serve.sh start    workers (queues gpu and default) and the web server
#   scripts/serve.sh workers  workers only (queue gpu), for a host that joins another's PostgreSQL and Redis
#   scripts/serve.sh stop | status | plan (the workers `start` would run here, started nothing)
#
# Workers: one per GPU (`nvidia-smi -L`; CUDA_VISIBLE_DEVICES, if set, limits them), each with its own
# CUDA_VISIBLE_DEVICES; BACKFORTH_GPUS_PER_WORKER=N gives each N of them (tensor parallel serving, DDP fine-tunes);
# BACKFORTH_WORKERS caps their number. Without a GPU: BACKFORTH_WORKERS CPU workers (default 1), several of them
# pinned to equal shares of the cores. BACKFORTH_WORKER_QUEUES replaces the queues. Each has its pid file
# ($BACKFORTH_DATA_DIR/run/worker-LABEL.pid) and log (log/worker-LABEL.log); `stop` stops them all.
#
# Run as root, both run as the system user `backforth` (BACKFORTH_SERVICE_USER), created here once, never as root:
# it owns what they write (the log, uploads and trained-models directories, its own HOME for caches) and reads
# .env through its group (0640). If that user cannot read the checkout (say it lives under /root, mode 0700),
# they run as root after a clear warning. Logs are not world-readable (umask 027). Errors are kept: gunicorn's
# own output goes to var/log/web.log (--capture-output), the app's errors to var/log/errors.log.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=serve
. scripts/lib.sh
load_env

HOST=${BACKFORTH_HOST:-127.0.0.1}
PORT=${BACKFORTH_PORT:-8000}
RUN="$BACKFORTH_DATA_DIR/run"
LOGS="$BACKFORTH_DATA_DIR/log"
BIN=.venv/bin
SERVICE_USER=${BACKFORTH_SERVICE_USER:-backforth}
umask 027
mkdir -p "$RUN" "$LOGS"

http_ok() { "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# AS: the prefix that runs a command as the service user (empty: as ourselves). setpriv execs (no extra process),
# so $! is the service's own pid and `stop` signals the right one.
AS=()
SETPRIV=(setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups --inh-caps=-all --)
as_service() { "${SETPRIV[@]}" "$@"; }

use_service_user() {
  [ "$(id -u)" = 0 ] || return 0  # not root: run as whoever we are
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    say "creating system user $SERVICE_USER (runs the web server and the worker)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER" ||
      die "useradd could not create the system user $SERVICE_USER"
  fi
  if ! as_service test -r manage.py -a -x "$BIN/python" -a -r app/settings.py ||
    ! as_service "$BIN/python" -c "import django, gunicorn" >/dev/null 2>&1; then
    say "WARNING: user $SERVICE_USER cannot read $PWD or run $BIN/python (it, or the Python it links to, lies under"
    say "WARNING: a directory closed to others, such as /root): running the web server and the worker as root."
    say "WARNING: Clone under /srv or /opt, with a Python outside /root, to run them as $SERVICE_USER."
    return 0
  fi
  # What the services read: the data directory and the models under it (created by root's umask, or ours, 027).
  local d
  for d in "$BACKFORTH_DATA_DIR" "$BACKFORTH_DATA_DIR/models"; do
    mkdir -p "$d"
    as_service test -x "$d" -a -r "$d" || { chgrp "$SERVICE_USER" "$d" && chmod g+rx "$d"; }
  done
  # What the services write: logs, uploads, trained models, their HOME (Hugging Face / torch caches).
  for d in "$LOGS" "$BACKFORTH_DATA_DIR/uploads" "$BACKFORTH_DATA_DIR/models/rounds" "$BACKFORTH_DATA_DIR/home"; do
    mkdir -p "$d"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$d"
    chmod 0750 "$d"
  done
  # Log files that root's own commands (make, manage.py) created stay appendable by the services, never public.
  as_service touch "$LOGS/errors.log" "$LOGS/web.log" "$LOGS/web-access.log"
  find "$LOGS" -maxdepth 1 -type f -exec chown "$SERVICE_USER:$SERVICE_USER" {} + -exec chmod 0640 {} +
  # Models trained by rounds on shared storage (more than one machine): the services write there too.
  local trained=${BACKFORTH_TRAINED_MODELS_DIR:-}
  if [ -n "$trained" ] && ! as_service test -w "$trained" -a -x "$trained"; then
    say "WARNING: user $SERVICE_USER cannot write BACKFORTH_TRAINED_MODELS_DIR=$trained: fine-tunes will fail there"
    say "WARNING: create it, and give $SERVICE_USER the same uid on every host, or write access through its group"
  fi
  # .env holds the secrets: readable by its owner and the service group, nobody else.
  if [ -f .env ]; then chgrp "$SERVICE_USER" .env && chmod 0640 .env; fi
  AS=(env HOME="$BACKFORTH_DATA_DIR/home" "${SETPRIV[@]}")
}

# Run "$@" in its own session in the background, as the service user, appending its output to log $1. The log
# is opened by the service itself (not by root: the service owns the log directory), and every step execs, so
# $! is the service's own pid.
spawn() {
  local log=$1
  shift
  setsid nohup "${AS[@]}" bash -c 'log=$1; shift; exec "$@" >>"$log" 2>&1 </dev/null' _ "$log" "$@" >/dev/null 2>&1 &
}

start_web() {
  if alive "$RUN/web.pid"; then say "web server already running (pid $(cat "$RUN/web.pid"))"; return; fi
  local holder
  holder=$(port_holder "$PORT")
  [ -z "$holder" ] || die "port $PORT is taken by $holder: stop it, or set BACKFORTH_PORT to another port"
  # Not --daemon (gunicorn's daemon mode resets the umask to 022): its own session in the background instead; the
  # pid file is written here, by us, in a directory the service user cannot write.
  # Processes × threads: app/gunicorn_conf.py (bench.review starts the server with the same file): sync workers, two
  # per core. In `make bench` on 2 cores, 20 annotators deciding back to back over HTTP (p95 ms, decisions/s):
  # sync 4x1 263 ms 95.9/s, sync 3x1 261 ms 91.8/s, sync 5x1 292 ms 83.4/s; gthread 4x1 632 ms 96.0/s,
  # gthread 2x4 536 ms 76.3/s, gthread 4x2 804 ms 72.3/s. Threads share one GIL per process and queue behind it.
  spawn "$LOGS/web.log" "$BIN/gunicorn" -c app/gunicorn_conf.py app.wsgi --bind "$HOST:$PORT" \
    --access-logfile "$LOGS/web-access.log" --error-logfile "$LOGS/web.log" --capture-output --timeout 120
  echo $! >"$RUN/web.pid"
  wait_for 20 http_ok "http://$HOST:$PORT/accounts/login/" ||
    die "the web server did not answer on http://$HOST:$PORT within 20 s; see $LOGS/web.log"
  say "web server on http://$HOST:$PORT (pid $(cat "$RUN/web.pid"), user $(ps -o user= -p "$(cat "$RUN/web.pid")"), log $LOGS/web.log)"
}

worker_pids() { ls "$RUN"/worker*.pid 2>/dev/null || true; }  # worker.pid: one started by an older serve.sh

# The plan (generation/backends/devices.py): "note<TAB>text" and "worker<TAB>label<TAB>GPUs<TAB>cores<TAB>threads".
worker_plan() {
  "$BIN/python" -m generation.backends.devices plan || die "cannot plan the workers (see above)"
}

start_workers() {  # start_workers QUEUES…
  local queues=("$@") f running=0
  [ -z "${BACKFORTH_WORKER_QUEUES:-}" ] || read -r -a queues <<<"${BACKFORTH_WORKER_QUEUES//,/ }"
  for f in $(worker_pids); do alive "$f" && running=$((running + 1)); done
  if [ "$running" -gt 0 ]; then
    say "$running worker(s) already running (scripts/serve.sh stop first to change them)"
    return
  fi
  local plan kind label gpus cores threads started=()
  plan=$(worker_plan)
  while IFS=$'\t' read -r kind label gpus cores threads; do
    case "$kind" in
      note) say "$label" ;;
      worker) start_worker "$label" "$gpus" "$cores" "$threads" "${queues[@]}"; started+=("$label") ;;
    esac
  done <<<"$plan"
  sleep 1
  for label in "${started[@]}"; do
    alive "$RUN/worker-$label.pid" || die "worker $label exited at once; see $LOGS/worker-$label.log"
    local pid
    pid=$(cat "$RUN/worker-$label.pid")
    say "worker $label on queues ${queues[*]} (pid $pid, user $(ps -o user= -p "$pid"), log $LOGS/worker-$label.log)"
  done
}

start_worker() {  # start_worker LABEL GPUS CORES THREADS QUEUES…
  local label=$1 gpus=$2 cores=$3 threads=$4
  shift 4
  # `env` and `taskset` exec too, so $! stays the worker's own pid. Its own session: `stop` signals the whole
  # process group, so vLLM's engine processes never outlive it; a fine-tune under `accelerate launch` (a session
  # of its own, for a cancel) dies with the worker (PR_SET_PDEATHSIG, generation/backends/launch.py).
  local run=(env)
  # The ids are nvidia-smi's, which counts in PCI bus order; CUDA's own default order may differ.
  [ "$gpus" = - ] || run+=("CUDA_DEVICE_ORDER=${CUDA_DEVICE_ORDER:-PCI_BUS_ID}" "CUDA_VISIBLE_DEVICES=$gpus")
  [ "$cores" = - ] || run+=("OMP_NUM_THREADS=$threads" taskset -c "$cores")
  spawn "$LOGS/worker-$label.log" "${run[@]}" "$BIN/python" manage.py rqworker "$@" \
    --worker-class generation.worker.BackforthWorker --name "backforth-$(hostname)-$label-$$"
  echo $! >"$RUN/worker-$label.pid"
}

stop_one() {
  local name=$1 pidfile="$RUN/$1.pid" group=${2:-}
  if alive "$pidfile"; then
    local pid target
    pid=$(cat "$pidfile")
    target=$pid
    [ -n "$group" ] && [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ] && target="-$pid"
    kill -- "$target"
    for _ in $(seq 1 50); do alive "$pidfile" || break; sleep 0.2; done
    alive "$pidfile" && kill -9 -- "$target" 2>/dev/null || true
    # Whatever the process left in its group (a vLLM engine core) goes with it.
    [ "$target" = "-$pid" ] && kill -9 -- "$target" 2>/dev/null || true
    say "stopped $name"
  fi
  rm -f "$pidfile"
}

stop_workers() {  # all at once: each may take 10 s to finish its job
  local f
  for f in $(worker_pids); do stop_one "$(basename "$f" .pid)" group & done
  wait
}

case "${1:-}" in
  start) use_service_user; start_workers gpu default; start_web ;;
  workers) use_service_user; start_workers gpu ;;
  stop) stop_one web; stop_workers ;;
  status)
    for f in "$RUN/web.pid" $(worker_pids); do
      n=$(basename "$f" .pid)
      if alive "$f"; then say "$n: running (pid $(cat "$f"), user $(ps -o user= -p "$(cat "$f")"))"
      else say "$n: stopped"; fi
    done ;;
  plan) worker_plan ;;
  *) die "usage: $0 start|workers|stop|status|plan" ;;
esac
