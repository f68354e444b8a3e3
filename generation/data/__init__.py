"""Data shipped with the app: the built-in evaluation prompts."""

from __future__ import annotations

from pathlib import Path

from generation.pipeline.evaluation import parse_prompts_jsonl

EVAL_PROMPTS_FILE = Path(__file__).parent / "eval_prompts.jsonl"


def builtin_eval_prompts() -> list[str]:
    """The built-in evaluation prompts (frozen into a round's config at launch; also kept out of every corpus)."""
    return parse_prompts_jsonl(EVAL_PROMPTS_FILE.read_text(encoding="utf-8"))
