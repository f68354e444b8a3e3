"""JSON in and out for the JSON formats: the objects of a JSON-lines or JSON-array file with the line each starts
on (problems collected, never raised), and the two ways to write records out. Pure: no Django.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from generation.pipeline.formats.base import MAX_LINE_BYTES, Problems, json_type

_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    """The index of the first character at or after `pos` that is not JSON whitespace."""
    match = _WS.match(text, pos)  # matches at every position (the empty string at worst)
    return match.end() if match else pos


def too_long(line: str) -> bool:
    n = len(line)  # characters <= UTF-8 bytes <= 4 × characters: encode only when it could matter
    return n > MAX_LINE_BYTES or (
        n * 4 > MAX_LINE_BYTES and len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES
    )


def jsonl_objects(text: str, problems: Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line that holds a JSON object; problems for the others."""
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if too_long(line):
            problems.append((lineno, f"line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MB"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append((lineno, f"invalid JSON ({e.msg} at column {e.colno})"))
            continue
        except RecursionError:
            problems.append((lineno, "invalid JSON (nested too deeply)"))
            continue
        if not isinstance(obj, dict):
            problems.append((lineno, f"expected a JSON object, got {json_type(obj)}"))
            continue
        yield lineno, obj


def array_objects(text: str, problems: Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line where it starts, object) for every item of a JSON array file, decoded one item at a time."""
    decoder = json.JSONDecoder()
    pos, line, counted = _skip_ws(text, 0), 1, 0

    def line_at(index: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, index)
        counted = index
        return line

    if pos == len(text):
        return
    if text[pos] != "[":
        problems.append((line_at(pos), "expected a JSON array ('[') of objects"))
        return
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            start = line_at(pos)
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                problems.append((e.lineno, f"invalid JSON ({e.msg} at column {e.colno})"))
                return
            except RecursionError:
                problems.append((start, "invalid JSON (nested too deeply)"))
                return
            if len(text[pos:end].encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
                problems.append((start, f"record is longer than {MAX_LINE_BYTES // (1024 * 1024)} MB"))
            elif not isinstance(obj, dict):
                problems.append((start, f"expected a JSON object, got {json_type(obj)}"))
            else:
                yield start, obj
            pos = _skip_ws(text, end)
            if text.startswith(",", pos):
                pos = _skip_ws(text, pos + 1)
                if pos == len(text) or text[pos] == "]":
                    problems.append((line_at(pos), "invalid JSON (trailing comma in the array)"))
                    return
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                problems.append((line_at(pos), "invalid JSON (expected ',' or ']' after an array item)"))
                return
    rest = _skip_ws(text, pos)
    if rest != len(text):
        problems.append((line_at(rest), "invalid JSON (extra data after the array)"))


def write_json_array(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """ "[\\n", the items separated by ",\\n", then "\\n]\\n"."""
    yield "[\n"
    for i, record in enumerate(records):
        item = json.dumps(record, ensure_ascii=False)
        yield f",\n{item}" if i else item
    yield "\n]\n"


def write_json_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A line per record."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"
