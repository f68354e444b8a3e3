"""Streaming readers for web-text corpora: JSON lines (Dolma, C4, DCLM), plain text, Parquet and WARC.

`read_documents(path)` yields `Document`s one at a time; no reader loads a whole file. Memory is bounded by
the largest single record (`max_line_bytes`: one JSON line, one text file, one WARC HTML payload), never by
the file size:

- JSON lines are read with bounded `readline` calls (`_LINE_CHUNK` at a time), so a 50 MB line is refused
  after reading at most `max_line_bytes + 2` bytes of it, and is never joined into one buffer.
- Parquet is read record batch by record batch (`_PARQUET_BATCH_ROWS` rows) with pyarrow.
- WARC is read record by record with fastwarc; HTML responses are turned into main text with resiliparse's
  `extract_plain_text(html, main_content=True)`.

Every failure is a `ReadError` (a `ValueError`) naming the file and, where there is one, the 1-based line:
invalid JSON, a missing or non-string text field, invalid UTF-8, a line over `max_line_bytes`, a truncated or
corrupt gzip stream, a file with no documents, a Parquet file without the text column, an unreadable or
truncated WARC. Documents read before the error have already been yielded.

Pure module (no Django, no torch). pyarrow, fastwarc and resiliparse are imported only when a Parquet or WARC
file is read.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import zlib
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["Document", "ReadError", "ReadStats", "detect_kind", "read_documents", "KINDS"]

KINDS = ("jsonl", "text", "parquet", "warc")

DEFAULT_MAX_LINE_BYTES = 10_000_000
"""Largest single record, in (decompressed) bytes: one JSON line without its newline, one text file, one WARC
HTML payload (after HTTP content decoding)."""

_LINE_CHUNK = 1 << 20
"""A line is read at most this many bytes per `readline` call; short lines come back in one call."""

_FILE_BUFFER = 1 << 20
_PARQUET_BATCH_ROWS = 256
_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 100
_GZIP_MAGIC = b"\x1f\x8b"
_HTML_TYPES = ("text/html", "application/xhtml+xml")

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # only when the content is JSON lines (see `detect_kind`)
    ".txt": "text",
    ".text": "text",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".warc": "warc",
}
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


# ------------------------------------------------------------------------------------------------ data types


@dataclass
class Document:
    text: str
    source_id: str
    url: str
    meta: dict = field(default_factory=dict)


class ReadError(ValueError):
    """A file that cannot be read as a corpus: `path`, 1-based `line` (or None) and a human `reason`."""

    def __init__(self, path: str | os.PathLike, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}, line {self.line}: {self.reason}"

    def __reduce__(self):
        return (type(self), (self.path, self.line, self.reason))


@dataclass
class ReadStats:
    """Counters a caller may pass to `read_documents` (and reuse across files); updated while reading.

    `bytes` counts the decompressed input consumed: JSON lines with their newlines, a text file, WARC record
    payloads (HTTP body as stored), the UTF-8 size of Parquet texts.
    """

    files: int = 0
    documents: int = 0
    bytes: int = 0
    skipped_empty: int = 0  # blank text field / empty main-text extraction
    skipped_non_html: int = 0  # WARC response/resource records that are not HTML
    skipped_http_status: int = 0  # WARC HTML responses with a non-2xx status (redirects, errors)
    skipped_too_large: int = 0  # WARC payloads over max_line_bytes
    skipped_undecodable: int = 0  # WARC payloads in an unknown or broken Content-Encoding

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ detection


def _name_and_gzip(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return name[:-3], True
    return name, False


def detect_kind(path: str | os.PathLike) -> str:
    """One of `KINDS` from the file name (`.jsonl[.gz]`, `.ndjson[.gz]`, `.json[.gz]`, `.txt[.gz]`, `.parquet`,
    `.warc[.gz]`). A `.json` file counts as JSON lines only when its first non-blank line is a JSON object;
    a JSON array or a pretty-printed single document is a ReadError, as is an unknown suffix."""
    p = Path(path)
    name, gz = _name_and_gzip(p)
    suffix = os.path.splitext(name)[1]
    kind = _SUFFIXES.get(suffix)
    if kind is None or (kind == "parquet" and gz):
        expected = ".jsonl/.ndjson/.json/.txt (optionally .gz), .parquet, .warc/.warc.gz"
        raise ReadError(p, None, f"unknown file type {p.name!r} (expected {expected})")
    if suffix == ".json":
        _check_json_lines(p)
    return kind


def _check_json_lines(path: Path) -> None:
    """Refuse a `.json` file that is not JSON lines, from its first non-blank line (read in bounded pieces).
    Unreadable content is left to the reader, which reports it with a line number."""
    try:
        with _open_binary(path) as stream:
            for _ in range(_SNIFF_LINES):
                line = stream.readline(_SNIFF_BYTES)
                if not line:
                    return
                first = line.strip().removeprefix(b"\xef\xbb\xbf")
                if first:
                    break
            else:
                return
    except (OSError, *_GZIP_ERRORS):
        return
    complete = line.endswith(b"\n") or len(line) < _SNIFF_BYTES
    if first.startswith(b"["):
        raise ReadError(path, None, "a JSON array, not JSON lines (one object per line); convert it to .jsonl")
    if first.startswith(b"{") and complete and not first.endswith(b"}"):
        raise ReadError(path, None, "a single (pretty-printed) JSON document, not JSON lines; convert it to .jsonl")
    # anything else is left to the reader ("invalid JSON on line N")


# ------------------------------------------------------------------------------------------------ entry point


def read_documents(
    path: str | os.PathLike,
    *,
    text_field: str = "text",
    id_field: str = "id",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    stats: ReadStats | None = None,
    kind: str | None = None,
) -> Iterator[Document]:
    """Yield the documents of one file, streaming. The kind comes from `detect_kind` unless given.

    The file type, existence and emptiness are checked now (a ReadError here); content errors are raised
    while iterating, after the documents before them have been yielded. Blank texts are skipped and counted
    in `stats.skipped_empty`.
    """
    p = Path(path)
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    if kind is None:
        kind = detect_kind(p)
    elif kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ReadError(p, None, f"cannot open: {exc.strerror or exc}") from exc
    if not p.is_file():
        raise ReadError(p, None, "not a regular file")
    if size == 0:
        raise ReadError(p, None, "empty file (no documents)")
    stats = stats if stats is not None else ReadStats()
    readers = {"jsonl": _read_jsonl, "text": _read_text, "parquet": _read_parquet, "warc": _read_warc}
    return _counted(
        readers[kind](p, text_field=text_field, id_field=id_field, max_line_bytes=max_line_bytes, stats=stats),
        p,
        stats,
    )


def _counted(documents: Generator[Document], path: Path, stats: ReadStats) -> Iterator[Document]:
    stats.files += 1
    before = stats.as_dict()
    produced = 0
    try:
        for doc in documents:
            produced += 1
            stats.documents += 1
            yield doc
    finally:
        documents.close()  # a caller that stops early closes the file now, not at garbage collection
    if not produced:
        after = stats.as_dict()
        skipped = [
            f"{after[key] - before[key]} {key.removeprefix('skipped_')}"
            for key in after
            if key.startswith("skipped_") and after[key] > before[key]
        ]
        raise ReadError(path, None, "no documents" + (f" (skipped: {', '.join(skipped)})" if skipped else ""))


# ------------------------------------------------------------------------------------------------ helpers


def _open_binary(path: Path) -> BinaryIO | gzip.GzipFile:
    """A buffered binary stream of the decompressed content; gzip is recognised by its magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    if _name_and_gzip(path)[1]:
        raise ReadError(path, None, "named .gz but not gzip-compressed")
    return open(path, "rb", buffering=_FILE_BUFFER)  # noqa: SIM115 - the caller closes it


