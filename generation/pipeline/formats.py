"""Seed-set files in the formats of Alpaca, TRL (conversational "messages") and OpenAssistant. Pure: no Django.

Import: `detect_format` picks the format from the file name and its first record, `parse` validates the whole
file and returns rows for `services.seed_examples_create` — or raises one `FormatError` listing every problem
with its line. Export: `export_rows` streams the serialized file one chunk at a time.

Formats:
- alpaca_json / alpaca_jsonl: {"instruction", "input"?, "output", "source"?, "tags"?} (a JSON array / one per line)
- messages_jsonl: {"messages": [{"role", "content"}, …], "source"?, "tags"?} — TRL's conversational format;
  the first user → assistant turn pair is the example, a leading system message is ignored
- oasst_jsonl (import only): OpenAssistant exports, flat messages ({"message_id", "parent_id", "role", "text",
  "rank", "deleted", …}) or message trees ({"message_tree_id", "prompt": {…, "replies": […]}}); each tree gives
  its first turn: the root prompter message and its best (rank 0, else first) non-deleted assistant reply
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import Any

from generation.pipeline.training import SYSTEM_PROMPTS

FORMATS_IN: tuple[str, ...] = ("alpaca_json", "alpaca_jsonl", "messages_jsonl", "oasst_jsonl", "pairs_jsonl")
FORMATS_OUT: tuple[str, ...] = ("alpaca_json", "alpaca_jsonl", "messages_jsonl")
SOURCES: tuple[str, ...] = ("seed", "web", "safety")

MAX_LINE_BYTES = 10 * 1024 * 1024  # a longer line (or alpaca_json record) is refused, never parsed
MAX_TAG_CHARS = 64  # SeedExample.tags items
MAX_PROBLEMS_SHOWN = 50
JSONL_SUFFIXES = (".jsonl", ".ndjson")

_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    """The index of the first character at or after `pos` that is not JSON whitespace."""
    match = _WS.match(text, pos)  # matches at every position (the empty string at worst)
    return match.end() if match else pos


_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


class FormatError(ValueError):
    """A file that cannot be imported. `problems` holds every (1-based line, message); line 0 = the whole file."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __reduce__(self) -> tuple[type[FormatError], tuple[list[tuple[int, str]]]]:
        return (type(self), (self.problems,))

    def __str__(self) -> str:
        shown = [msg if line == 0 else f"line {line}: {msg}" for line, msg in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"… and {len(self.problems) - MAX_PROBLEMS_SHOWN} more")
        return "; ".join(shown)


# --- helpers -------------------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _too_long(line: str) -> bool:
    n = len(line)  # characters <= UTF-8 bytes <= 4 × characters: encode only when it could matter
    return n > MAX_LINE_BYTES or (
        n * 4 > MAX_LINE_BYTES and len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES
    )


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


class _Record:
    """Validation of one JSON object: collects problems for its line instead of raising."""

    def __init__(self, obj: dict[str, Any], line: int, problems: list[tuple[int, str]], where: str = "") -> None:
        self.obj, self.line, self.problems, self.where = obj, line, problems, where
        self.ok = True

    def problem(self, message: str) -> None:
        self.problems.append((self.line, f"{self.where}{message}"))
        self.ok = False

    def text(self, key: str, *, required: bool = True, allow_null: bool = False) -> str:
        """A string field, stripped; '' (with a problem when required) when missing, empty or of another type."""
        if key not in self.obj or (allow_null and self.obj[key] is None):
            if required:
                self.problem(f"'{key}' is missing")
            return ""
        value = self.obj[key]
        if not isinstance(value, str):
            self.problem(f"'{key}' must be a string, got {_json_type(value)}")
            return ""
        value = value.strip()
        if required and not value:
            self.problem(f"'{key}' is empty")
        return value

    def source(self, default: str) -> str:
        """The optional "source" (or its alias "category"): one of SOURCES."""
        values = {}
        for key in ("source", "category"):
            if key in self.obj and self.obj[key] is not None:
                value = self.obj[key]
                if not isinstance(value, str):
                    self.problem(f"'{key}' must be a string, got {_json_type(value)}")
                elif value.strip() not in SOURCES:
                    self.problem(f"unknown {key} {value!r} (expected one of {', '.join(SOURCES)})")
                else:
                    values[key] = value.strip()
        if len(set(values.values())) > 1:
            self.problem(f"'source' {values['source']!r} and 'category' {values['category']!r} disagree")
        return next(iter(values.values()), default)

    def tags(self) -> list[str]:
        value = self.obj.get("tags")
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            self.problem("'tags' must be an array of strings")
            return []
        tags = [t.strip() for t in value if t.strip()]
        if any(len(t) > MAX_TAG_CHARS for t in tags):
            self.problem(f"a tag is longer than {MAX_TAG_CHARS} characters")
        return tags

    def optional(self, key: str, kind: type | tuple[type, ...], kind_name: str) -> Any:
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            self.problem(f"'{key}' must be {kind_name}, got {_json_type(value)}")
            return None
        return value


