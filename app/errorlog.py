"""The error log: one JSON object per line, written by the LOGGING handler in settings, read back for the
status page.

Every record at ERROR or above (Django's `django.request` 500s included) lands in `settings.ERROR_LOG_FILE`
with the request's method and path when the record carries one, so "what broke, where" is one file away.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

# The most the status page reads from the end of the file: a pathological line cannot make it read more.
MAX_TAIL_BYTES = 1 << 20
_BLOCK = 64 * 1024


class JsonLineFormatter(logging.Formatter):
    """A record as one line of JSON: time, level, logger, method, path, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request", None)
        method = getattr(request, "method", None)
        path = getattr(request, "path", None)
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
            "level": record.levelname,
            "logger": record.name,
            "method": method if isinstance(method, str) else "",
            "path": path if isinstance(path, str) else "",
            "message": record.getMessage(),
            "exception": self.formatException(record.exc_info) if record.exc_info else "",
        }
        return json.dumps(entry, ensure_ascii=False)


def _tail_lines(path: Path, n: int, max_bytes: int = MAX_TAIL_BYTES) -> list[bytes]:
    """The last `n` complete lines of `path`, read backwards block by block (never the whole file)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n and end - pos < max_bytes:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.splitlines()
    if pos > 0 and lines:
        lines = lines[1:]  # the first line read may be cut in the middle
    return lines[-n:] if n > 0 else []


def recent_errors(limit: int = 10, *, path: Path | None = None) -> list[dict[str, Any]]:
    """The newest `limit` records of the error log, newest first; an absent file means no errors yet.

    Each is a dict with time, level, logger, method, path, message and `exception` (the last line of the
    traceback, e.g. "ValueError: boom"). Lines that are not records of ours are skipped."""
    path = Path(settings.ERROR_LOG_FILE) if path is None else path
    try:
        lines = _tail_lines(path, limit)
    except FileNotFoundError:
        return []
    records = []
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or "level" not in entry:
            continue
        exception = str(entry.get("exception") or "").strip()
        records.append(
            {
                "time": entry.get("time", ""),
                "level": entry.get("level", ""),
                "logger": entry.get("logger", ""),
                "method": entry.get("method", ""),
                "path": entry.get("path", ""),
                "message": entry.get("message", ""),
                "exception": exception.splitlines()[-1] if exception else "",
            }
        )
    return records
