"""Parsing model output. Pure; every parser returns None on output it cannot use, and never raises."""

from __future__ import annotations

import re

from generation.pipeline.prompts import REWRITE_CLOSE, REWRITE_OPEN

_LABEL = re.compile(r"^\s*\**\s*(?:instruction|question|user|prompt|task)\s*\**\s*[:：]\s*\**\s*", re.IGNORECASE)
_SCORE = re.compile(r"score\s*[:：]?\s*\**\s*([1-5])(?:\s*/\s*5)?\b", re.IGNORECASE)
_ENUMERATED = re.compile(r"^(?:\d{1,2}[.)]|[-*•])\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Where a backward model stops writing the instruction and starts answering it (or writing another).
_INSTRUCTION_END = re.compile(r"\n\s*\n|\n\s*(?:\*\*)?(?:answer|response|output)(?:\*\*)?\s*[:：]", re.IGNORECASE)

MIN_INSTRUCTION_CHARS = 8
MAX_INSTRUCTION_CHARS = 1000


def clean_text(text: str) -> str:
    """Remove control characters (PostgreSQL refuses NUL in text) and unpaired surrogates."""
    text = _CONTROL.sub("", text)
    return text.encode("utf-8", errors="replace").decode("utf-8")


def parse_instruction(output: str | None) -> str | None:
    """The instruction a backward model wrote: first non-empty line(s), without a label or wrapping quotes."""
    if not output:
        return None
    text = clean_text(output).strip()
    # Models sometimes go on to answer their own instruction: keep what comes before the answer.
    text = _INSTRUCTION_END.split(text, maxsplit=1)[0]
    text = _LABEL.sub("", text).strip()
    if _ENUMERATED.match(text):  # "1. What is …\n2. …": a list of candidates, keep the first
        text = _ENUMERATED.sub("", text.split("\n", 1)[0])
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”`":
        text = text[1:-1].strip()
    text = text.strip("“”").strip()
    text = " ".join(text.split())
    if not (MIN_INSTRUCTION_CHARS <= len(text) <= MAX_INSTRUCTION_CHARS):
        return None
    if not re.search(r"[A-Za-z]{2}", text):
        return None
    return text


def instruction_was_cut(output: str | None, finished: bool) -> bool:
    """True when generation stopped at max_new_tokens while the instruction itself was still being written
    (nothing after it: no paragraph break, no answer label). A model that went on to answer its own
    instruction and was cut in the answer still wrote a whole instruction."""
    if finished or not output:
        return False
    return len(_INSTRUCTION_END.split(clean_text(output).strip(), maxsplit=1)) == 1


def parse_score(output: str | None) -> int | None:
    """The rating in "… Score: N" (the last one wins), or None."""
    if not output:
        return None
    matches = _SCORE.findall(output)
    return int(matches[-1]) if matches else None


def parse_rationale(output: str | None) -> str:
    """The explanation before the final "Score: N" line (empty when there is none)."""
    if not output:
        return ""
    matches = list(_SCORE.finditer(output))
    text = output[: matches[-1].start()] if matches else output
    return clean_text(text).strip()


def parse_rewrite(output: str | None, *, prefix: str = "") -> str | None:
    """The rewritten answer between <answer> and </answer>; an unclosed tag takes the rest. None if empty.
    `prefix` is what the assistant turn was forced to start with (it is not part of the model's output)."""
    if not output and not prefix:
        return None
    text = clean_text(prefix + (output or ""))
    start = text.find(REWRITE_OPEN)
    if start < 0:
        return None
    body = text[start + len(REWRITE_OPEN) :]
    end = body.find(REWRITE_CLOSE)
    if end >= 0:
        body = body[:end]
    body = body.strip()
    return body or None
