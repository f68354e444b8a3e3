"""OpenAssistant exports (oasst_jsonl, import only): flat messages ({"message_id", "parent_id", "role", "text",
"rank", "deleted", …}) or message trees ({"message_tree_id", "prompt": {…, "replies": […]}}); each tree gives
its first turn: the root prompter message and its best (rank 0, else first) non-deleted assistant reply.
Pure: no Django.
"""

from __future__ import annotations

from typing import Any

from generation.pipeline.formats.base import Options, Problems, Record, json_type, row
from generation.pipeline.formats.json_io import jsonl_objects


def _oasst_reply(replies: list[tuple[int | None, int, str]]) -> str | None:
    """The best reply of (rank, order, text): rank 0 (the lowest rank) when ranked, else the first."""
    if not replies:
        return None
    ranked = [r for r in replies if r[0] is not None]
    return min(ranked or replies, key=lambda r: (r[0] or 0, r[1]))[2]


def _oasst_message(rec: Record, *roles: str) -> tuple[str, int | None, bool]:
    """Validates one OpenAssistant message with one of `roles`: (text, rank, deleted)."""
    if rec.obj.get("role") not in roles:
        rec.problem(f"'role' must be {' or '.join(map(repr, roles))}, got {rec.obj.get('role')!r}")
    deleted = bool(rec.optional("deleted", bool, "a boolean"))
    rank = rec.optional("rank", int, "an integer")
    text = rec.text("text", required=not deleted)
    return text, rank, deleted


def parse_jsonl(text: str, fmt: str, options: Options, problems: Problems) -> list[dict[str, Any]]:
    default_source = options.default_source
    rows: list[dict[str, Any]] = []
    roots: dict[str, tuple[int, str]] = {}  # message_id -> (line, text) of root prompter messages
    replies: dict[str, list[tuple[int | None, int, str]]] = {}  # parent_id -> [(rank, line, text)]
    seen: set[str] = set()
    for line, obj in jsonl_objects(text, problems):
        if "prompt" in obj:  # a message tree
            prompt = obj["prompt"]
            if not isinstance(prompt, dict):
                problems.append((line, f"'prompt' must be an object, got {json_type(prompt)}"))
                continue
            rec = Record(prompt, line, problems, "prompt: ")
            instruction, _, deleted = _oasst_message(rec, "prompter")
            children = prompt.get("replies") or []
            if not isinstance(children, list):
                rec.problem(f"'replies' must be an array, got {json_type(children)}")
                continue
            candidates = []
            for i, child in enumerate(children):
                if not isinstance(child, dict):
                    rec.problem(f"replies[{i}] must be an object, got {json_type(child)}")
                    continue
                child_rec = Record(child, line, problems, f"prompt: replies[{i}]: ")
                reply, rank, reply_deleted = _oasst_message(child_rec, "assistant")
                if child_rec.ok and not reply_deleted:
                    candidates.append((rank, i, reply))
            response = _oasst_reply(candidates)
            if rec.ok and not deleted and response:
                rows.append(row(instruction, response, default_source, [], fmt, line))
        elif "message_id" in obj:  # one message of a flat export
            rec = Record(obj, line, problems)
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
            rows.append(row(instruction, response, default_source, [], fmt, line))
    rows.sort(key=lambda r: r["provenance"]["line"])
    return rows
