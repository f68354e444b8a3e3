"""Seed-set files in the formats of Alpaca, TRL (conversational "messages") and OpenAssistant. Pure: no Django.

Import: `detect_format` picks the format from the file name and its first record, `parse` validates the whole
file and returns rows for `services.seed_examples_create` — or raises one `FormatError` listing every problem
with its line. Export: `export_rows` streams the serialized file one chunk at a time.

Formats (one module per family):
- alpaca.py: alpaca_json / alpaca_jsonl: {"instruction", "input"?, "output", "source"?, "tags"?} (a JSON array /
  one per line); pairs_jsonl (import only): the same with "response" for "output"
- messages.py: messages_jsonl: {"messages": [{"role", "content"}, …], "source"?, "tags"?} — TRL's conversational
  format; the first user → assistant turn pair is the example, a leading system message is ignored
- oasst.py: oasst_jsonl (import only): OpenAssistant exports, flat messages ({"message_id", "parent_id", "role",
  "text", "rank", "deleted", …}) or message trees ({"message_tree_id", "prompt": {…, "replies": […]}}); each
  tree gives its first turn: the root prompter message and its best (rank 0, else first) non-deleted reply
- base.py: `FormatError`, `SOURCES`, the limits, `Record` (one record's validation) and the row shape
- json_io.py: the objects of a JSON-lines or JSON-array file with their lines, and writing JSON out

To add a format: a module with a `Parser` and/or a record builder for export, one entry in `_PARSERS` and/or
`_EXPORTERS` below, and a rule in `detect_format` if it can be told from the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import PurePath
from typing import Any

from generation.pipeline.formats import alpaca, messages, oasst
from generation.pipeline.formats.base import SOURCES, FormatError, Problems
from generation.pipeline.formats.json_io import write_json_array, write_json_lines
from generation.pipeline.training import SYSTEM_PROMPTS

__all__ = ["FORMATS_IN", "FORMATS_OUT", "SOURCES", "FormatError", "detect_format", "export_rows", "parse"]

Parser = Callable[[str, str, str, Problems], list[dict[str, Any]]]
"""(text, format, default source, problems) -> rows; appends every problem found instead of raising."""

Exporter = tuple[Callable[[dict[str, Any]], dict[str, Any]], Callable[[Iterable[dict[str, Any]]], Iterator[str]]]
"""(the record a row becomes, how the records are written out)."""

_PARSERS: dict[str, Parser] = {
    "alpaca_json": alpaca.parse_json,
    "alpaca_jsonl": alpaca.parse_jsonl,
    "messages_jsonl": messages.parse_jsonl,
    "oasst_jsonl": oasst.parse_jsonl,
    "pairs_jsonl": alpaca.parse_jsonl,
}
_EXPORTERS: dict[str, Exporter] = {
    "alpaca_json": (alpaca.export_record, write_json_array),
    "alpaca_jsonl": (alpaca.export_record, write_json_lines),
    "messages_jsonl": (messages.export_record, write_json_lines),
}

FORMATS_IN: tuple[str, ...] = tuple(_PARSERS)
FORMATS_OUT: tuple[str, ...] = tuple(_EXPORTERS)

JSONL_SUFFIXES = (".jsonl", ".ndjson")

_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def detect_format(filename: str, head: str) -> str:
    """The import format of a file from its name and its beginning (`head`, which may end mid-line)."""
    head = _strip_bom(head)
    suffix = PurePath(filename).suffix.lower()
    stripped = head.lstrip()
    if not stripped:
        raise FormatError([(0, "no records")])
    if stripped.startswith("[") and suffix not in JSONL_SUFFIXES:
        return "alpaca_json"
    lineno, first = next((n, line) for n, line in enumerate(head.split("\n"), start=1) if line.strip())
    try:
        obj = json.loads(first)
        keys = set(obj) if isinstance(obj, dict) else set()
    except (json.JSONDecodeError, RecursionError):  # cut off by `head`, or broken: look at the key names
        keys = set(_KEY.findall(first))
    if "messages" in keys:
        return "messages_jsonl"
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
                "'response'), messages ('messages') or OpenAssistant ('message_id' or 'message_tree_id' + "
                "'prompt') records",
            )
        ]
    )


def parse(text: str, fmt: str, *, default_source: str = "seed") -> list[dict[str, Any]]:
    """Rows {"instruction", "response", "source", "tags", "provenance": {"format", "line"}} for every record.

    Validates the whole file first: raises one FormatError naming every bad line, or returns every row."""
    if fmt not in FORMATS_IN:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS_IN)}")
    if default_source not in SOURCES:
        raise ValueError(f"unknown source {default_source!r}; expected one of {', '.join(SOURCES)}")
    text = _strip_bom(text)
    problems: Problems = []
    rows = _PARSERS[fmt](text, fmt, default_source, problems)
    if problems:
        raise FormatError(sorted(problems, key=lambda p: p[0]))
    if not rows:
        raise FormatError([(0, "no records")])
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
