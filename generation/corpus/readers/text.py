"""Plain text: one document per file (passages are split later); the file may be at most `max_line_bytes`.

Pure module (no Django, no torch).
"""

from __future__ import annotations

from pathlib import Path

from generation.corpus.readers._common import (
    GZIP_ERRORS,
    LINE_CHUNK,
    Document,
    ReadError,
    ReadStats,
    fmt_bytes,
    open_binary,
    utf8_error,
)


def read_text(path: Path, *, name: str, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    """One document per file (passages are split later); the file may be at most `max_line_bytes`."""
    chunks: list[bytes] = []
    total = 0
    with open_binary(path) as stream:
        while True:
            try:
                chunk = stream.read(min(LINE_CHUNK, max_line_bytes + 1 - total))
            except GZIP_ERRORS as exc:
                lines = sum(c.count(b"\n") for c in chunks)
                raise ReadError(path, None, f"truncated or corrupt gzip after line {lines} ({exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_line_bytes:
                raise ReadError(
                    path, None, f"text file larger than max_line_bytes ({fmt_bytes(max_line_bytes)}); split it"
                )
    data = b"".join(chunks)
    del chunks
    stats.bytes += len(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(path, data.count(b"\n", 0, exc.start) + 1, utf8_error(exc)) from None
    text = text.strip()
    if not text:
        stats.skipped_empty += 1
        return
    yield Document(text=text, source_id=name, url="", meta={"path": str(path)})
