"""Saved HTML pages (`.html`/`.htm`, optionally gzipped): one document per file, its main text extracted as the
WARC reader does (`_html.main_text`). The source is the file's name (or its path inside an imported directory),
the URL the page's canonical link, `og:url` or "saved from url" comment when it has one.

A page without main text (an empty file, a frameset, only navigation) is skipped and counted in
`stats.skipped_empty`, and a page over `max_line_bytes` in `stats.skipped_too_large`: neither is an error. A
file that is not text (NUL bytes, control characters) or not decodable in its charset, UTF-8 or cp1252 is a
`ReadError` naming the file.

Pure module (no Django, no torch).
"""

from __future__ import annotations

import codecs
from pathlib import Path

from generation.corpus.readers._common import GZIP_ERRORS, LINE_CHUNK, Document, ReadError, ReadStats, open_binary
from generation.corpus.readers._html import main_text, page_title, page_url

_PROBE_BYTES = 1 << 16
_CONTROL = frozenset(range(32)) - {9, 10, 12, 13}  # C0 controls but tab, newline, form feed, carriage return
_MAX_CONTROL_SHARE = 0.05
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32 byte-order marks: NUL bytes are part of such text


def read_html(path: Path, *, name: str, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    body = _read_bounded(path, max_line_bytes)
    if body is None:
        stats.skipped_too_large += 1
        return
    stats.bytes += len(body)
    if not body.strip():
        stats.skipped_empty += 1
        return
    _refuse_binary(path, body)
    try:
        page = main_text(body, strict=True)
    except UnicodeDecodeError as exc:
        tried = " or ".join(dict.fromkeys([codecs.lookup(exc.encoding).name, "utf-8", "cp1252"]))
        reason = f"undecodable: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not {tried} text"
        raise ReadError(path, None, reason) from None
    if not page.text:
        stats.skipped_empty += 1
        return
    meta = {"path": name, "charset": page.charset, "title": page_title(page)}
    yield Document(text=page.text, source_id=name, url=page_url(page), meta=meta)


def _read_bounded(path: Path, max_bytes: int) -> bytes | None:
    """The decompressed file, or None when it is longer than `max_bytes` (read no further than that)."""
    chunks: list[bytes] = []
    total = 0
    try:
        with open_binary(path) as stream:
            while total <= max_bytes:
                chunk = stream.read(min(LINE_CHUNK, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except GZIP_ERRORS as exc:
        raise ReadError(path, None, f"truncated or corrupt gzip after {total:,} bytes ({exc})") from None
    except OSError as exc:
        raise ReadError(path, None, f"cannot read: {exc.strerror or exc}") from None
    return None if total > max_bytes else b"".join(chunks)


def _refuse_binary(path: Path, body: bytes) -> None:
    """A ReadError for content that is no text in any charset: a NUL byte, or C0 control characters over 5%,
    in the first 64 KiB (unless a UTF-16/32 byte-order mark starts it)."""
    probe = body[:_PROBE_BYTES]
    if probe.startswith(_WIDE_BOMS):
        return
    controls = [i for i, byte in enumerate(probe) if byte in _CONTROL]
    nul = probe.find(b"\x00")
    if nul >= 0 or len(controls) > _MAX_CONTROL_SHARE * len(probe):
        first = nul if nul >= 0 else controls[0]
        raise ReadError(path, None, f"binary data, not an HTML page (byte 0x{probe[first]:02x} at offset {first})")
