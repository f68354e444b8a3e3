"""What every seed-file format shares: the sources, the limits, `FormatError`, `Record` (validation of one
record that collects problems instead of raising) and the shape of an imported row. Pure: no Django.
"""

from __future__ import annotations

from typing import Any

SOURCES: tuple[str, ...] = ("seed", "web", "safety")

MAX_LINE_BYTES = 10 * 1024 * 1024  # a longer line (or alpaca_json record) is refused, never parsed
MAX_TAG_CHARS = 64  # SeedExample.tags items
MAX_PROBLEMS_SHOWN = 50

Problems = list[tuple[int, str]]
"""(1-based line, message) pairs; line 0 = the whole file."""


class FormatError(ValueError):
    """A file that cannot be imported. `problems` holds every (1-based line, message); line 0 = the whole file."""

    def __init__(self, problems: Problems) -> None:
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


def row(instruction: str, response: str, source: str, tags: list[str], fmt: str, line: int) -> dict[str, Any]:
    return {
        "instruction": instruction,
        "response": response,
        "source": source,
        "tags": tags,
        "provenance": {"format": fmt, "line": line},
    }
