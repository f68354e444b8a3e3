"""Alpaca: {"instruction", "input"?, "output", "source"?, "tags"?}, as a JSON array (alpaca_json) or one per
line (alpaca_jsonl); and our pairs_jsonl, the same with "response" for "output" (import only). A non-empty
"input" is appended to the instruction after a blank line. Pure: no Django.
"""

from __future__ import annotations

from typing import Any

from generation.pipeline.formats.base import Options, Problems, Record, row
from generation.pipeline.formats.json_io import array_objects, jsonl_objects


def _alpaca(obj: dict[str, Any], line: int, fmt: str, default_source: str, problems: list) -> dict | None:
    """Alpaca's instruction/input/output; `pairs_jsonl` is the same with "response" for "output"."""
    rec = Record(obj, line, problems)
    instruction = rec.text("instruction")
    extra = rec.text("input", required=False, allow_null=True)
    response = rec.text("response" if fmt == "pairs_jsonl" else "output")
    source, tags = rec.source(default_source), rec.tags()
    if not rec.ok:
        return None
    if extra:
        instruction = f"{instruction}\n\n{extra}"
    return row(instruction, response, source, tags, fmt, line)


def parse_json(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """alpaca_json: a JSON array of Alpaca records."""
    return [
        r
        for line, obj in array_objects(text, problems)
        if (r := _alpaca(obj, line, fmt, options.default_source, problems)) is not None
    ]


def parse_jsonl(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """alpaca_jsonl and pairs_jsonl: one record per line."""
    return [
        r
        for line, obj in jsonl_objects(text, problems)
        if (r := _alpaca(obj, line, fmt, options.default_source, problems)) is not None
    ]


def export_record(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "instruction": item["instruction"],
        "input": "",
        "output": item["response"],
        "source": item["source"],
        "id": item["id"],
        "version": item["version"],
    }
