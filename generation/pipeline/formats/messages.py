"""TRL's conversational format (messages_jsonl): {"messages": [{"role", "content"}, …], "source"?, "tags"?}, one
per line. On import the first user → assistant turn pair is the example (or, with turns="all", every such pair
is one, without the turns before it) and system messages are ignored; on export the system prompt of the
example's source leads. Pure: no Django.
"""

from __future__ import annotations

from typing import Any

from generation.pipeline.formats.base import LINE, Options, Problems, Record, Unit, json_type, pair_turns, row
from generation.pipeline.formats.json_io import jsonl_objects
from generation.pipeline.training import SYSTEM_PROMPTS


def message_rows(
    obj: dict[str, Any], line: int, fmt: str, options: Options, problems: Problems, unit: Unit = LINE
) -> list[dict[str, Any]]:
    """The rows of one {"messages": […]} record (also a table row with a messages column)."""
    rec = Record(obj, line, problems)
    source, tags = rec.source(options.default_source), rec.tags()
    messages = obj.get("messages")
    if messages is None:
        rec.problem("'messages' is missing")
        return []
    if not isinstance(messages, list):
        rec.problem(f"'messages' must be an array, got {json_type(messages)}")
        return []
    roles: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            rec.problem(f"messages[{i}] must be an object, got {json_type(message)}")
            roles.append("")
        elif not isinstance(message.get("role"), str):
            rec.problem(f"messages[{i}]: 'role' must be a string, got {json_type(message.get('role'))}")
            roles.append("")
        else:
            roles.append(message["role"])
    if not rec.ok:
        return []
    found = pair_turns(roles, options.turns)
    if not found:
        rec.problem("no user message followed by an assistant message")
        return []
    rows = []
    for number, turn in enumerate(found, start=1):
        instruction = Record(messages[turn], line, problems, f"messages[{turn}] (user): ").text("content")
        response = Record(messages[turn + 1], line, problems, f"messages[{turn + 1}] (assistant): ").text("content")
        if instruction and response:
            numbered = number if options.turns == "all" else None
            rows.append(row(instruction, response, source, tags, fmt, line, unit=unit, turn=numbered))
    return rows


def parse_jsonl(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    return [r for line, obj in jsonl_objects(text, problems) for r in message_rows(obj, line, fmt, options, problems)]


def export_record(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPTS[item["source"]]},
            {"role": "user", "content": item["instruction"]},
            {"role": "assistant", "content": item["response"]},
        ],
        "source": item["source"],
        "id": item["id"],
        "version": item["version"],
    }
