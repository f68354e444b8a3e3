"""What every corpus reader shares: the data types (`Document`, `ReadError`, `ReadStats`), the `Reader`
signature, opening a file (gzip recognised by its magic bytes) and bounded line reading.

Pure module (no Django, no torch).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

LINE_CHUNK = 1 << 20
"""A line is read at most this many bytes per `readline` call; short lines come back in one call."""

FILE_BUFFER = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


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
    skipped_empty: int = 0  # blank text field / empty main-text extraction (an HTML page without text)
    skipped_non_html: int = 0  # WARC response/resource records that are not HTML
    skipped_http_status: int = 0  # WARC HTML responses with a non-2xx status (redirects, errors)
    skipped_too_large: int = 0  # WARC payloads and HTML files over max_line_bytes
    skipped_undecodable: int = 0  # WARC payloads in an unknown or broken Content-Encoding
    skipped_other_files: int = 0  # files in an imported directory that are of no corpus kind (images, CSS, …)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Reader(Protocol):
    """One kind's reader: a generator of the file's documents (blank texts skipped and counted in
    `stats.skipped_empty`); every failure a `ReadError`. `name` is what documents without an id of their own
    are named after (the file name, or its path inside the directory being imported). `read_documents` checks
    the path exists, is a regular file and is not empty before calling it, and counts files and documents."""

    def __call__(
        self, path: Path, *, name: str, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats
    ) -> Generator[Document]: ...


# ------------------------------------------------------------------------------------------------ helpers


def name_and_gzip(path: Path) -> tuple[str, bool]:
    """The lower-cased file name without a trailing `.gz`, and whether it had one."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return name[:-3], True
    return name, False


def open_binary(path: Path) -> BinaryIO | gzip.GzipFile:
    """A buffered binary stream of the decompressed content; gzip is recognised by its magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")
    if name_and_gzip(path)[1]:
        raise ReadError(path, None, "named .gz but not gzip-compressed")
    return open(path, "rb", buffering=FILE_BUFFER)  # noqa: SIM115 - the caller closes it


class LineTooLong(Exception):
    pass


def read_line(stream: BinaryIO | gzip.GzipFile, max_bytes: int) -> bytes:
    """The next line with its newline (b"" at the end of the stream), reading at most `LINE_CHUNK` bytes per
    call and at most `max_bytes + 2` bytes in all; `LineTooLong` when the line without its newline is longer
    than `max_bytes`. A refused line is never joined into one buffer."""
    want = min(LINE_CHUNK, max_bytes + 2)
    piece = stream.readline(want)
    if piece.endswith(b"\n") or len(piece) < want:
        # the whole line (or the end of the stream) in one call: the common case
        if len(piece) - piece.endswith(b"\n") > max_bytes:
            raise LineTooLong
        return piece
    pieces = [piece]
    total = len(piece)
    while True:
        if total > max_bytes:
            raise LineTooLong
        piece = stream.readline(min(LINE_CHUNK, max_bytes + 2 - total))
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
        if piece.endswith(b"\n"):
            break
    if total - pieces[-1].endswith(b"\n") > max_bytes:
        raise LineTooLong
    return b"".join(pieces)


def utf8_error(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (binary data?): byte {exc.object[exc.start : exc.start + 1]!r} at offset {exc.start}"


def fmt_bytes(n: int) -> str:
    return f"{n:,} bytes"
