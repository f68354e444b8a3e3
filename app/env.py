"""Small, strict helpers for reading settings from the environment.

A value that is present but malformed raises ImproperlyConfigured naming the variable, so a typo in
`.env` fails at start-up with a clear message instead of somewhere deep in a request.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from app import dotenv

_TRUE = {"1", "true", "yes", "on"}
# Secret keys that were ever shipped in this repository (or Django's startproject template): never valid.
PLACEHOLDER_SECRET_KEYS = {"change-me-in-production", "backforth-insecure-local-key-set-DJANGO_SECRET_KEY"}
MIN_SECRET_KEY_LENGTH = 32
_FALSE = {"0", "false", "no", "off", ""}


def load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines from `path` into os.environ without overriding what is already set (the same
    reader as the shell scripts': app/dotenv.py)."""
    try:
        dotenv.load(path)
    except dotenv.DotenvError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path, *, base: Path) -> Path:
    raw = os.environ.get(name, "").strip()
    path = Path(raw) if raw else default
    return path if path.is_absolute() else (base / path)


def redis_url(name: str, default: str) -> str:
    url = os.environ.get(name, default)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"{name} must be a redis:// URL, got {url!r}")
    return url


def redis_url_with_db(url: str, db: int) -> str:
    """The same Redis server, another logical database (tests use their own, so a running demo
    worker never picks up a test's jobs)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """`url` with its password (in the user part or a `password=` query parameter) replaced by `***`,
    for pages and logs: `redis://:s3cret@host:6379/0` -> `redis://:***@host:6379/0`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secret_key_problem(key: str) -> str | None:
    """Why `key` must not sign sessions and tokens (None when it is fine): empty, short or a known placeholder."""
    if not key:
        return "is empty"
    if key in PLACEHOLDER_SECRET_KEYS or key.startswith("django-insecure-"):
        return "is a published placeholder"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is {len(key)} characters long (at least {MIN_SECRET_KEY_LENGTH} random ones are needed)"
    return None
