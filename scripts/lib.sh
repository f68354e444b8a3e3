# Shared shell helpers for the project's scripts (sourced, not run).
say() { printf '\033[1m[%s]\033[0m %s\n' "${LOG_TAG:-backforth}" "$*"; }
die() { printf '\033[1;31m[%s] ERROR:\033[0m %s\n' "${LOG_TAG:-backforth}" "$*" >&2; exit 1; }

apt_install() {  # apt_install PKG... — only what is missing; a clear message when apt cannot help
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "need ${missing[*]}, and this is not a Debian/Ubuntu machine: install them yourself"
  [ "$(id -u)" = 0 ] || die "need ${missing[*]} installed; run as root or: sudo apt-get install ${missing[*]}"
  say "installing ${missing[*]} from Debian (apt-get)…"
  if ! { apt-get update -q >/tmp/backforth-apt.log 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      >>/tmp/backforth-apt.log 2>&1; }; then
    tail -n 5 /tmp/backforth-apt.log >&2
    die "apt-get could not install ${missing[*]} (is the Debian mirror reachable?). Full log: /tmp/backforth-apt.log"
  fi
}

port_holder() {  # the program listening on TCP port $1, empty if none
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)".*/\1/p' | head -n1
}

wait_for() {  # wait_for SECONDS CMD... — true once CMD succeeds
  local secs=$1 i; shift
  for i in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

load_env() {  # export the KEY=VALUE lines of .env that the environment does not set (app/dotenv.py, the one
  local exports   # reader Python uses too: same quoting rules, same errors)
  command -v python3 >/dev/null || die "python3 is needed to read .env"
  exports=$(python3 app/dotenv.py .env) || die "cannot read .env (see above)"
  eval "$exports"
  : "${BACKFORTH_DATA_DIR:=var}"
  case "$BACKFORTH_DATA_DIR" in /*) ;; *) BACKFORTH_DATA_DIR="$PWD/$BACKFORTH_DATA_DIR" ;; esac
  export BACKFORTH_DATA_DIR
}
