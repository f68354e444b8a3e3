#!/usr/bin/env bash
# Make sure .env holds this machine's secrets, generated here, never committed.
#
#   scripts/secrets.sh   create .env (mode 0600) from .env.example once, with a random DJANGO_SECRET_KEY and random
#                        PostgreSQL and Redis passwords in DATABASE_URL and REDIS_URL. An existing .env is never
#                        overwritten: only a missing, empty or placeholder DJANGO_SECRET_KEY is filled in, and the
#                        file is made private again (0600; 0640 when serve.sh shared it with the service group).
#
# Run by `make` (before the services) and by `scripts/services.sh up`. Idempotent, quiet when nothing changes.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=secrets
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ENV_FILE=${BACKFORTH_ENV_FILE:-.env}
[ -f .env.example ] || die ".env.example is missing: it is the template of $ENV_FILE"
command -v python3 >/dev/null || die "python3 is needed to generate the secrets"

umask 077
msg=$(python3 - "$ENV_FILE" .env.example <<'PY'

import os, re, secrets, sys
from urllib.parse import urlsplit, urlunsplit

env_path, example_path = sys.argv[1], sys.argv[2]
# Keys that must never be used outside a test run (settings.py refuses them too).
PLACEHOLDERS = {"", "change-me-in-production", "backforth-insecure-local-key-set-DJANGO_SECRET_KEY"}


def weak_key(value):
    value = value.strip().strip("\"'")
    return value in PLACEHOLDERS or value.startswith("django-insecure-") or len(value) < 32


def with_password(url, password):
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, parts.fragment))


def token():
    return secrets.token_urlsafe(24)  # URL-safe: no percent-encoding needed inside the URLs


key_line = f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}"
if not os.path.exists(env_path):
    out = []
    for line in open(example_path, encoding="utf-8").read().splitlines():
        key, sep, value = line.partition("=")
        if sep and key == "DATABASE_URL":
            line = f"DATABASE_URL={with_password(value, token())}"
        elif sep and key == "REDIS_URL":
            line = f"REDIS_URL={with_password(value, token())}"
        elif sep and key == "DJANGO_SECRET_KEY":
            line = key_line
        out.append(line)
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"created {env_path} with a random secret key and random database and Redis passwords")
    sys.exit(0)

lines = open(env_path, encoding="utf-8").read().splitlines()
keys = [i for i, line in enumerate(lines) if re.match(r"\s*DJANGO_SECRET_KEY\s*=", line)]
if not keys:
    lines.append(key_line)
elif weak_key(lines[keys[-1]].partition("=")[2]):
    lines[keys[-1]] = key_line
else:
    sys.exit(0)
tmp = f"{env_path}.tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
if os.geteuid() == 0:
    st = os.stat(env_path)
    os.chown(tmp, st.st_uid, st.st_gid)
os.replace(tmp, env_path)
print(f"{env_path}: DJANGO_SECRET_KEY was missing or a placeholder; set a random one (other values kept)")
PY
) || die "could not write $ENV_FILE (see above)"
[ -z "$msg" ] || say "$msg"

# Private: only its owner, or also the service group that serve.sh gave it to (read-only).
if [ "$(stat -c %G "$ENV_FILE")" = backforth ]; then chmod 0640 "$ENV_FILE"; else chmod 0600 "$ENV_FILE"; fi
