"""JSON lines (Dolma, C4, DCLM): one JSON object per line, read with bounded `readline` calls, so a 50 MB line
is refused after reading at most `max_line_bytes + 2` bytes of it and is never joined into one buffer.

Pure module (no Django, no torch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generation.corpus.readers._common import (
    GZIP_ERRORS,
    Document,
    LineTooLong,
    ReadError,
    ReadStats,
    fmt_bytes,
    open_binary,
    read_line,
    utf8_error,
)

_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 100


def check_json_lines(path: Path) -> None:
    """Refuse a `.json` file that is not JSON lines, from its first non-blank line (read in bounded pieces).
    Unreadable content is left to the reader, which reports it with a line number."""
    try:
        with open_binary(path) as stream:
            for _ in range(_SNIFF_LINES):
                line = stream.readline(_SNIFF_BYTES)
                if not line:
                    return
                first = line.strip().removeprefix(b"\xef\xbb\xbf")
                if first:
                    break
            else:
                return
    except (OSError, *GZIP_ERRORS):
        return
    complete = line.endswith(b"\n") or len(line) < _SNIFF_BYTES
    if first.startswith(b"["):
        raise ReadError(path, None, "a JSON array, not JSON lines (one object per line); convert it to .jsonl")
    if first.startswith(b"{") and complete and not first.endswith(b"}"):
        raise ReadError(path, None, "a single (pretty-printed) JSON document, not JSON lines; convert it to .jsonl")
    # anything else is left to the reader ("invalid JSON on line N")


def read_jsonl(path: Path, *, name: str, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    line_no = 0
    with open_binary(path) as stream:
        while True:
            try:
                raw = read_line(stream, max_line_bytes)
            except LineTooLong:
                raise ReadError(
                    path, line_no + 1, f"line longer than max_line_bytes ({fmt_bytes(max_line_bytes)}); refused"
                ) from None
            except GZIP_ERRORS as exc:
                raise ReadError(path, line_no + 1, f"truncated or corrupt gzip after line {line_no} ({exc})") from None
            except OSError as exc:
                raise ReadError(path, line_no + 1, f"read error: {exc}") from None
            if not raw:
                return
            line_no += 1
            stats.bytes += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ReadError(path, line_no, utf8_error(exc)) from None
            if line_no == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReadError(path, line_no, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
            except RecursionError:
                raise ReadError(path, line_no, "invalid JSON: nested too deeply") from None
            doc = _json_document(path, name, line_no, record, text_field, id_field)
            if not doc.text.strip():
                stats.skipped_empty += 1
                continue
            yield doc


def _json_document(path: Path, name: str, line_no: int, record: Any, text_field: str, id_field: str) -> Document:
    if not isinstance(record, dict):
        raise ReadError(path, line_no, f"expected a JSON object, got {type(record).__name__}")
    if text_field not in record:
        keys = ", ".join(list(record)[:10])
        raise ReadError(path, line_no, f"missing {text_field!r} field (keys: {keys or 'none'})")
    text = record[text_field]
    if not isinstance(text, str):
        raise ReadError(path, line_no, f"field {text_field!r} is not a string (got {type(text).__name__})")
    doc_id = record.get(id_field)
    source_id = str(doc_id) if isinstance(doc_id, str | int) and doc_id != "" else f"{name}:{line_no}"
    meta = {k: v for k, v in record.items() if k not in (text_field, id_field, "url")}
    return Document(text=text, source_id=source_id, url=_json_url(record), meta=meta)


def _json_url(record: dict) -> str:
    url = record.get("url")
    if isinstance(url, str) and url:
        return url
    for key in ("metadata", "meta"):
        nested = record.get(key)
        if isinstance(nested, dict) and isinstance(nested.get("url"), str):
            return nested["url"]
    return ""
