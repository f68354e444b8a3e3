"""What every seed-file format shares: the sources, the limits, the import `Options`, `FormatError` with the
`Unit` its positions count in, `Record` (validation of one record that collects problems instead of raising),
which user → assistant turns become pairs, and the shape of an imported row. Pure: no Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCES: tuple[str, ...] = ("seed", "web", "safety")

MAX_LINE_BYTES = 10 * 1024 * 1024  # a longer line (or alpaca_json record) is refused, never parsed
MAX_TAG_CHARS = 64  # SeedExample.tags items
MAX_PROBLEMS_SHOWN = 50

TURNS: tuple[str, ...] = ("first", "all")
"""Which user → assistant turns of a conversation become pairs: the first one, or every one (each on its own,
without the turns before it)."""

Problems = list[tuple[int, str]]
"""(1-based position, message) pairs; position 0 = the whole file. What a position counts is the `Unit`'s."""


@dataclass(frozen=True)
class Options:
    """How a file is read: the source of records that name none, which conversation turns become pairs, and the
    columns of a table (target → column name: instruction, response, input, source, tags)."""

    default_source: str = "seed"
    turns: str = "first"
    mapping: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """What a problem's position counts: `name` as shown, `key` in a row's provenance, `offset` subtracted from
    the 1-based position for both, and a `note` shown once after the problems."""

    name: str
    key: str
    offset: int = 0
    note: str = ""


LINE = Unit("line", "line")
CSV_ROW = Unit("row", "row", note="rows counted as in a spreadsheet: the header is row 1, the first data row is row 2")
ROW_INDEX = Unit("row index", "index", offset=1, note="row indices count from 0, as in datasets and pandas")


class FormatError(ValueError):
    """A file that cannot be imported. `problems` holds every (1-based position, message); position 0 = the whole
    file; `unit` says what positions count (lines, spreadsheet rows, row indices)."""

    def __init__(self, problems: Problems, unit: Unit = LINE) -> None:
        self.problems = list(problems)
        self.unit = unit
        super().__init__(str(self))

    def __reduce__(self) -> tuple[type[FormatError], tuple[list[tuple[int, str]], Unit]]:
        return (type(self), (self.problems, self.unit))

    def __str__(self) -> str:
        unit = self.unit
        shown = [
            msg if pos == 0 else f"{unit.name} {pos - unit.offset}: {msg}"
            for pos, msg in self.problems[:MAX_PROBLEMS_SHOWN]
        ]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"… and {len(self.problems) - MAX_PROBLEMS_SHOWN} more")
        note = f" ({unit.note})" if unit.note and any(pos for pos, _ in self.problems) else ""
        return "; ".join(shown) + note


# --- helpers -------------------------------------------------------------------------------------------------


def json_type(value: Any) -> str:
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


class Record:
    """Validation of one JSON object: collects problems for its line instead of raising."""

    def __init__(self, obj: dict[str, Any], line: int, problems: Problems, where: str = "") -> None:
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
            self.problem(f"'{key}' must be a string, got {json_type(value)}")
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
                    self.problem(f"'{key}' must be a string, got {json_type(value)}")
                elif value.strip() not in SOURCES:
                    self.problem(f"unknown {key} {value!r} (expected one of {', '.join(SOURCES)})")
                else:
                    values[key] = value.strip()
        if len(set(values.values())) > 1:
            self.problem(f"'source' {values['source']!r} and 'category' {values['category']!r} disagree")
        return next(iter(values.values()), default)

    def source_or_origin(self, default: str) -> tuple[str, list[str]]:
        """(source, extra tags) for datasets whose "source" says where a record came from (LIMA: "stackexchange",
        ShareGPT mixes: "airoboros"): one of SOURCES is the source; any other text becomes a tag instead."""
        origin = self.obj.get("source")
        if not isinstance(origin, str) or origin.strip() in SOURCES:
            return self.source(default), []
        rest = Record({k: v for k, v in self.obj.items() if k != "source"}, self.line, self.problems, self.where)
        source = rest.source(default)
        self.ok = self.ok and rest.ok
        tag = origin.strip()[:MAX_TAG_CHARS]
        return source, [tag] if tag else []

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
            self.problem(f"'{key}' must be {kind_name}, got {json_type(value)}")
            return None
        return value


def pair_turns(roles: list[str], turns: str) -> list[int]:
    """The indices i where roles[i] is "user" and roles[i + 1] "assistant": the first only, or all of them."""
    found = [i for i in range(len(roles) - 1) if roles[i] == "user" and roles[i + 1] == "assistant"]
    return found[:1] if turns == "first" else found


def row(
    instruction: str,
    response: str,
    source: str,
    tags: list[str],
    fmt: str,
    line: int,
    *,
    unit: Unit = LINE,
    turn: int | None = None,
) -> dict[str, Any]:
    """An imported row; its provenance names the format, where the record is (`unit.key`) and, when every turn of
    a conversation is imported, which of its user → assistant turns (1-based) it is."""
    provenance: dict[str, Any] = {"format": fmt, unit.key: line - unit.offset}
    if turn is not None:
        provenance["turn"] = turn
    return {"instruction": instruction, "response": response, "source": source, "tags": tags, "provenance": provenance}
