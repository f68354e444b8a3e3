"""C4 rules (Raffel et al. 2020, section 2.2, and the reference code `c4_utils.py`, with datatrove's values):
line cleaning (`clean_lines`, softened for unterminated lines: navigation), the page rules (`C4QualityFilter`)
and our boilerplate share (`BoilerplateFilter`). Where a constant is ours, its docstring says so.

Pure module (no Django, no torch). No regular expression here can backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice

from generation.corpus.filters.base import ANALYSIS_CHARS, ELLIPSES, LETTER, MAX_DOC_CHARS
from generation.corpus.filters.gopher import GOPHER_MIN_ALPHA_WORDS_RATIO

C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
"""C4 keeps only lines ending in a terminal punctuation mark (period, question or exclamation mark, quote)."""

C4_ELLIPSIS = ELLIPSES
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

_MD_HEADING = re.compile(r"#{1,6}\s+\S")
_UNDERLINE = re.compile(r"([=*\-~^#+])\1{2,}")
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]++[\"'”’)\]]*+(?=\s|$)")  # linear: one try per run of marks

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
    if not terminated and sum(1 for t in tokens if LETTER.search(t)) < GOPHER_MIN_ALPHA_WORDS_RATIO * len(tokens):
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
