"""Seed-set files in the formats of Alpaca, TRL (conversational "messages"), OpenAssistant, LIMA, ShareGPT and
tables (CSV, TSV, Parquet, Hugging Face `datasets` directories). Pure: no Django.

Import: `parse_path` (a file or a `datasets` directory) and `parse_bytes` (an upload) pick the format from the
file name and its first record (`detect_format`), validate the whole file and return (format, rows) for
`services.seed_examples_create` — or raise one `FormatError` listing every problem with its line (row, row
index). `parse` does the same for text already decoded. Export: `export_rows` streams the serialized file one
chunk at a time.

Formats (one module per family):
- alpaca.py: alpaca_json / alpaca_jsonl: {"instruction", "input"?, "output", "source"?, "tags"?} (a JSON array /
  one per line); pairs_jsonl (import only): the same with "response" for "output"
- messages.py: messages_jsonl: {"messages": [{"role", "content"}, …], "source"?, "tags"?} — TRL's conversational
  format; the first user → assistant turn pair is the example (every one with turns="all"), system messages
  are ignored
- oasst.py: oasst_jsonl (import only): OpenAssistant exports, flat messages ({"message_id", "parent_id", "role",
  "text", "rank", "deleted", …}) or message trees ({"message_tree_id", "prompt": {…, "replies": […]}}); each
  tree gives its first turn: the root prompter message and its best (rank 0, else first) non-deleted reply
- conversations.py: lima_json(l) {"conversations": ["user", "assistant", …]} and sharegpt_json(l)
  {"conversations": [{"from", "value"}, …]} (import only), first turn or every turn
- tabular.py: csv, tsv, parquet, hf_dataset (import only): a row per pair through a column mapping (instruction,
  response, input, source, tags; common names by default), or a messages/conversations column
- base.py: `FormatError`, `Options`, `SOURCES`, the limits, `Record` (one record's validation) and the row shape
- json_io.py: the objects of a JSON-lines or JSON-array file with their lines, and writing JSON out

To add a format: a module with a `Parser` and/or a record builder for export, one entry in `_PARSERS` and/or
`_EXPORTERS` below, and a rule in `detect_format` if it can be told from the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any

from generation.pipeline.formats import alpaca, conversations, messages, oasst, tabular
from generation.pipeline.formats.base import CSV_ROW, LINE, ROW_INDEX, SOURCES, TURNS, FormatError, Options, Problems
from generation.pipeline.formats.json_io import write_json_array, write_json_lines
from generation.pipeline.training import SYSTEM_PROMPTS

__all__ = [
    "FORMATS_IN",
    "FORMATS_OUT",
    "FORMATS_TEXT",
    "FORMATS_UPLOAD",
    "MAP_TARGETS",
    "SOURCES",
    "TURNS",
    "FormatError",
    "detect_format",
    "export_rows",
    "parse",
    "parse_bytes",
    "parse_mapping",
    "parse_path",
]

Parser = Callable[[str, str, Options, Problems], list[dict[str, Any]]]
"""(text, format, options, problems) -> rows; appends every problem found instead of raising."""

Exporter = tuple[Callable[[dict[str, Any]], dict[str, Any]], Callable[[Iterable[dict[str, Any]]], Iterator[str]]]
"""(the record a row becomes, how the records are written out)."""

_PARSERS: dict[str, Parser] = {
    "alpaca_json": alpaca.parse_json,
    "alpaca_jsonl": alpaca.parse_jsonl,
    "messages_jsonl": messages.parse_jsonl,
    "oasst_jsonl": oasst.parse_jsonl,
    "pairs_jsonl": alpaca.parse_jsonl,
    "lima_json": conversations.parse_json,
    "lima_jsonl": conversations.parse_jsonl,
    "sharegpt_json": conversations.parse_json,
    "sharegpt_jsonl": conversations.parse_jsonl,
    "csv": tabular.parse_csv,
    "tsv": tabular.parse_csv,
}
_EXPORTERS: dict[str, Exporter] = {
    "alpaca_json": (alpaca.export_record, write_json_array),
    "alpaca_jsonl": (alpaca.export_record, write_json_lines),
    "messages_jsonl": (messages.export_record, write_json_lines),
}
_BINARY = ("parquet", "hf_dataset")
"""Formats not read as text: a Parquet file, a `datasets` directory (from a path only)."""

FORMATS_TEXT: tuple[str, ...] = tuple(_PARSERS)
FORMATS_IN: tuple[str, ...] = (*_PARSERS, *_BINARY)
FORMATS_UPLOAD: tuple[str, ...] = tuple(f for f in FORMATS_IN if f != "hf_dataset")
"""What an upload can be (a `datasets` directory is read from a path)."""
FORMATS_OUT: tuple[str, ...] = tuple(_EXPORTERS)
FORMATS_TABLE: tuple[str, ...] = ("csv", "tsv", *_BINARY)
FORMATS_TURNS: tuple[str, ...] = ("messages_jsonl", "lima_json", "lima_jsonl", "sharegpt_json", "sharegpt_jsonl")
"""Formats whose records are conversations (`turns` applies; tables may hold a conversation column too)."""
MAP_TARGETS: tuple[str, ...] = tabular.TARGETS

JSONL_SUFFIXES = (".jsonl", ".ndjson")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}

_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')
_CONVERSATIONS = re.compile(r'"conversations"\s*:\s*\[\s*(\S)')


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def detect_format(filename: str, head: str) -> str:
    """The import format of a file from its name and its beginning (`head`, which may end mid-line)."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    head = _strip_bom(head)
    stripped = head.lstrip()
    if not stripped:
        raise FormatError([(0, "no records")])
    if stripped.startswith("[") and suffix not in JSONL_SUFFIXES:
        found = _CONVERSATIONS.search(stripped)
        return f"{_family(found.group(1))}_json" if found else "alpaca_json"
    lineno, first = next((n, line) for n, line in enumerate(head.split("\n"), start=1) if line.strip())
    try:
        obj = json.loads(first)
        keys = set(obj) if isinstance(obj, dict) else set()
    except (json.JSONDecodeError, RecursionError):  # cut off by `head`, or broken: look at the key names
        keys = set(_KEY.findall(first))
    if "messages" in keys:
        return "messages_jsonl"
    if "conversations" in keys:
        found = _CONVERSATIONS.search(first)
        return f"{_family(found.group(1) if found else '')}_jsonl"
    if "prompt" in keys and "message_tree_id" in keys or {"message_id", "text"} <= keys:
        return "oasst_jsonl"
    if {"instruction", "output"} <= keys:
        return "alpaca_jsonl"
    if {"instruction", "response"} <= keys:
        return "pairs_jsonl"
    raise FormatError(
        [
            (
                lineno,
                "cannot tell the format: expected Alpaca ('instruction', 'output'), pairs ('instruction', "
                "'response'), messages ('messages'), LIMA or ShareGPT ('conversations') or OpenAssistant "
                "('message_id' or 'message_tree_id' + 'prompt') records, or a .csv, .tsv or .parquet file",
            )
        ]
    )


