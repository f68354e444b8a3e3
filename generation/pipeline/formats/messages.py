"""TRL's conversational format (messages_jsonl): {"messages": [{"role", "content"}, …], "source"?, "tags"?}, one
per line. On import the first user → assistant turn pair is the example and a leading system message is
ignored; on export the system prompt of the example's source leads. Pure: no Django.
"""

from __future__ import annotations

from typing import Any

from generation.pipeline.formats.base import Problems, Record, json_type, row
from generation.pipeline.formats.json_io import jsonl_objects
from generation.pipeline.training import SYSTEM_PROMPTS


def _messages(obj: dict[str, Any], line: int, fmt: str, default_source: str, problems: list) -> dict | None:
    rec = Record(obj, line, problems)
    source, tags = rec.source(default_source), rec.tags()
    messages = obj.get("messages")
    if messages is None:
        rec.problem("'messages' is missing")
        return None
    if not isinstance(messages, list):
        rec.problem(f"'messages' must be an array, got {json_type(messages)}")
        return None
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
        return None
    turn = next((i for i in range(len(roles) - 1) if roles[i] == "user" and roles[i + 1] == "assistant"), None)
    if turn is None:
        rec.problem("no user message followed by an assistant message")
        return None
    instruction = Record(messages[turn], line, problems, f"messages[{turn}] (user): ").text("content")
    response = Record(messages[turn + 1], line, problems, f"messages[{turn + 1}] (assistant): ").text("content")
    if not (instruction and response):
        return None
    return row(instruction, response, source, tags, fmt, line)


def parse_jsonl(text: str, fmt: str, default_source: str, problems: Problems) -> list[dict[str, Any]]:
    return [
        r
        for line, obj in jsonl_objects(text, problems)
        if (r := _messages(obj, line, fmt, default_source, problems)) is not None
    ]


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
