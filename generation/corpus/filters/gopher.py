"""Gopher rules (Rae et al. 2021, appendix A: MassiveWeb quality filters; repetition thresholds in Table A1),
with the values of datatrove's `GopherQualityFilter` and `GopherRepetitionFilter`.

Pure module (no Django, no torch). No regular expression here can backtrack.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

from generation.corpus.filters.base import ANALYSIS_CHARS, ELLIPSES, LETTER

GOPHER_MIN_WORDS = 50
GOPHER_MAX_WORDS = 100_000
"""Gopher keeps documents of 50 to 100,000 words."""

GOPHER_MIN_AVG_WORD_LENGTH = 3
GOPHER_MAX_AVG_WORD_LENGTH = 10
"""Gopher keeps documents whose mean word length is 3 to 10 characters."""

GOPHER_MAX_SYMBOL_WORD_RATIO = 0.1
"""Gopher drops documents with a symbol-to-word ratio over 0.1 for the hash symbol or the ellipsis."""

GOPHER_MAX_BULLET_LINES_RATIO = 0.9
"""Gopher drops documents with more than 90% of lines starting with a bullet point ..."""

GOPHER_MAX_ELLIPSIS_LINES_RATIO = 0.3
"""... or more than 30% of lines ending with an ellipsis."""

GOPHER_MIN_ALPHA_WORDS_RATIO = 0.8
"""Gopher requires 80% of words to contain at least one alphabetic character."""

GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
GOPHER_MIN_STOP_WORDS = 2
"""Gopher requires at least two of these English stop words (counted as occurrences, as datatrove does;
compared case-insensitively here)."""

GOPHER_DUP_LINE_FRACTION = 0.3
GOPHER_DUP_PARA_FRACTION = 0.3
GOPHER_DUP_LINE_CHAR_FRACTION = 0.2
GOPHER_DUP_PARA_CHAR_FRACTION = 0.2
"""Gopher Table A1: share of lines/paragraphs that repeat an earlier one, and of characters in them."""

GOPHER_TOP_NGRAM_CHAR_FRACTION = ((2, 0.20), (3, 0.18), (4, 0.16))
"""Gopher Table A1: share of characters in the most frequent n-gram, for n = 2, 3, 4."""

GOPHER_DUP_NGRAM_CHAR_FRACTION = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
"""Gopher Table A1: share of characters covered by repeated n-grams, for n = 5 … 10."""

BULLETS = ("•", "●", "○", "◦", "▪", "‣", "∙", "·", "-", "*", "–", "—", "→", "✓", "✔")

_PUNCT = string.punctuation + "«»“”‘’„…–—·•"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class GopherQualityFilter:
    """Gopher's quality rules on words, symbols and lines.

    Reasons: "too_few_words", "too_many_words", "avg_word_length", "symbol_ratio", "bullet_lines",
    "ellipsis_lines", "no_alpha_words", "stop_words". Words are whitespace tokens; a token of punctuation
    only is a symbol, not a word, and punctuation is stripped before measuring word length.
    """

    name = "gopher_quality"

    def __init__(
        self,
        *,
        min_words: int = GOPHER_MIN_WORDS,
        max_words: int = GOPHER_MAX_WORDS,
        min_avg_word_length: float = GOPHER_MIN_AVG_WORD_LENGTH,
        max_avg_word_length: float = GOPHER_MAX_AVG_WORD_LENGTH,
        max_symbol_word_ratio: float = GOPHER_MAX_SYMBOL_WORD_RATIO,
        max_bullet_lines_ratio: float = GOPHER_MAX_BULLET_LINES_RATIO,
        max_ellipsis_lines_ratio: float = GOPHER_MAX_ELLIPSIS_LINES_RATIO,
        min_alpha_words_ratio: float = GOPHER_MIN_ALPHA_WORDS_RATIO,
        min_stop_words: int = GOPHER_MIN_STOP_WORDS,
        stop_words: Iterable[str] = GOPHER_STOP_WORDS,
    ) -> None:
        self.min_words = min_words
        self.max_words = max_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.min_alpha_words_ratio = min_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = frozenset(w.lower() for w in stop_words)

    def check(self, text: str) -> str | None:
        sample = text[:ANALYSIS_CHARS]
        tokens = sample.split()
        words = [w for w in (t.strip(_PUNCT) for t in tokens) if w]
        if not words:
            return "too_few_words"
        n_words = len(words)
        estimated = n_words * len(text) / len(sample)
        if estimated < self.min_words:
            return "too_few_words"
        if estimated > self.max_words:
            return "too_many_words"
        avg = sum(map(len, words)) / n_words
        if not self.min_avg_word_length <= avg <= self.max_avg_word_length:
            return "avg_word_length"
        hashes = sample.count("#")
        ellipses = sample.count("...") + sample.count("…")
        if max(hashes, ellipses) / n_words > self.max_symbol_word_ratio:
            return "symbol_ratio"
        lines = [line.strip() for line in sample.splitlines() if line.strip()]
        if lines:
            bullets = sum(1 for line in lines if line.startswith(BULLETS))
            if bullets / len(lines) > self.max_bullet_lines_ratio:
                return "bullet_lines"
            ellipsis_lines = sum(1 for line in lines if line.endswith(ELLIPSES))
            if ellipsis_lines / len(lines) > self.max_ellipsis_lines_ratio:
                return "ellipsis_lines"
        alpha = sum(1 for t in tokens if LETTER.search(t))
        if alpha / len(tokens) < self.min_alpha_words_ratio:
            return "no_alpha_words"
        stops = 0
        for w in words:
            if w.lower() in self.stop_words:
                stops += 1
                if stops >= self.min_stop_words:
                    break
        if stops < self.min_stop_words:
            return "stop_words"
        return None


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items equal to an earlier one, characters in them)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def top_ngram_char_fraction(words: list[str], n: int) -> float:
    """Share of word characters in the most frequent word n-gram (its length times its count)."""
    total = sum(map(len, words))
    if len(words) < n or not total:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, count = counts.most_common(1)[0]
    return sum(map(len, gram)) * count / total


def dup_ngram_char_fraction(words: list[str], n: int) -> float:
    """Share of word characters covered by word n-grams that occurred earlier (each character counted once)."""
    total = sum(map(len, words))
    if len(words) < n or not total:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = bytearray(len(words))
    for i, gram in enumerate(zip(*(words[i:] for i in range(n)), strict=False)):
        if gram in seen:
            covered[i : i + n] = b"\x01" * n
        else:
            seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c) / total


class GopherRepetitionFilter:
    """Gopher's repetition rules (Table A1).

    Reasons: "dup_para_fraction", "dup_para_chars", "dup_line_fraction", "dup_line_chars", "top_2gram",
    "top_3gram", "top_4gram", "dup_5gram" … "dup_10gram". Blank lines are not lines here (datatrove counts
    them, which flags any document with more than a few paragraph breaks).
    """

    name = "gopher_repetition"

    def __init__(
        self,
        *,
        dup_line_fraction: float = GOPHER_DUP_LINE_FRACTION,
        dup_para_fraction: float = GOPHER_DUP_PARA_FRACTION,
        dup_line_char_fraction: float = GOPHER_DUP_LINE_CHAR_FRACTION,
        dup_para_char_fraction: float = GOPHER_DUP_PARA_CHAR_FRACTION,
        top_ngrams: tuple[tuple[int, float], ...] = GOPHER_TOP_NGRAM_CHAR_FRACTION,
        dup_ngrams: tuple[tuple[int, float], ...] = GOPHER_DUP_NGRAM_CHAR_FRACTION,
    ) -> None:
        self.dup_line_fraction = dup_line_fraction
        self.dup_para_fraction = dup_para_fraction
        self.dup_line_char_fraction = dup_line_char_fraction
        self.dup_para_char_fraction = dup_para_char_fraction
        self.top_ngrams = top_ngrams
        self.dup_ngrams = dup_ngrams

    def check(self, text: str) -> str | None:
        sample = text[:ANALYSIS_CHARS].strip()
        if not sample:
            return None
        size = len(sample)
        paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(sample) if p.strip()]
        dups, chars = _duplicates(paragraphs)
        if dups / len(paragraphs) > self.dup_para_fraction:
            return "dup_para_fraction"
        if chars / size > self.dup_para_char_fraction:
            return "dup_para_chars"
        lines = [line.strip() for line in sample.splitlines() if line.strip()]
        dups, chars = _duplicates(lines)
        if dups / len(lines) > self.dup_line_fraction:
            return "dup_line_fraction"
        if chars / size > self.dup_line_char_fraction:
            return "dup_line_chars"
        words = sample.lower().split()
        for n, limit in self.top_ngrams:
            if top_ngram_char_fraction(words, n) > limit:
                return f"top_{n}gram"
        for n, limit in self.dup_ngrams:
            if dup_ngram_char_fraction(words, n) > limit:
                return f"dup_{n}gram"
        return None
