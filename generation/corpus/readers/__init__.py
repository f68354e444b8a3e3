"""Streaming readers for web-text corpora: JSON lines (Dolma, C4, DCLM), plain text, Parquet, WARC and saved
HTML pages; `corpus_files(path)` lists the files of a directory to read, recursively.

`read_documents(path)` yields `Document`s one at a time; no reader loads a whole file. Memory is bounded by
the largest single record (`max_line_bytes`: one JSON line, one text file, one WARC HTML payload, one HTML
page), never by the file size:

- jsonl.py: JSON lines are read with bounded `readline` calls (`_common.LINE_CHUNK` at a time), so a 50 MB
  line is refused after reading at most `max_line_bytes + 2` bytes of it, and is never joined into one buffer.
- text.py: one document per plain-text file.
- parquet.py: Parquet is read record batch by record batch with pyarrow.
- warc.py: WARC is read record by record with fastwarc; HTML responses are turned into main text with
  resiliparse's `extract_plain_text(tree, main_content=True)` (`_html.main_text`).
- html.py: one document per `.html`/`.htm` file, its main text extracted by the same `_html.main_text`; a page
  without text is skipped and counted (`stats.skipped_empty`), not an error.
- _common.py: the data types, the `Reader` signature, opening (gzip by magic bytes) and bounded line reading.

Every failure is a `ReadError` (a `ValueError`) naming the file and, where there is one, the 1-based line:
invalid JSON, a missing or non-string text field, invalid UTF-8, a line over `max_line_bytes`, a truncated or
corrupt gzip stream, a file with no documents, a Parquet file without the text column, an unreadable or
truncated WARC, a binary or undecodable HTML file. Documents read before the error have already been yielded.

To add a kind of file: a module with a `Reader` (see `_common.Reader`), and one entry in `_KINDS` below with
the file-name suffixes that select it.

Pure package (no Django, no torch). pyarrow, fastwarc and resiliparse are imported only when a Parquet, WARC or
HTML file is read.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from generation.corpus.readers import html, jsonl, parquet, text, warc
from generation.corpus.readers._common import Document, Reader, ReadError, ReadStats, name_and_gzip

__all__ = ["Document", "ReadError", "ReadStats", "corpus_files", "detect_kind", "read_documents", "KINDS"]

DEFAULT_MAX_LINE_BYTES = 10_000_000
"""Largest single record, in (decompressed) bytes: one JSON line without its newline, one text file, one WARC
HTML payload (after HTTP content decoding)."""


@dataclass(frozen=True)
class Kind:
    """One kind of corpus file: its reader and the file-name suffixes that select it."""

    read: Reader
    suffixes: tuple[str, ...]
    gzip: bool = True
    """Also read when gzip-compressed and named `<suffix>.gz`."""
    may_be_empty: bool = False
    """A file that yields no document (an empty file included) is counted as skipped, not refused."""


_KINDS: dict[str, Kind] = {
    # `.json` only when the content is JSON lines (see `detect_kind`)
    "jsonl": Kind(jsonl.read_jsonl, (".jsonl", ".ndjson", ".json")),
    "text": Kind(text.read_text, (".txt", ".text")),
    "parquet": Kind(parquet.read_parquet, (".parquet", ".pq"), gzip=False),
    "warc": Kind(warc.read_warc, (".warc",)),
    "html": Kind(html.read_html, (".html", ".htm"), may_be_empty=True),
}

KINDS = tuple(_KINDS)

_SUFFIXES = {suffix: name for name, kind in _KINDS.items() for suffix in kind.suffixes}
_EXPECTED = ", ".join("/".join(k.suffixes) + (" (optionally .gz)" if k.gzip else "") for k in _KINDS.values())


def detect_kind(path: str | os.PathLike) -> str:
    """One of `KINDS` from the file name (`.jsonl[.gz]`, `.ndjson[.gz]`, `.json[.gz]`, `.txt[.gz]`,
    `.text[.gz]`, `.parquet`, `.pq`, `.warc[.gz]`, `.html[.gz]`, `.htm[.gz]`). A `.json` file counts as JSON
    lines only when its first non-blank line is a JSON object; a JSON array or a pretty-printed single document
    is a ReadError, as is an unknown suffix."""
    p = Path(path)
    kind = _kind_of_name(p)
    if kind is None:
        raise ReadError(p, None, f"unknown file type {p.name!r} (expected {_EXPECTED})")
    if kind == "jsonl" and name_and_gzip(p)[0].endswith(".json"):
        jsonl.check_json_lines(p)
    return kind


def read_documents(
    path: str | os.PathLike,
    *,
    text_field: str = "text",
    id_field: str = "id",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    stats: ReadStats | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> Iterator[Document]:
    """Yield the documents of one file, streaming. The kind comes from `detect_kind` unless given; `name` (the
    file name by default; `corpus_files` gives the path inside a directory) names documents that have no id
    of their own.

    The file type, existence and emptiness are checked now (a ReadError here); content errors are raised
    while iterating, after the documents before them have been yielded. Blank texts are skipped and counted
    in `stats.skipped_empty`; so is an HTML page without text, or an empty HTML file.
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
    stats = stats if stats is not None else ReadStats()
    spec = _KINDS[kind]
    if size == 0:
        if not spec.may_be_empty:
            raise ReadError(p, None, "empty file (no documents)")
        stats.files += 1
        stats.skipped_empty += 1
        return iter(())
    documents = spec.read(
        p, name=name or p.name, text_field=text_field, id_field=id_field, max_line_bytes=max_line_bytes, stats=stats
    )
    return _counted(documents, p, stats, required=not spec.may_be_empty)


def corpus_files(path: str | os.PathLike, *, stats: ReadStats | None = None) -> list[tuple[Path, str]]:
    """(file, name) for each file to read: a file itself with its name; for a directory, every file of a corpus
    kind under it (recursively, hidden files and folders left out, symlinked folders not followed), sorted by
    their path inside it, which is their name (`sub/page.html`). Other files are counted in
    `stats.skipped_other_files`. A directory without a corpus file is a ReadError."""
    p = Path(path)
    if not p.is_dir():
        return [(p, p.name)]
    found: list[tuple[tuple[str, ...], Path]] = []
    others = 0
    for folder, dirs, files in os.walk(p, onerror=_raise_walk_error):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for file in files:
            if file.startswith("."):
                continue
            full = Path(folder, file)
            if _kind_of_name(full) is None:
                others += 1
            else:
                found.append((full.relative_to(p).parts, full))
    if stats is not None:
        stats.skipped_other_files += others
    if not found:
        raise ReadError(p, None, f"no corpus files in this directory ({others} other files; expected {_EXPECTED})")
    return [(full, "/".join(parts)) for parts, full in sorted(found)]


def _raise_walk_error(exc: OSError) -> None:
    raise ReadError(exc.filename or "?", None, f"cannot list the directory: {exc.strerror or exc}")


def _kind_of_name(path: Path) -> str | None:
    name, gz = name_and_gzip(path)
    kind = _SUFFIXES.get(os.path.splitext(name)[1])
    return None if kind is None or (gz and not _KINDS[kind].gzip) else kind


def _counted(documents: Generator[Document], path: Path, stats: ReadStats, *, required: bool) -> Iterator[Document]:
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
    if not produced and required:
        after = stats.as_dict()
        skipped = [
            f"{after[key] - before[key]} {key.removeprefix('skipped_')}"
            for key in after
            if key.startswith("skipped_") and after[key] > before[key]
        ]
        raise ReadError(path, None, "no documents" + (f" (skipped: {', '.join(skipped)})" if skipped else ""))
