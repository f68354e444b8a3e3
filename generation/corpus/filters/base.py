"""What every filter shares: the work bounds, the `Filter` protocol, `first_reason`, and the two generic
filters that are ours (length bounds, share of capitals).

Pure module (no Django, no torch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

# --------------------------------------------------------------------------------------------- work bounds

MAX_DOC_CHARS = 1_000_000
"""A longer document is dropped as "too_long" before cleaning. Gopher drops documents of more than
100,000 words (`GOPHER_MAX_WORDS`); at about six characters a word with its space that is ~600,000
characters, so this cap loses nothing Gopher would keep. Also the longest line `clean_lines` looks at."""

ANALYSIS_CHARS = 200_000
"""Word, symbol, capital and repetition statistics are computed over this many leading characters at most
(the word count of a longer text is extrapolated from them)."""

MAX_UPPERCASE_RATIO = 0.3
"""Ours (not in C4 or Gopher): share of capitals among letters. English prose has about 3–5%; ALL-CAPS
spam, shouting and letter-spaced OCR run far higher."""

ELLIPSES = ("...", "…")
"""An ellipsis, as three dots or one character: C4 counts a line ending in one as unterminated, Gopher counts
the lines that end in one."""

LETTER = re.compile(r"[^\W\d_]")
"""A letter (any script): C4 line rules and Gopher's alphabetic-word rule look for one in a token."""


class Filter(Protocol):
    """A filter: `check(text)` returns None to keep the text, or a short reason string to drop it."""

    name: str

    def check(self, text: str) -> str | None: ...


def first_reason(text: str, filters: Iterable[Filter]) -> str | None:
    """The reason of the first filter that drops `text`, or None when all keep it."""
    for f in filters:
        reason = f.check(text)
        if reason is not None:
            return reason
    return None


# --------------------------------------------------------------------------------------------- filters


class LengthFilter:
    """Length bounds in characters: "too_short" / "too_long"."""

    name = "length"

    def __init__(self, min_chars: int = 0, max_chars: int = MAX_DOC_CHARS) -> None:
        if min_chars < 0 or max_chars < min_chars:
            raise ValueError("need 0 <= min_chars <= max_chars")
        self.min_chars = min_chars
        self.max_chars = max_chars

    def check(self, text: str) -> str | None:
        if len(text) > self.max_chars:
            return "too_long"
        if len(text.strip()) < self.min_chars:
            return "too_short"
        return None


class UppercaseFilter:
    """Too many capitals among the letters: "uppercase_ratio" (ours, see `MAX_UPPERCASE_RATIO`)."""

    name = "uppercase_ratio"

    def __init__(self, max_ratio: float = MAX_UPPERCASE_RATIO) -> None:
        self.max_ratio = max_ratio

    def check(self, text: str) -> str | None:
        sample = text[:ANALYSIS_CHARS]
        letters = sum(map(str.isalpha, sample))
        if letters and sum(map(str.isupper, sample)) / letters > self.max_ratio:
            return "uppercase_ratio"
        return None
