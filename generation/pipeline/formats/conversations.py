"""Conversations as LIMA and ShareGPT store them, one record per line (`*_jsonl`) or a JSON array (`*_json`):

- lima: {"conversations": ["user text", "assistant text", …], "source"?} — the turns alternate, user first.
- sharegpt: {"conversations": [{"from": "human" | "gpt" | "system", "value": …}, …], "source"?} — "user" and
  "assistant" are read as "human" and "gpt"; tool turns ("tool", "function_call", "observation", "function")
  are kept in the order but never part of a pair; system turns are ignored.

The first user → assistant turn is the example; with turns="all" every user → assistant turn is one, on its own
(the turns before it are not included). Their "source" is often where the record came from (LIMA:
"stackexchange", "wikihow"): a value other than seed/web/safety becomes a tag. Pure: no Django.
"""

from __future__ import annotations

from typing import Any

from generation.pipeline.formats.base import LINE, Options, Problems, Record, Unit, json_type, pair_turns, row
from generation.pipeline.formats.json_io import array_objects, jsonl_objects

FAMILIES = ("lima", "sharegpt")

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
    "tool": "tool",
    "function_call": "tool",
    "observation": "tool",
    "function": "tool",
}


def family(fmt: str) -> str:
    """ "lima" or "sharegpt" from a format name (`lima_jsonl`, `sharegpt_json`, …)."""
    return fmt.split("_", 1)[0]


def family_of(conversations: Any) -> str:
    """The family a "conversations" value looks like: ShareGPT when its first turn is an object, else LIMA."""
    return (
        "sharegpt"
        if isinstance(conversations, list) and conversations[:1] and isinstance(conversations[0], dict)
        else "lima"
    )


def conversation_rows(
    obj: dict[str, Any], line: int, fmt: str, options: Options, problems: Problems, unit: Unit = LINE, kind: str = ""
) -> list[dict[str, Any]]:
    """The rows of one {"conversations": […]} record (also a table row with a conversations column); `kind` is
    the family, from `fmt` unless given."""
    kind = kind or family(fmt)
    rec = Record(obj, line, problems)
    source, origin = rec.source_or_origin(options.default_source)
    tags = list(dict.fromkeys([*rec.tags(), *origin]))
    turns = obj.get("conversations")
    if turns is None:
        rec.problem("'conversations' is missing")
        return []
    if not isinstance(turns, list):
        rec.problem(f"'conversations' must be an array, got {json_type(turns)}")
        return []
    texts = _lima(rec, turns) if kind == "lima" else _sharegpt(rec, turns)
    if not rec.ok:
        return []
    roles = [role for role, _ in texts]
    found = pair_turns(roles, options.turns)
    if not found:
        rec.problem("no user turn followed by an assistant turn")
        return []
    rows = []
    for number, turn in enumerate(found, start=1):
        instruction, response = texts[turn][1].strip(), texts[turn + 1][1].strip()
        for index, text in ((turn, instruction), (turn + 1, response)):
            if not text:
                rec.problem(f"conversations[{index}] ({roles[index]}) is empty")
        if instruction and response:
            numbered = number if options.turns == "all" else None
            rows.append(row(instruction, response, source, tags, fmt, line, unit=unit, turn=numbered))
    return rows if rec.ok else []


def _lima(rec: Record, turns: list[Any]) -> list[tuple[str, str]]:
    texts = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, str):
            rec.problem(
                f"conversations[{i}] must be a string (LIMA: user and assistant texts in turn), got {json_type(turn)}"
            )
            turn = ""
        texts.append(("user" if i % 2 == 0 else "assistant", turn))
    return texts


def _sharegpt(rec: Record, turns: list[Any]) -> list[tuple[str, str]]:
    texts = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            rec.problem(
                f"conversations[{i}] must be an object with 'from' and 'value' (ShareGPT), got {json_type(turn)}"
            )
            texts.append(("", ""))
            continue
        speaker, value = turn.get("from"), turn.get("value")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            rec.problem(f"conversations[{i}]: 'from' must be human, gpt or system, got {speaker!r}")
        if not isinstance(value, str):
            rec.problem(f"conversations[{i}]: 'value' must be a string, got {json_type(value)}")
        texts.append((role or "", value if isinstance(value, str) else ""))
    return texts


def parse_jsonl(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """lima_jsonl and sharegpt_jsonl: one conversation per line."""
    return [
        r for line, obj in jsonl_objects(text, problems) for r in conversation_rows(obj, line, fmt, options, problems)
    ]


def parse_json(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    """lima_json and sharegpt_json: a JSON array of conversations."""
    return [
        r for line, obj in array_objects(text, problems) for r in conversation_rows(obj, line, fmt, options, problems)
    ]
