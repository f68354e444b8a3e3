"""Plain-text helpers: normalisation, hashing, and splitting documents into self-contained passages.

Pure functions: no Django, no torch. Humpback segmented web pages into self-contained passages; here a
passage is a run of paragraphs under one heading, bounded in length.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator

_WS = re.compile(r"\s+")
_UNDERLINE = re.compile(r"^\s*([=*\-~^#+])\1{2,}\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def normalize(text: str) -> str:
    """Canonical form for exact-duplicate detection: NFKC, case-folded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def content_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


def _reflow(block: str) -> str:
    """Join hard-wrapped prose lines; leave indented blocks (code, grammar) as they are."""
    lines = block.split("\n")
    if any(line.startswith((" ", "\t")) for line in lines):
        return block
    return " ".join(line.strip() for line in lines)


def _blocks(text: str) -> Iterator[tuple[bool, str]]:
    """Yield (is_heading, block) for the paragraphs of `text` (blank-line separated)."""
    for raw in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        block = raw.strip("\n")
        if not block.strip():
            continue
        lines = block.split("\n")
        # A reStructuredText/Markdown-ish heading: "Title" over a line of ===, ***, --- …
        if len(lines) >= 2 and _UNDERLINE.match(lines[1]) and not _UNDERLINE.match(lines[0]):
            yield True, lines[0].strip()
            rest = "\n".join(lines[2:]).strip("\n")
            if rest.strip():
                yield False, _reflow(rest)
        elif len(lines) == 1 and lines[0].lstrip().startswith("#"):
            yield True, lines[0].lstrip("# ").strip()
        else:
            yield False, _reflow(block)


def _split_long(block: str, max_chars: int) -> list[str]:
    """Cut a block longer than max_chars at sentence ends (or hard, as a last resort)."""
    if len(block) <= max_chars:
        return [block]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(block):
        while len(sentence) > max_chars:  # one enormous "sentence": cut hard
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces


def split_passages(text: str, *, min_chars: int = 300, max_chars: int = 2000) -> list[str]:
    """Split a document into passages of min_chars..max_chars, each starting at a heading or paragraph.

    A heading starts a new passage and stays with the text under it. A passage shorter than min_chars is
    dropped rather than glued to another section (it would no longer be self-contained).
    """
    if min_chars < 0 or max_chars <= 0 or min_chars > max_chars:
        raise ValueError("need 0 <= min_chars <= max_chars and max_chars > 0")
    passages: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if not current:
            return
        passage = "\n\n".join(current).strip()
        current.clear()
        if len(passage) >= min_chars:
            passages.append(passage)

    for is_heading, block in _blocks(text):
        if is_heading:
            flush()
            current.append(block)
            continue
        for piece in _split_long(block, max_chars):
            size = sum(len(p) + 2 for p in current)
            if current and size + len(piece) > max_chars:
                flush()
            current.append(piece)
    flush()
    return passages
