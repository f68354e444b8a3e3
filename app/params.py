"""Parsing request parameters strictly: a malformed value is a clear 400 or a default, never a 500."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

MAX_BIGINT = 2**63 - 1  # PostgreSQL bigint (ids): a larger number is no id, not a database error
MAX_INT = 2**31 - 1  # PostgreSQL integer (round numbers, versions)


def parse_id(raw: str | None, *, maximum: int = MAX_BIGINT) -> int | None:
    """A positive database id from a query or form value; None for anything else (non-ASCII digits such as
    '²' pass str.isdigit() but are no number, a 30-digit number is no id)."""
    if raw is None:
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdecimal()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= maximum else None


def parse_ids(raws: list[str]) -> list[int]:
    """The valid ids of a multi-valued field, in order, without duplicates."""
    out: dict[int, None] = {}
    for raw in raws:
        value = parse_id(raw)
        if value is not None:
            out[value] = None
    return list(out)


def safe_next(request: HttpRequest, raw: str | None, default: str) -> str:
    """`next=` only when it is a path on this site ("/…", same host); otherwise the default page."""
    if (
        raw
        and raw.startswith("/")
        and url_has_allowed_host_and_scheme(raw, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    ):
        return raw
    return default
