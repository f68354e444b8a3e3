#!/usr/bin/env bash
# Run the web app (gunicorn) and an RQ worker in the background.
#   scripts/serve.sh start | stop | status
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
mkdir -p "$RUN" "$LOGS"

http_ok() { "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_web() {
  if alive "$RUN/web.pid"; then say "web server already running (pid $(cat "$RUN/web.pid"))"; return; fi
  local holder
  holder=$(port_holder "$PORT")
  [ -z "$holder" ] || die "port $PORT is taken by $holder: stop it, or set BACKFORTH_PORT to another port"
  "$BIN/gunicorn" app.wsgi --bind "$HOST:$PORT" --workers "${BACKFORTH_WEB_WORKERS:-3}" --daemon \
    --pid "$RUN/web.pid" --access-logfile "$LOGS/web-access.log" --error-logfile "$LOGS/web.log" --timeout 120
  wait_for 20 http_ok "http://$HOST:$PORT/accounts/login/" ||
    die "the web server did not answer on http://$HOST:$PORT within 20 s; see $LOGS/web.log"
  say "web server on http://$HOST:$PORT (pid $(cat "$RUN/web.pid"), log $LOGS/web.log)"
}

start_worker() {
  if alive "$RUN/worker.pid"; then say "worker already running (pid $(cat "$RUN/worker.pid"))"; return; fi
  # One worker takes both queues, model work first. More workers (one per GPU) can join the same Redis.
  # Its own session: `stop` signals the whole process group, so vLLM's engine processes never outlive it.
  setsid nohup "$BIN/python" manage.py rqworker gpu default --worker-class generation.worker.BackforthWorker \
    --name "backforth-$(hostname)-$$" \
    >>"$LOGS/worker.log" 2>&1 &
  echo $! >"$RUN/worker.pid"
  sleep 1
  alive "$RUN/worker.pid" || die "the worker exited at once; see $LOGS/worker.log"
  say "worker on queues gpu, default (pid $(cat "$RUN/worker.pid"), log $LOGS/worker.log)"
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

case "${1:-}" in
  start) start_worker; start_web ;;
  stop) stop_one web; stop_one worker group ;;
  status)
    for n in web worker; do if alive "$RUN/$n.pid"; then say "$n: running (pid $(cat "$RUN/$n.pid"))"; else say "$n: stopped"; fi; done ;;
  *) die "usage: $0 start|stop|status" ;;
esac