def _family(first_char: str) -> str:
    """ShareGPT when a conversation's first turn is an object, else LIMA."""
    return "sharegpt" if first_char == "{" else "lima"


def parse(
    text: str,
    fmt: str,
    *,
    default_source: str = "seed",
    turns: str = "first",
    mapping: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows {"instruction", "response", "source", "tags", "provenance": {"format", "line" | "row", "turn"?}} for
    every record of a text format (`FORMATS_TEXT`).

    Validates the whole file first: raises one FormatError naming every bad line, or returns every row."""
    options = _options(fmt, default_source, turns, mapping)
    if fmt not in _PARSERS:
        raise ValueError(f"{fmt} is not a text format; use parse_bytes or parse_path")
    return _checked(fmt, lambda problems: _PARSERS[fmt](_strip_bom(text), fmt, options, problems))


def parse_bytes(
    name: str,
    data: bytes,
    fmt: str | None = None,
    *,
    default_source: str = "seed",
    turns: str = "first",
    mapping: Mapping[str, str] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(format, rows) of a file's bytes (an upload); the format is detected from `name` and the content unless
    given. Text formats must be UTF-8. A `datasets` directory is read only from a path (`parse_path`)."""
    if fmt == "hf_dataset":
        raise FormatError([(0, "a datasets directory is read from its path (manage.py import_seed DIR)")])
    suffix = PurePath(name).suffix.lower()
    if fmt == "parquet" or (fmt is None and (_SUFFIX_FORMATS.get(suffix) == "parquet" or data[:4] == b"PAR1")):
        options = _options("parquet", default_source, turns, mapping)
        return "parquet", _checked(
            "parquet", lambda problems: tabular.parse_parquet(data, "parquet", options, problems)
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            [(0, f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at byte offset {exc.start}) on line {line}")]
        ) from None
    fmt = fmt or detect_format(name, text[:65536])
    return fmt, parse(text, fmt, default_source=default_source, turns=turns, mapping=mapping)


def parse_path(
    path: str | Path,
    fmt: str | None = None,
    *,
    default_source: str = "seed",
    turns: str = "first",
    mapping: Mapping[str, str] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(format, rows) of a file or a `datasets` directory (`save_to_disk`); OSError when it cannot be read."""
    p = Path(path)
    if p.is_dir():
        if fmt not in (None, "hf_dataset"):
            raise FormatError([(0, f"a directory, not a {fmt} file")])
        options = _options("hf_dataset", default_source, turns, mapping)
        return "hf_dataset", _checked(
            "hf_dataset", lambda problems: tabular.parse_dataset_dir(p, fmt or "hf_dataset", options, problems)
        )
    if fmt == "hf_dataset":
        raise FormatError([(0, "not a directory (a datasets directory is what save_to_disk writes)")])
    return parse_bytes(p.name, p.read_bytes(), fmt, default_source=default_source, turns=turns, mapping=mapping)


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """{"instruction": "colA", …} from "instruction=colA" items; ValueError naming a malformed item or target."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, column = pair.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise ValueError(f"{pair!r}: expected TARGET=COLUMN, e.g. instruction=prompt")
        if target not in MAP_TARGETS:
            raise ValueError(f"{pair!r}: unknown target {target!r} (expected one of {', '.join(MAP_TARGETS)})")
        if target in mapping:
            raise ValueError(f"{target} is mapped twice")
        mapping[target] = column
    return mapping


def _options(fmt: str, default_source: str, turns: str, mapping: Mapping[str, str] | None) -> Options:
    if fmt not in FORMATS_IN:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS_IN)}")
    if default_source not in SOURCES:
        raise ValueError(f"unknown source {default_source!r}; expected one of {', '.join(SOURCES)}")
    if turns not in TURNS:
        raise ValueError(f"unknown turns {turns!r}; expected one of {', '.join(TURNS)}")
    if turns != "first" and fmt not in FORMATS_TURNS + FORMATS_TABLE:
        raise FormatError(
            [(0, f"every turn as a pair applies to conversations ({', '.join(FORMATS_TURNS)}), not {fmt}")]
        )
    if mapping and fmt not in FORMATS_TABLE:
        raise FormatError([(0, f"a column mapping applies to tables ({', '.join(FORMATS_TABLE)}), not {fmt}")])
    unknown = sorted(set(mapping or {}) - set(MAP_TARGETS))
    if unknown:
        raise ValueError(f"unknown mapping targets {', '.join(unknown)}; expected {', '.join(MAP_TARGETS)}")
    return Options(default_source=default_source, turns=turns, mapping=dict(mapping or {}))


def _checked(fmt: str, read: Callable[[Problems], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows `read` returns, or a FormatError with every problem it found (none: no records)."""
    problems: Problems = []
    rows = read(problems)
    unit = CSV_ROW if fmt in ("csv", "tsv") else ROW_INDEX if fmt in _BINARY else LINE
    if problems:
        raise FormatError(sorted(problems, key=lambda p: p[0]), unit)
    if not rows:
        raise FormatError([(0, "no records")], unit)
    return rows


def export_rows(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The serialized file, one chunk at a time, from rows {"id", "instruction", "response", "source", "tags",
    "version"}: a line per row for JSONL; "[\\n", the items separated by ",\\n", then "\\n]\\n" for alpaca_json."""
    if fmt not in FORMATS_OUT:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS_OUT)}")
    to_record, write = _EXPORTERS[fmt]
    yield from write(to_record(_known_source(row)) for row in rows)


def _known_source(row: dict[str, Any]) -> dict[str, Any]:
    if row["source"] not in SYSTEM_PROMPTS:
        raise ValueError(f"row {row.get('id')}: unknown source {row['source']!r}")
    return row
