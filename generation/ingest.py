"""Corpus ingestion: files → documents → cleaned, deduplicated, decontaminated passages → Segments.

The I/O half of generation/corpus/ (readers, filters and dedup are pure). One import is one transaction: a bad
file anywhere (ReadError names the file and line) rolls the whole import back, so nothing half-imported stays.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from generation import services
from generation.corpus.dedup import Decontaminator, ExactDuplicateFilter, NearDuplicateFilter
from generation.corpus.filters import clean_document
from generation.corpus.readers import ReadStats, read_documents
from generation.models import Corpus

EXAMPLES_PER_REASON = 3
BATCH = 1000


@dataclass
class IngestReport:
    files: list[str] = field(default_factory=list)
    documents: int = 0
    passages: int = 0
    added: int = 0
    drops: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def note(self, reason: str, text: str) -> None:
        self.drops[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(text[:400])

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "documents": self.documents,
            "passages": self.passages,
            "added": self.added,
            "drops": dict(self.drops.most_common()),
            "examples": self.examples,
            "read": self.read,
            "seconds": round(self.seconds, 2),
            "docs_per_s": round(self.documents / self.seconds, 1) if self.seconds else None,
        }


def ingest_files(
    *,
    corpus: Corpus,
    paths: Iterable[str | Path],
    min_chars: int = 600,
    max_chars: int = 3000,
    eval_prompts: list[str] | None = None,
    near_threshold: float = 0.8,
    on_document: Callable[[int], None] | None = None,
) -> IngestReport:
    """Read, clean and deduplicate `paths` into `corpus`, all or nothing. Per-filter drop counts and a few
    examples of each are stored on the corpus (`stats["imports"]`) so a curator can see why text was dropped."""
    from generation.rounds import default_eval_prompts

    report = IngestReport(files=[str(p) for p in paths])
    stats = ReadStats()
    exact = ExactDuplicateFilter(corpus.segments.values_list("content_hash", flat=True).iterator())
    near = NearDuplicateFilter(threshold=near_threshold)
    decontaminate = Decontaminator(eval_prompts if eval_prompts is not None else default_eval_prompts())
    started = time.monotonic()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        added, _ = services.corpus_add_passages(corpus=corpus, passages=batch)
        report.added += added
        batch.clear()

    with transaction.atomic():
        for path in report.files:
            for doc in read_documents(path, stats=stats):
                report.documents += 1
                passages, counts = clean_document(doc.text, min_chars=min_chars, max_chars=max_chars)
                for reason, n in counts.items():
                    if passages or reason.startswith("passage:"):
                        report.drops[reason] += n
                    else:  # the whole document was dropped: keep it as an example of the reason
                        report.note(reason, doc.text)
                for passage in passages:
                    report.passages += 1
                    if exact.seen(passage):
                        report.note("exact_duplicate", passage)
                    elif near.seen(passage):
                        report.note("near_duplicate", passage)
                    elif decontaminate.check(passage):
                        report.note("eval_overlap", passage)
                    else:
                        batch.append(
                            {
                                "text": passage,
                                "source_id": doc.source_id,
                                "url": doc.url,
                                "meta": {"file": Path(path).name},
                            }
                        )
                        if len(batch) >= BATCH:
                            flush()
                if on_document:
                    on_document(report.documents)
        flush()
        report.seconds = time.monotonic() - started
        report.read = stats.as_dict()
        fresh = Corpus.objects.select_for_update().get(pk=corpus.pk)
        fresh.sources = [*fresh.sources, *({"file": f} for f in report.files)]
        fresh.stats = {**fresh.stats, "imports": [*fresh.stats.get("imports", []), report.as_dict()]}
        fresh.save(update_fields=["sources", "stats"])
    return report
