"""Tables: CSV (`csv`) and TSV (`tsv`) text with a header row, Parquet files (`parquet`) and Hugging Face `datasets`
directories saved with `save_to_disk` (`hf_dataset`). pyarrow and datasets are imported only when such a file is
read. Pure: no Django.

Each row becomes a pair through a column mapping (target → column): `instruction` and `response` (required),
`input` (optional, appended to the instruction after a blank line, as Alpaca's input is), `source` and `tags`
(optional; tags a list or comma-separated text). Targets not mapped are looked up by common names, case
insensitively, the first present winning: instruction, prompt, question | response, output, answer,
completion | input, context | source | tags. A source value that is not seed/web/safety becomes a tag, unless
the source column was mapped explicitly. A table without instruction and response columns but with a
`messages` or `conversations` column (the chat datasets on the Hub, and our own Parquet/datasets exports) is
read row by row as those formats are, turns option included.

Positions in problems: CSV rows are counted as a spreadsheet counts them (the header is row 1); Parquet and
datasets rows by their 0-based index.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from generation.pipeline.formats.base import (
    CSV_ROW,
    MAX_LINE_BYTES,
    MAX_TAG_CHARS,
    ROW_INDEX,
    SOURCES,
    Options,
    Problems,
    Record,
    Unit,
    json_type,
    row,
)
from generation.pipeline.formats.conversations import conversation_rows, family_of
from generation.pipeline.formats.messages import message_rows

TARGETS: tuple[str, ...] = ("instruction", "response", "input", "source", "tags")
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "prompt", "question"),
    "response": ("response", "output", "answer", "completion"),
    "input": ("input", "context"),
    "source": ("source",),
    "tags": ("tags",),
}
_BATCH_ROWS = 1024


class Columns:
    """How the rows of one table become pairs: a mapping of targets to columns, or a conversation column."""

    def __init__(self, names: list[str], mapping: Mapping[str, str], problems: Problems) -> None:
        self.mapped: dict[str, str] = {}
        self.conversation = ""
        self.explicit_source = "source" in mapping
        for target, column in mapping.items():
            if column not in names:
                problems.append((0, f"no column {column!r} for {target} (columns: {_listing(names)})"))
            else:
                self.mapped[target] = column
        lowered = {name.strip().lower(): name for name in reversed(names)}
        for target, candidates in DEFAULT_COLUMNS.items():
            if target not in mapping:
                found = next((lowered[c] for c in candidates if c in lowered), None)
                if found is not None:
                    self.mapped[target] = found
        missing = [t for t in ("instruction", "response") if t not in self.mapped and t not in mapping]
        if missing and not mapping:
            self.conversation = next((c for c in ("messages", "conversations") if c in names), "")
        if missing and not self.conversation:
            expected = "; ".join(f"{t}: {', '.join(DEFAULT_COLUMNS[t])}" for t in missing)
            problems.append(
                (
                    0,
                    f"no {' or '.join(missing)} column (looked for {expected}; or a messages/conversations column): "
                    f"map one, e.g. {missing[0]}=COLUMN (columns: {_listing(names)})",
                )
            )

    def needed(self, names: list[str]) -> list[str]:
        """The columns to read, in the table's order."""
        wanted = {self.conversation, "source", "tags"} if self.conversation else set(self.mapped.values())
        return [name for name in names if name in wanted]

    def rows(
        self, record: dict[str, Any], position: int, fmt: str, options: Options, problems: Problems, unit: Unit
    ) -> list[dict[str, Any]]:
        if self.conversation == "messages":
            return message_rows(record, position, fmt, options, problems, unit)
        if self.conversation:
            kind = family_of(record.get("conversations"))
            return conversation_rows(record, position, fmt, options, problems, unit, kind)
        return self._pair(record, position, fmt, options, problems, unit)

    def _pair(
        self, record: dict[str, Any], position: int, fmt: str, options: Options, problems: Problems, unit: Unit
    ) -> list[dict[str, Any]]:
        m = self.mapped
        rec = Record(record, position, problems, "column ")
        instruction = rec.text(m["instruction"])
        extra = rec.text(m["input"], required=False, allow_null=True) if "input" in m else ""
        response = rec.text(m["response"])
        source, tags = options.default_source, []
        raw_source = record.get(m["source"]) if "source" in m else None
        if isinstance(raw_source, str) and raw_source.strip():
            if raw_source.strip() in SOURCES:
                source = raw_source.strip()
            elif self.explicit_source:
                rec.problem(
                    f"{m['source']!r} holds unknown source {raw_source!r} (expected one of {', '.join(SOURCES)})"
                )
            else:
                tags.append(raw_source.strip()[:MAX_TAG_CHARS])
        elif raw_source not in (None, ""):
            rec.problem(f"{m['source']!r} must be text, got {json_type(raw_source)}")
        tags = list(
            dict.fromkeys([*_tags(rec, record.get(m["tags"]) if "tags" in m else None, m.get("tags", "")), *tags])
        )
        if not rec.ok:
            return []
        if extra:
            instruction = f"{instruction}\n\n{extra}"
        return [row(instruction, response, source, tags, fmt, position, unit=unit)]


