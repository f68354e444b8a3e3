"""Quality filters for web text: C4 line cleaning, Gopher quality and repetition rules, passage checks.

Pure functions and small stateless classes (no Django, no torch), in the spirit of datatrove's
`C4QualityFilter`, `GopherQualityFilter` and `GopherRepetitionFilter`. Every filter has a `name` and
`check(text) -> str | None`: None keeps the text, a short reason string drops it. Reasons are unique across
filters, so counting them says which rule dropped what.

- base.py: the work bounds, the `Filter` protocol, `first_reason`, `LengthFilter` and `UppercaseFilter` (ours)
- c4.py: C4 line cleaning (`clean_text`, `clean_lines`), `C4QualityFilter`, `BoilerplateFilter` (ours)
- gopher.py: `GopherQualityFilter`, `GopherRepetitionFilter`
- here: the order they run in (`DOCUMENT_FILTERS`, `PASSAGE_FILTERS`) and `clean_document`

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

from collections import Counter

from generation.corpus.filters.base import (
    ANALYSIS_CHARS,
    MAX_DOC_CHARS,
    Filter,
    LengthFilter,
    UppercaseFilter,
    first_reason,
)
from generation.corpus.filters.c4 import BoilerplateFilter, C4QualityFilter, CleanedText, clean_lines, clean_text
from generation.corpus.filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from generation.corpus.text import split_passages

__all__ = [
    "ANALYSIS_CHARS",
    "DOCUMENT_FILTERS",
    "MAX_DOC_CHARS",
    "PASSAGE_FILTERS",
    "PASSAGE_PREFIX",
    "BoilerplateFilter",
    "C4QualityFilter",
    "CleanedText",
    "Filter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "LengthFilter",
    "UppercaseFilter",
    "clean_document",
    "clean_lines",
    "clean_text",
    "first_reason",
]

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
