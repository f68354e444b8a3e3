"""Quality filters for web text: C4 line cleaning, Gopher quality and repetition rules, passage checks.

Pure functions and small stateless classes (no Django, no torch), in the spirit of datatrove's
`C4QualityFilter`, `GopherQualityFilter` and `GopherRepetitionFilter`. Every filter has a `name` and
`check(text) -> str | None`: None keeps the text, a short reason string drops it. Reasons are unique across
filters, so counting them says which rule dropped what.

Sources of the thresholds:
- C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
  Transformer" (JMLR), section 2.2, and its reference code (tensorflow_datasets `c4_utils.py`), with the values
  datatrove's `C4QualityFilter` uses.
- Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher",
  appendix A (MassiveWeb quality filters; repetition thresholds in Table A1), with the values of datatrove's
  `GopherQualityFilter` and `GopherRepetitionFilter`.
- Where a constant is ours (navigation lines, code dumps, capitals, boilerplate share), its docstring says so.

Work per document is bounded: statistics are taken over the first `ANALYSIS_CHARS` characters, and
`clean_document` drops a document longer than `MAX_DOC_CHARS` before any per-line work, so a 50 MB
single-line "document" costs a length check. No regular expression here can backtrack.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from generation.corpus.text import split_passages

# --------------------------------------------------------------------------------------------- work bounds

MAX_DOC_CHARS = 1_000_000
"""A longer document is dropped as "too_long" before cleaning. Gopher drops documents of more than
100,000 words (`GOPHER_MAX_WORDS`); at about six characters a word with its space that is ~600,000
characters, so this cap loses nothing Gopher would keep. Also the longest line `clean_lines` looks at."""

ANALYSIS_CHARS = 200_000
"""Word, symbol, capital and repetition statistics are computed over this many leading characters at most
(the word count of a longer text is extrapolated from them)."""

# --------------------------------------------------------------------------------------------- C4 rules

C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
"""C4 keeps only lines ending in a terminal punctuation mark (period, question or exclamation mark, quote)."""

C4_ELLIPSIS = ("...", "…")
"""A line ending in an ellipsis counts as unterminated (C4 reference code)."""

C4_MIN_WORDS_PER_LINE = 3
"""C4 keeps only lines of at least 3 words (value of the reference code and datatrove)."""

C4_MAX_WORD_LENGTH = 1000
"""C4 reference code drops lines with a "word" longer than 1,000 characters."""

C4_MIN_SENTENCES = 5
"""C4 drops pages with fewer than 5 sentences after line cleaning (value of the reference code and
datatrove)."""

C4_POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
"""C4 reference code drops lines containing any of these (lower-cased); it also drops lines mentioning
"javascript" (`C4_JAVASCRIPT`)."""

C4_JAVASCRIPT = "javascript"

C4_LOREM_IPSUM = "lorem ipsum"
"""C4 drops a whole page where "lorem ipsum" appears (placeholder text)."""

C4_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
"""Wikipedia-style citation markers, removed from lines (C4 reference code)."""

NAV_LINE_MAX_WORDS = 10
"""Ours, softening C4: C4 drops every line without terminal punctuation; we drop such a line only when it
is shorter than this many words (menus, breadcrumbs, buttons, bylines, short headings), and keep longer
unterminated lines (list items and captions that carry content) unless fewer than 80% of their words
have a letter (Gopher's word rule, applied to the line: blog archives, tag clouds, price lists).
Markdown and underlined headings are always kept, because `split_passages` starts passages at them."""

MAX_BRACE_DENSITY = 0.01
"""Ours, softening C4 (which drops any page containing "{"): a document is a code/CSS/JSON dump when more
than 1 character in 100 is a curly brace ..."""

MAX_CODE_LINE_FRACTION = 0.2
"""... or when more than 20% of its non-empty lines end like code (`{`, `}`, `;`) or start with `}`.
Prose that mentions a brace once is kept."""

MAX_BOILERPLATE_FRACTION = 0.5
"""Ours: a page of which `clean_lines` removes more than half the text (characters of non-empty lines) is
mostly chrome (menus, headline lists, listings, cookie banners) and is dropped as "boilerplate_lines".
Measured on characters, not lines: on the DCLM raw Common Crawl sample a 60% share of *lines* dropped
pages whose article survived intact beside a long menu. (NeMo Curator's BoilerPlateStringFilter drops a
page at 40% of paragraphs holding policy strings; navigation is far more common, hence the higher bar.)"""

# --------------------------------------------------------------------------------------------- Gopher rules

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

# --------------------------------------------------------------------------------------------- ours

MAX_UPPERCASE_RATIO = 0.3
"""Ours (not in C4 or Gopher): share of capitals among letters. English prose has about 3–5%; ALL-CAPS
spam, shouting and letter-spaced OCR run far higher."""

_PUNCT = string.punctuation + "«»“”‘’„…–—·•"
_MD_HEADING = re.compile(r"#{1,6}\s+\S")
_UNDERLINE = re.compile(r"([=*\-~^#+])\1{2,}")
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]++[\"'”’)\]]*+(?=\s|$)")  # linear: one try per run of marks
_LETTER = re.compile(r"[^\W\d_]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class Filter(Protocol):
    """A filter: `check(text)` returns None to keep the text, or a short reason string to drop it."""

    name: str

    def check(self, text: str) -> str | None: ...


# --------------------------------------------------------------------------------------------- line cleaning


def line_verdict(line: str) -> str | None:
    """Why `clean_lines` removes this line (C4 line rules plus navigation lines), or None to keep it.

    `line` is one line without its newline; headings are handled by `clean_lines`, not here.
    """
    stripped = line.strip()
    if not stripped:
        return None
    if len(stripped) > MAX_DOC_CHARS:
        return "long_line"
    lowered = stripped.lower()
    if C4_JAVASCRIPT in lowered:
        return "javascript"
    if any(p in lowered for p in C4_POLICY_SUBSTRINGS):
        return "policy"
    stripped = C4_CITATION.sub("", stripped).strip()
    n_words = len(stripped.split(None, NAV_LINE_MAX_WORDS))  # capped: never splits a huge line fully
    if n_words < C4_MIN_WORDS_PER_LINE:
        return "short_line"
    terminated = stripped.endswith(C4_END_PUNCTUATION) and not stripped.endswith(C4_ELLIPSIS)
    if not terminated and n_words < NAV_LINE_MAX_WORDS:
        return "navigation"
    tokens = stripped.split()
    if len(stripped) > C4_MAX_WORD_LENGTH and any(len(w) > C4_MAX_WORD_LENGTH for w in tokens):
        return "long_word"
    if not terminated and sum(1 for t in tokens if _LETTER.search(t)) < GOPHER_MIN_ALPHA_WORDS_RATIO * len(tokens):
        return "navigation"  # a long unterminated line of numbers and symbols: archive lists, tag clouds
    return None


@dataclass(frozen=True)
class CleanedText:
    text: str
    lines: int  # non-empty input lines
    removed: int  # of which removed
    chars: int  # characters in the non-empty input lines (stripped)
    removed_chars: int  # of which in removed lines

    @property
    def removed_fraction(self) -> float:
        """Share of the text (characters of non-empty lines) that cleaning removed."""
        return self.removed_chars / self.chars if self.chars else 0.0


def clean_text(text: str) -> CleanedText:
    """`clean_lines` with counts of the non-empty lines seen and removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    n_lines = n_removed = n_chars = removed_chars = 0
    keep_next = False  # the underline of a heading kept on the previous line
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            if out and out[-1]:
                out.append("")
            continue
        n_lines += 1
        n_chars += len(stripped)
        if keep_next:
            keep_next = False
            out.append(line.rstrip())
            continue
        if len(stripped) <= 200 and (_MD_HEADING.match(stripped) or _underlined(lines, i)):
            keep_next = not _MD_HEADING.match(stripped)
            if out and out[-1]:
                out.append("")  # a heading starts a paragraph
            out.append(stripped)
            continue
        if line_verdict(stripped) is not None:
            n_removed += 1
            removed_chars += len(stripped)
            continue
        out.append(C4_CITATION.sub("", line).rstrip())
    text = "\n".join(out).strip()
    return CleanedText(text=text, lines=n_lines, removed=n_removed, chars=n_chars, removed_chars=removed_chars)


def _underlined(lines: list[str], i: int) -> bool:
    """Is line i a reStructuredText-style heading (the next line is a run of =, -, * …)?"""
    if i + 1 >= len(lines) or len(lines[i + 1]) > 200:
        return False
    return _UNDERLINE.fullmatch(lines[i + 1].strip()) is not None


def clean_lines(text: str) -> str:
    """Remove navigation and boilerplate lines (C4 line rules, softened for unterminated lines).

    Removed: lines mentioning "javascript" or a cookie/terms/privacy policy, lines of fewer than 3 words,
    lines without terminal punctuation shorter than `NAV_LINE_MAX_WORDS` words, lines with a word over
    1,000 characters, lines over `MAX_DOC_CHARS`. Citation markers like "[1]" are cut out. Markdown and
    underlined headings are kept, blank lines (paragraph breaks) are kept but never doubled.
    """
    return clean_text(text).text


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


class BoilerplateFilter:
    """Drops a raw page when `clean_lines` would remove most of its text: "boilerplate_lines"."""

    name = "boilerplate_lines"

    def __init__(self, max_fraction: float = MAX_BOILERPLATE_FRACTION) -> None:
        self.max_fraction = max_fraction

    def check_cleaned(self, cleaned: CleanedText) -> str | None:
        return "boilerplate_lines" if cleaned.removed_fraction > self.max_fraction else None

    def check(self, text: str) -> str | None:
        if len(text) > MAX_DOC_CHARS:
            return None  # not this filter's business; LengthFilter drops it
        return self.check_cleaned(clean_text(text))


class C4QualityFilter:
    """C4's page rules: "lorem_ipsum", "curly_braces" (a code dump, softened), "too_few_sentences".

    Meant for text that went through `clean_lines` (C4 applies the page rules to the kept lines).
    """

    name = "c4_quality"

    def __init__(
        self,
        *,
        min_sentences: int = C4_MIN_SENTENCES,
        max_brace_density: float = MAX_BRACE_DENSITY,
        max_code_line_fraction: float = MAX_CODE_LINE_FRACTION,
    ) -> None:
        self.min_sentences = min_sentences
        self.max_brace_density = max_brace_density
        self.max_code_line_fraction = max_code_line_fraction

    def check(self, text: str) -> str | None:
        sample = text[:ANALYSIS_CHARS]
        if C4_LOREM_IPSUM in sample.lower():
            return "lorem_ipsum"
        if is_code_dump(sample, self.max_brace_density, self.max_code_line_fraction):
            return "curly_braces"
        if sum(1 for _ in islice(_SENTENCE_END.finditer(sample), self.min_sentences)) < self.min_sentences:
            return "too_few_sentences"
        return None


def is_code_dump(
    text: str, max_density: float = MAX_BRACE_DENSITY, max_code_lines: float = MAX_CODE_LINE_FRACTION
) -> bool:
    braces = text.count("{") + text.count("}")
    if braces < 2 or not text:
        return False
    if braces / len(text) > max_density:
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    code = sum(1 for line in lines if line.endswith(("{", "}", ";")) or line.startswith("}"))
    return bool(lines) and code / len(lines) > max_code_lines


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
            ellipsis_lines = sum(1 for line in lines if line.endswith(C4_ELLIPSIS))
            if ellipsis_lines / len(lines) > self.max_ellipsis_lines_ratio:
                return "ellipsis_lines"
        alpha = sum(1 for t in tokens if _LETTER.search(t))
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


# --------------------------------------------------------------------------------------------- pipeline

DOCUMENT_FILTERS: tuple[Filter, ...] = (
    C4QualityFilter(),
    GopherQualityFilter(),
    UppercaseFilter(),
    GopherRepetitionFilter(),
)
"""Applied in this order to the cleaned document; the first reason drops it."""

PASSAGE_FILTERS: tuple[Filter, ...] = (
    GopherQualityFilter(max_bullet_lines_ratio=1.0, max_ellipsis_lines_ratio=1.0),
    UppercaseFilter(),
)
"""The light check on each passage (after its length bounds): Gopher's word and symbol rules and the
capitals rule. The line rules are off: `split_passages` reflows a paragraph's lines into one, so a passage
that starts with "- " or ends with "..." would count as 100% bullet or ellipsis lines."""

_BOILERPLATE = BoilerplateFilter()

PASSAGE_PREFIX = "passage:"
"""Drop counts of passages are keyed "passage:<reason>"; counts without the prefix are of documents."""


def first_reason(text: str, filters: Iterable[Filter]) -> str | None:
    """The reason of the first filter that drops `text`, or None when all keep it."""
    for f in filters:
        reason = f.check(text)
        if reason is not None:
            return reason
    return None


def clean_document(text: str, *, min_chars: int = 600, max_chars: int = 3000) -> tuple[list[str], dict[str, int]]:
    """Turn one web document into clean, self-contained passages.

    Steps: drop documents over `MAX_DOC_CHARS` ("too_long") or under `min_chars` ("too_short");
    `clean_lines`; drop pages that were mostly boilerplate ("boilerplate_lines") or became too short to give
    one passage ("too_short"); the document filters (`DOCUMENT_FILTERS`); `split_passages`; per passage
    the length bounds and `PASSAGE_FILTERS`.

    Returns (kept passages, drop counts). A document-level drop counts 1 under its reason; a dropped
    passage counts under "passage:<reason>" (e.g. "passage:too_short" for fragments under `min_chars`).
    """
    counts: Counter[str] = Counter()
    if len(text) > MAX_DOC_CHARS:
        return [], {"too_long": 1}
    if len(text.strip()) < min_chars:
        return [], {"too_short": 1}
    cleaned = clean_text(text)
    reason = _BOILERPLATE.check_cleaned(cleaned)
    if reason is None and len(cleaned.text) < min_chars:
        reason = "too_short"
    if reason is None:
        reason = first_reason(cleaned.text, DOCUMENT_FILTERS)
    if reason is not None:
        return [], {reason: 1}
    bounds = LengthFilter(min_chars, max_chars)
    kept: list[str] = []
    for passage in split_passages(cleaned.text, min_chars=0, max_chars=max_chars):
        reason = bounds.check(passage) or first_reason(passage, PASSAGE_FILTERS)
        if reason is None:
            kept.append(passage)
        else:
            counts[PASSAGE_PREFIX + reason] += 1
    return kept, dict(counts)