def _tags(rec: Record, value: Any, column: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        rec.problem(f"{column!r} must be a list or comma-separated text, got {json_type(value)}")
        return []
    if not all(isinstance(t, str) for t in items):
        rec.problem(f"{column!r} must hold text tags")
        return []
    tags = [t.strip() for t in items if t.strip()]
    if any(len(t) > MAX_TAG_CHARS for t in tags):
        rec.problem(f"{column!r} has a tag longer than {MAX_TAG_CHARS} characters")
    return tags


def _listing(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def _table_rows(
    names: list[str],
    records: Callable[[list[str]], Iterator[tuple[int, dict[str, Any]]]],
    fmt: str,
    options: Options,
    problems: Problems,
    unit: Unit,
) -> list[dict[str, Any]]:
    """The rows of a table with these column `names`; `records(columns)` yields (position, record) with the
    columns it is given."""
    columns = Columns(names, options.mapping, problems)
    if problems:
        return []
    return [
        r
        for position, record in records(columns.needed(names))
        for r in columns.rows(record, position, fmt, options, problems, unit)
    ]


# --- CSV / TSV -------------------------------------------------------------------------------------------------


def parse_csv(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """csv and tsv text (decoded, BOM removed); positions are spreadsheet rows (`CSV_ROW`)."""
    if not text.strip():
        return []  # no records
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    previous = csv.field_size_limit(MAX_LINE_BYTES)
    try:
        try:
            header = [name.strip() for name in next(reader, [])]
        except csv.Error as exc:
            problems.append((1, f"invalid CSV ({exc})"))
            return []
        if not any(header):
            problems.append((0, "no header row (the first row names the columns)"))
            return []
        duplicates = sorted({n for n in header if header.count(n) > 1})
        if duplicates:
            problems.append((0, f"duplicate column names in the header: {_listing(duplicates)}"))
            return []
        return _table_rows(header, lambda _: _csv_records(reader, header, problems), fmt, options, problems, CSV_ROW)
    finally:
        csv.field_size_limit(previous)


def _csv_records(reader: Any, header: list[str], problems: Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    position = 1
    while True:
        position += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append((position, f"invalid CSV ({exc})"))
            return
        if not cells or not any(c.strip() for c in cells):
            continue  # a blank row
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            problems.append((position, f"{len(cells)} cells, but the header names {len(header)} columns"))
            continue
        yield position, dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False))


# --- Parquet and datasets directories --------------------------------------------------------------------------


def parse_parquet(data: bytes | Path, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """A Parquet file (its bytes or its path), read batch by batch; positions are 1 + the row index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(pa.BufferReader(data) if isinstance(data, bytes) else data)
    except (pa.ArrowException, OSError) as exc:
        problems.append((0, f"not a readable Parquet file ({exc})"))
        return []
    with pfile:
        names = list(pfile.schema_arrow.names)

        def records(needed: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
            position = 0
            try:
                for batch in pfile.iter_batches(batch_size=_BATCH_ROWS, columns=needed):
                    for record in batch.to_pylist():
                        position += 1
                        yield position, record
            except (pa.ArrowException, OSError) as exc:
                problems.append((position + 1, f"unreadable Parquet data ({exc})"))

        return _table_rows(names, records, fmt, options, problems, ROW_INDEX)


def is_dataset_dir(path: Path) -> bool:
    """A directory `datasets.save_to_disk` wrote: a Dataset (state.json) or a DatasetDict (dataset_dict.json)."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def parse_dataset_dir(path: Path, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """A `datasets` directory (`datasets.load_from_disk`, local files only); a DatasetDict must hold one split
    (else its split folder is named). Positions are 1 + the row index."""
    import datasets

    if not is_dataset_dir(path):
        problems.append((0, "not a datasets directory (no state.json or dataset_dict.json: save it with save_to_disk)"))
        return []
    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError) as exc:
        problems.append((0, f"not a readable datasets directory ({type(exc).__name__}: {exc})"))
        return []
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            splits = ", ".join(loaded)
            problems.append((0, f"a DatasetDict with the splits {splits}: import one split's folder ({path}/SPLIT)"))
            return []
        loaded = next(iter(loaded.values()))
    names = list(loaded.column_names)

    def records(needed: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, record in enumerate(loaded.select_columns(needed)):
            yield index + 1, record

    return _table_rows(names, records, fmt, options, problems, ROW_INDEX)
