"""WARC, read record by record with fastwarc; HTML responses (2xx) and resources are turned into main text by
`_html.main_text` (resiliparse's `extract_plain_text(tree, main_content=True)`, as for HTML files), after undoing
chunked transfer coding and gzip/deflate/br content coding. fastwarc and resiliparse are imported only when a
WARC file is read.

Pure module (no Django, no torch).
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from generation.corpus.readers._common import GZIP_ERRORS, Document, ReadError, ReadStats, fmt_bytes, open_binary
from generation.corpus.readers._html import main_text

_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _strip_angle(value: str | None) -> str:
    value = (value or "").strip()
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    return value


def read_warc(path: Path, *, name: str, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    # Python's gzip (not fastwarc's) so that a truncated .warc.gz raises EOFError instead of ending quietly.
    records = 0
    try:
        stream = open_binary(path)
    except OSError as exc:
        raise ReadError(path, None, f"cannot open: {exc}") from None
    with stream:
        iterator = ArchiveIterator(
            stream, record_types=WarcRecordType.response | WarcRecordType.resource, parse_http=True, auto_decode="none"
        )
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except GZIP_ERRORS as exc:
                raise ReadError(path, None, f"truncated or corrupt gzip after WARC record {records} ({exc})") from None
            except (OSError, ValueError) as exc:
                raise ReadError(path, None, f"unreadable WARC after record {records} ({exc})") from None
            records += 1
            try:
                doc = _warc_document(path, name, record, records, max_line_bytes, stats)
            except GZIP_ERRORS as exc:
                raise ReadError(path, None, f"truncated or corrupt gzip in WARC record {records} ({exc})") from None
            if doc is not None:
                yield doc
    if records == 0:
        raise ReadError(path, None, "no documents (no WARC response or resource records)")


def _warc_document(path: Path, name: str, record, number: int, max_bytes: int, stats: ReadStats) -> Document | None:
    from fastwarc.warc import WarcRecordType

    http = record.is_http
    headers = record.http_headers if http else None
    if http:
        content_type = (record.http_content_type or "").strip().lower()
    else:
        content_type = (record.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type not in _HTML_TYPES:
        stats.skipped_non_html += 1
        return None
    url = _strip_angle(record.headers.get("WARC-Target-URI"))
    status = headers.status_code if headers is not None else None
    if status is not None and not 200 <= status < 300:
        stats.skipped_http_status += 1
        return None
    expected = record.content_length
    if expected > max_bytes:
        stats.skipped_too_large += 1
        return None
    raw = record.reader.read()
    stats.bytes += len(raw)
    if len(raw) < expected:
        raise ReadError(
            path, None, f"truncated WARC record {number} ({url}): {fmt_bytes(expected)} declared, {len(raw)} present"
        )
    body = _decode_http_body(raw, headers, max_bytes, stats)
    if body is None:
        return None
    page = main_text(body, record.http_charset if http else None)
    text, charset = page.text, page.charset
    if not text:
        stats.skipped_empty += 1
        return None
    meta = {
        "warc_file": name,
        "warc_type": "response" if record.record_type == WarcRecordType.response else "resource",
        "warc_date": record.headers.get("WARC-Date"),
        "content_type": content_type,
        "charset": charset,
        "http_status": status,
    }
    if record.headers.get("WARC-Truncated"):
        meta["warc_truncated"] = record.headers.get("WARC-Truncated")
    source_id = _strip_angle(record.headers.get("WARC-Record-ID")) or f"{name}:record-{number}"
    return Document(text=text, source_id=source_id, url=url, meta=meta)


def _decode_http_body(raw: bytes, headers, max_bytes: int, stats: ReadStats) -> bytes | None:
    """Undo chunked transfer coding and gzip/deflate/br content coding; None (counted) when that fails."""
    if headers is None:
        return raw
    transfer = (headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in transfer and _looks_chunked(raw):
        from resiliparse.parse.http import iterate_http_chunks

        raw = b"".join(iterate_http_chunks(io.BytesIO(raw)))
    coding = (headers.get("Content-Encoding") or "").strip().lower()
    if coding in ("", "identity", "none", "utf-8", "utf8"):
        return raw
    body: bytes | None
    try:
        if coding in ("gzip", "x-gzip", "deflate"):
            # gzip or zlib-wrapped (wbits 47 detects either); raw deflate for "deflate" without a zlib header
            decoder = zlib.decompressobj(-15 if coding == "deflate" and raw[:1] != b"\x78" else 47)
            body = decoder.decompress(raw, max_bytes + 1)
        elif coding == "br":
            body = _brotli_decompress(raw, max_bytes)
        else:
            body = None
    except zlib.error:
        body = None
    if body is None:
        if _looks_like_html(raw):  # stored already decoded with the header kept
            return raw
        stats.skipped_undecodable += 1
        return None
    if len(body) > max_bytes:
        stats.skipped_too_large += 1
        return None
    return body


def _brotli_decompress(raw: bytes, max_bytes: int) -> bytes | None:
    """None when brotli is not installed or the data is broken; output capped near `max_bytes + 1`."""
    try:
        import brotli
    except ImportError:
        return None
    try:
        return brotli.Decompressor().process(raw, output_buffer_limit=max_bytes + 1)
    except TypeError:  # brotli < 1.2 has no output limit
        return brotli.decompress(raw)
    except brotli.error:
        return None


def _looks_chunked(raw: bytes) -> bool:
    head = raw[:20].split(b"\r\n", 1)[0].split(b";", 1)[0].strip()
    return bool(head) and len(head) <= 16 and all(c in b"0123456789abcdefABCDEF" for c in head)


def _looks_like_html(raw: bytes) -> bool:
    return raw[:1024].lstrip().startswith(b"<")