class _LineTooLong(Exception):
    pass


def _read_line(stream: BinaryIO | gzip.GzipFile, max_bytes: int) -> bytes:
    """The next line with its newline (b"" at the end of the stream), reading at most `_LINE_CHUNK` bytes per
    call and at most `max_bytes + 2` bytes in all; `_LineTooLong` when the line without its newline is longer
    than `max_bytes`. A refused line is never joined into one buffer."""
    want = min(_LINE_CHUNK, max_bytes + 2)
    piece = stream.readline(want)
    if piece.endswith(b"\n") or len(piece) < want:
        # the whole line (or the end of the stream) in one call: the common case
        if len(piece) - piece.endswith(b"\n") > max_bytes:
            raise _LineTooLong
        return piece
    pieces = [piece]
    total = len(piece)
    while True:
        if total > max_bytes:
            raise _LineTooLong
        piece = stream.readline(min(_LINE_CHUNK, max_bytes + 2 - total))
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
        if piece.endswith(b"\n"):
            break
    if total - pieces[-1].endswith(b"\n") > max_bytes:
        raise _LineTooLong
    return b"".join(pieces)


def _utf8_error(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (binary data?): byte {exc.object[exc.start : exc.start + 1]!r} at offset {exc.start}"


def _fmt_bytes(n: int) -> str:
    return f"{n:,} bytes"


# ------------------------------------------------------------------------------------------------ JSON lines


def _read_jsonl(path: Path, *, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    line_no = 0
    with _open_binary(path) as stream:
        while True:
            try:
                raw = _read_line(stream, max_line_bytes)
            except _LineTooLong:
                raise ReadError(
                    path, line_no + 1, f"line longer than max_line_bytes ({_fmt_bytes(max_line_bytes)}); refused"
                ) from None
            except _GZIP_ERRORS as exc:
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
                raise ReadError(path, line_no, _utf8_error(exc)) from None
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
            doc = _json_document(path, line_no, record, text_field, id_field)
            if not doc.text.strip():
                stats.skipped_empty += 1
                continue
            yield doc


def _json_document(path: Path, line_no: int, record: Any, text_field: str, id_field: str) -> Document:
    if not isinstance(record, dict):
        raise ReadError(path, line_no, f"expected a JSON object, got {type(record).__name__}")
    if text_field not in record:
        keys = ", ".join(list(record)[:10])
        raise ReadError(path, line_no, f"missing {text_field!r} field (keys: {keys or 'none'})")
    text = record[text_field]
    if not isinstance(text, str):
        raise ReadError(path, line_no, f"field {text_field!r} is not a string (got {type(text).__name__})")
    doc_id = record.get(id_field)
    source_id = str(doc_id) if isinstance(doc_id, str | int) and doc_id != "" else f"{path.name}:{line_no}"
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


# ------------------------------------------------------------------------------------------------ plain text


def _read_text(path: Path, *, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    """One document per file (passages are split later); the file may be at most `max_line_bytes`."""
    chunks: list[bytes] = []
    total = 0
    with _open_binary(path) as stream:
        while True:
            try:
                chunk = stream.read(min(_LINE_CHUNK, max_line_bytes + 1 - total))
            except _GZIP_ERRORS as exc:
                lines = sum(c.count(b"\n") for c in chunks)
                raise ReadError(path, None, f"truncated or corrupt gzip after line {lines} ({exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_line_bytes:
                raise ReadError(
                    path, None, f"text file larger than max_line_bytes ({_fmt_bytes(max_line_bytes)}); split it"
                )
    data = b"".join(chunks)
    del chunks
    stats.bytes += len(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(path, data.count(b"\n", 0, exc.start) + 1, _utf8_error(exc)) from None
    text = text.strip()
    if not text:
        stats.skipped_empty += 1
        return
    yield Document(text=text, source_id=path.name, url="", meta={"path": str(path)})


# ------------------------------------------------------------------------------------------------ Parquet


def _read_parquet(path: Path, *, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ReadError(path, None, f"not a readable Parquet file ({exc})") from None
    with pfile:
        names = pfile.schema_arrow.names
        if text_field not in names:
            raise ReadError(path, None, f"no {text_field!r} column (columns: {', '.join(names) or 'none'})")
        row = 0
        try:
            for batch in pfile.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
                for record in batch.to_pylist():
                    row += 1
                    text = record.get(text_field)
                    if not isinstance(text, str):
                        raise ReadError(
                            path, None, f"row {row}: {text_field!r} is not a string (got {type(text).__name__})"
                        )
                    stats.bytes += len(text.encode("utf-8"))
                    if not text.strip():
                        stats.skipped_empty += 1
                        continue
                    doc_id = record.get(id_field)
                    source_id = str(doc_id) if doc_id not in (None, "") else f"{path.name}:{row}"
                    url = record.get("url")
                    meta = {k: v for k, v in record.items() if k not in (text_field, id_field, "url")}
                    yield Document(text=text, source_id=source_id, url=url if isinstance(url, str) else "", meta=meta)
        except (pa.ArrowException, OSError) as exc:
            raise ReadError(path, None, f"unreadable Parquet data after row {row} ({exc})") from None


# ------------------------------------------------------------------------------------------------ WARC


def _strip_angle(value: str | None) -> str:
    value = (value or "").strip()
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    return value


def _read_warc(path: Path, *, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text

    # Python's gzip (not fastwarc's) so that a truncated .warc.gz raises EOFError instead of ending quietly.
    records = 0
    try:
        stream = _open_binary(path)
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
            except _GZIP_ERRORS as exc:
                raise ReadError(path, None, f"truncated or corrupt gzip after WARC record {records} ({exc})") from None
            except (OSError, ValueError) as exc:
                raise ReadError(path, None, f"unreadable WARC after record {records} ({exc})") from None
            records += 1
            try:
                doc = _warc_document(path, record, records, max_line_bytes, stats, extract_plain_text)
            except _GZIP_ERRORS as exc:
                raise ReadError(path, None, f"truncated or corrupt gzip in WARC record {records} ({exc})") from None
            if doc is not None:
                yield doc
    if records == 0:
        raise ReadError(path, None, "no documents (no WARC response or resource records)")


def _warc_document(path: Path, record, number: int, max_bytes: int, stats: ReadStats, extract) -> Document | None:
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
            path, None, f"truncated WARC record {number} ({url}): {_fmt_bytes(expected)} declared, {len(raw)} present"
        )
    body = _decode_http_body(raw, headers, max_bytes, stats)
    if body is None:
        return None
    charset = _charset(record.http_charset if http else None, body)
    html = _bytes_to_str(body, charset)
    text = extract(html, main_content=True).strip()
    if not text:
        stats.skipped_empty += 1
        return None
    meta = {
        "warc_file": path.name,
        "warc_type": "response" if record.record_type == WarcRecordType.response else "resource",
        "warc_date": record.headers.get("WARC-Date"),
        "content_type": content_type,
        "charset": charset,
        "http_status": status,
    }
    if record.headers.get("WARC-Truncated"):
        meta["warc_truncated"] = record.headers.get("WARC-Truncated")
    source_id = _strip_angle(record.headers.get("WARC-Record-ID")) or f"{path.name}:record-{number}"
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


def _charset(declared: str | None, body: bytes) -> str:
    from resiliparse.parse.encoding import detect_encoding

    for candidate in (declared, detect_encoding(body, from_html_meta=True)):
        if candidate:
            try:
                return codecs.lookup(candidate).name
            except LookupError:
                continue
    return "utf-8"


def _bytes_to_str(body: bytes, charset: str) -> str:
    from resiliparse.parse.encoding import bytes_to_str

    return bytes_to_str(body, charset)