def _row(instruction: str, response: str, source: str, tags: list[str], fmt: str, line: int) -> dict[str, Any]:
    return {
        "instruction": instruction,
        "response": response,
        "source": source,
        "tags": tags,
        "provenance": {"format": fmt, "line": line},
    }


# --- reading records -----------------------------------------------------------------------------------------


def _jsonl_objects(text: str, problems: list[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line that holds a JSON object; problems for the others."""
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if _too_long(line):
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
            problems.append((lineno, f"expected a JSON object, got {_json_type(obj)}"))
            continue
        yield lineno, obj


def _array_objects(text: str, problems: list[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
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
                problems.append((start, f"expected a JSON object, got {_json_type(obj)}"))
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


# --- the formats ---------------------------------------------------------------------------------------------


def _alpaca(obj: dict[str, Any], line: int, fmt: str, default_source: str, problems: list) -> dict | None:
    """Alpaca's instruction/input/output; `pairs_jsonl` is the same with "response" for "output"."""
    rec = _Record(obj, line, problems)
    instruction = rec.text("instruction")
    extra = rec.text("input", required=False, allow_null=True)
    response = rec.text("response" if fmt == "pairs_jsonl" else "output")
    source, tags = rec.source(default_source), rec.tags()
    if not rec.ok:
        return None
    if extra:
        instruction = f"{instruction}\n\n{extra}"
    return _row(instruction, response, source, tags, fmt, line)


def _messages(obj: dict[str, Any], line: int, fmt: str, default_source: str, problems: list) -> dict | None:
    rec = _Record(obj, line, problems)
    source, tags = rec.source(default_source), rec.tags()
    messages = obj.get("messages")
    if messages is None:
        rec.problem("'messages' is missing")
        return None
    if not isinstance(messages, list):
        rec.problem(f"'messages' must be an array, got {_json_type(messages)}")
        return None
    roles: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            rec.problem(f"messages[{i}] must be an object, got {_json_type(message)}")
            roles.append("")
        elif not isinstance(message.get("role"), str):
            rec.problem(f"messages[{i}]: 'role' must be a string, got {_json_type(message.get('role'))}")
            roles.append("")
        else:
            roles.append(message["role"])
    if not rec.ok:
        return None
    turn = next((i for i in range(len(roles) - 1) if roles[i] == "user" and roles[i + 1] == "assistant"), None)
    if turn is None:
        rec.problem("no user message followed by an assistant message")
        return None
    instruction = _Record(messages[turn], line, problems, f"messages[{turn}] (user): ").text("content")
    response = _Record(messages[turn + 1], line, problems, f"messages[{turn + 1}] (assistant): ").text("content")
    if not (instruction and response):
        return None
    return _row(instruction, response, source, tags, fmt, line)


def _oasst_reply(replies: list[tuple[int | None, int, str]]) -> str | None:
    """The best reply of (rank, order, text): rank 0 (the lowest rank) when ranked, else the first."""
    if not replies:
        return None
    ranked = [r for r in replies if r[0] is not None]
    return min(ranked or replies, key=lambda r: (r[0] or 0, r[1]))[2]


def _oasst_message(rec: _Record, *roles: str) -> tuple[str, int | None, bool]:
    """Validates one OpenAssistant message with one of `roles`: (text, rank, deleted)."""
    if rec.obj.get("role") not in roles:
        rec.problem(f"'role' must be {' or '.join(map(repr, roles))}, got {rec.obj.get('role')!r}")
    deleted = bool(rec.optional("deleted", bool, "a boolean"))
    rank = rec.optional("rank", int, "an integer")
    text = rec.text("text", required=not deleted)
    return text, rank, deleted


def _oasst(text: str, fmt: str, default_source: str, problems: list[tuple[int, str]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    roots: dict[str, tuple[int, str]] = {}  # message_id -> (line, text) of root prompter messages
    replies: dict[str, list[tuple[int | None, int, str]]] = {}  # parent_id -> [(rank, line, text)]
    seen: set[str] = set()
    for line, obj in _jsonl_objects(text, problems):
        if "prompt" in obj:  # a message tree
            prompt = obj["prompt"]
            if not isinstance(prompt, dict):
                problems.append((line, f"'prompt' must be an object, got {_json_type(prompt)}"))
                continue
            rec = _Record(prompt, line, problems, "prompt: ")
            instruction, _, deleted = _oasst_message(rec, "prompter")
            children = prompt.get("replies") or []
            if not isinstance(children, list):
                rec.problem(f"'replies' must be an array, got {_json_type(children)}")
                continue
            candidates = []
            for i, child in enumerate(children):
                if not isinstance(child, dict):
                    rec.problem(f"replies[{i}] must be an object, got {_json_type(child)}")
                    continue
                child_rec = _Record(child, line, problems, f"prompt: replies[{i}]: ")
                reply, rank, reply_deleted = _oasst_message(child_rec, "assistant")
                if child_rec.ok and not reply_deleted:
                    candidates.append((rank, i, reply))
            response = _oasst_reply(candidates)
            if rec.ok and not deleted and response:
                rows.append(_row(instruction, response, default_source, [], fmt, line))
        elif "message_id" in obj:  # one message of a flat export
            rec = _Record(obj, line, problems)
            message_id = rec.text("message_id")
            parent_id = rec.text("parent_id", required=False, allow_null=True)
            if message_id and message_id in seen:
                rec.problem(f"duplicate message_id {message_id!r}")
            seen.add(message_id)
            # Only a root must be a prompter message; deeper turns alternate prompter/assistant.
            message, rank, deleted = _oasst_message(rec, *(("prompter", "assistant") if parent_id else ("prompter",)))
            if not rec.ok or deleted:
                continue
            if not parent_id:
                roots[message_id] = (line, message)
            elif obj["role"] == "assistant":
                replies.setdefault(parent_id, []).append((rank, line, message))
        else:
            problems.append((line, "not an OpenAssistant message or tree (needs 'message_id' or 'prompt')"))
    for message_id, (line, instruction) in roots.items():
        response = _oasst_reply(replies.get(message_id, []))
        if response:
            rows.append(_row(instruction, response, default_source, [], fmt, line))
    rows.sort(key=lambda r: r["provenance"]["line"])
    return rows


# --- public API ----------------------------------------------------------------------------------------------


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
    problems: list[tuple[int, str]] = []
    if fmt == "oasst_jsonl":
        rows = _oasst(text, fmt, default_source, problems)
    else:
        records = _array_objects(text, problems) if fmt == "alpaca_json" else _jsonl_objects(text, problems)
        to_row = _messages if fmt == "messages_jsonl" else _alpaca
        rows = [r for line, obj in records if (r := to_row(obj, line, fmt, default_source, problems)) is not None]
    if problems:
        raise FormatError(sorted(problems, key=lambda p: p[0]))
    if not rows:
        raise FormatError([(0, "no records")])
    return rows


def _export_record(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    source = row["source"]
    if source not in SYSTEM_PROMPTS:
        raise ValueError(f"row {row.get('id')}: unknown source {source!r}")
    if fmt == "messages_jsonl":
        return {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPTS[source]},
                {"role": "user", "content": row["instruction"]},
                {"role": "assistant", "content": row["response"]},
            ],
            "source": source,
            "id": row["id"],
            "version": row["version"],
        }
    return {
        "instruction": row["instruction"],
        "input": "",
        "output": row["response"],
        "source": source,
        "id": row["id"],
        "version": row["version"],
    }


def export_rows(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The serialized file, one chunk at a time, from rows {"id", "instruction", "response", "source", "tags",
    "version"}: a line per row for JSONL; "[\\n", the items separated by ",\\n", then "\\n]\\n" for alpaca_json."""
    if fmt not in FORMATS_OUT:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS_OUT)}")
    if fmt == "alpaca_json":
        yield "[\n"
        for i, row in enumerate(rows):
            item = json.dumps(_export_record(row, fmt), ensure_ascii=False)
            yield f",\n{item}" if i else item
        yield "\n]\n"
    else:
        for row in rows:
            yield json.dumps(_export_record(row, fmt), ensure_ascii=False) + "\n"
