"""Corpora: uploads, and ingestion: files → documents → cleaned, deduplicated, decontaminated passages → Segments.

The I/O half of generation/corpus/ (readers, filters and dedup are pure). One import is one transaction: a bad
file anywhere (ReadError names the file and line) rolls the whole import back, so nothing half-imported stays.
`corpus_import` creates a new corpus inside that transaction too, so a refused import leaves no empty corpus.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from generation.corpus.dedup import (
    Decontaminator,
    Known,
    Pending,
    dedup_batch,
    lsh_params,
    pending,
    sign_new,
)
from generation.corpus.filters import clean_document
from generation.corpus.readers import ReadError, ReadStats, corpus_files, read_documents
from generation.corpus.text import content_hash
from generation.data import builtin_eval_prompts
from generation.models import Corpus, Job, Segment
from generation.services.jobs import job_create

EXAMPLES_PER_REASON = 3
BATCH = 1000


class NothingImported(Exception):
    """An import that would leave its corpus without a single segment (every passage dropped): refused whole."""


# What an import answers when it is refused; nothing of it stays in the database.
REFUSED = (ReadError, NothingImported)


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

    def skipped(self) -> str:
        """What the readers skipped, as "1 empty, 3 other_files" ('' when nothing)."""
        counts = {k.removeprefix("skipped_"): n for k, n in self.read.items() if k.startswith("skipped_") and n}
        return ", ".join(f"{n} {what}" for what, n in counts.items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "documents": self.documents,
            "passages": self.passages,
            "added": self.added,
            "drops": dict(self.drops.most_common()),
            "examples": self.examples,
            "read": self.read,
            "skipped": self.skipped(),
            "seconds": round(self.seconds, 2),
            "docs_per_s": round(self.documents / self.seconds, 1) if self.seconds else None,
        }


class CorpusIndex:
    """The dedup state of one corpus, in PostgreSQL: content hashes (Segment's unique index) and MinHash band
    keys (SegmentBand). `known` fetches what a batch could duplicate (for `dedup_batch` to decide), `insert`
    stores what was kept: only the batch is held in memory."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus

    def known_hashes(self, items: list[Pending]) -> set[str]:
        hashes = [item.content_hash for item in items]
        rows = Segment.objects.filter(corpus=self.corpus, content_hash__in=hashes).values_list(
            "content_hash", flat=True
        )
        return set(rows)

    def known(self, items: list[Pending], hashes: set[str]) -> Known:
        """What the corpus holds that `items` could duplicate: `hashes` (from `known_hashes`), the segments
        sharing a band key with an item, and those segments' signatures."""
        known = Known(hashes=hashes)
        keys = sorted({k for item in items for k in item.band_keys})
        with connection.cursor() as cur:
            cur.execute(
                "SELECT key, segment_id FROM generation_segmentband WHERE corpus_id = %s AND key = ANY(%s)",
                [self.corpus.pk, keys],
            )
            for key, segment_id in cur.fetchall():
                known.buckets.setdefault(key, []).append(segment_id)
        ids = {sid for sids in known.buckets.values() for sid in sids}
        for pk, raw in Segment.objects.filter(pk__in=ids).exclude(minhash=None).values_list("pk", "minhash"):
            if raw is not None:  # excluded by the query; the column is nullable
                known.signatures[pk] = np.frombuffer(bytes(raw), dtype="<u4")
        return known

    def insert(self, rows: list[tuple[dict[str, Any], Pending]]) -> int:
        """INSERT the kept passages and their band keys; returns how many."""
        segments = Segment.objects.bulk_create(
            [
                Segment(
                    corpus=self.corpus,
                    text=passage["text"],
                    content_hash=item.content_hash,
                    source_id=str(passage.get("source_id", ""))[:500],
                    url=str(passage.get("url", ""))[:2000],
                    meta=passage.get("meta", {}),
                    char_count=len(passage["text"]),
                    minhash=None if item.signature is None else item.signature.tobytes(),
                )
                for passage, item in rows
            ]
        )
        segment_ids, keys = [], []
        for segment, (_, item) in zip(segments, rows, strict=True):
            segment_ids.extend([segment.pk] * len(item.band_keys))
            keys.extend(item.band_keys)
        if keys:
            with connection.cursor() as cur:
                cur.execute(
                    "INSERT INTO generation_segmentband (corpus_id, segment_id, key) "
                    "SELECT %s, unnest(%s::bigint[]), unnest(%s::bigint[])",
                    [self.corpus.pk, segment_ids, keys],
                )
        return len(segments)


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
    """Read, clean and deduplicate `paths` into `corpus`, all or nothing. A path may be a directory: its corpus
    files are read recursively in sorted order (`corpus_files`), each named by its path inside it. Per-filter drop
    counts and a few examples of each are stored on the corpus (`stats["imports"]`) so a curator can see why text
    was dropped, with what the readers skipped (`read`: pages without text, other files in a directory, …).

    Passages are deduplicated in batches against what the corpus already holds (earlier imports included)
    and against each other, through PostgreSQL (`CorpusIndex`): memory stays flat however large the files.
    Imports into one corpus run one at a time (the corpus row is locked for the import's transaction). Band
    keys depend on the banding `near_threshold` chooses: an import at another threshold finds near-duplicates
    among its own passages, and only exact ones among earlier imports."""
    report = IngestReport(files=[str(p) for p in paths])
    stats = ReadStats()
    params = lsh_params(near_threshold)
    decontaminate = Decontaminator(eval_prompts if eval_prompts is not None else builtin_eval_prompts())
    started = time.monotonic()
    batch: list[tuple[dict[str, Any], Pending]] = []

    with transaction.atomic():
        Corpus.objects.select_for_update().filter(pk=corpus.pk).first()
        index = CorpusIndex(corpus)

        def flush() -> None:
            items = [item for _, item in batch]
            hashes = index.known_hashes(items)
            sign_new(items, [row["text"] for row, _ in batch], hashes, params)
            decisions = dedup_batch(
                items, index.known(items, hashes), params, check=lambda i: decontaminate.check(batch[i][0]["text"])
            )
            keep = []
            for row, (reason, _earlier) in zip(batch, decisions, strict=True):
                if reason:
                    report.note(reason, row[0]["text"])
                else:
                    keep.append(row)
            report.added += index.insert(keep) if keep else 0
            batch.clear()

        files = (pair for given in report.files for pair in corpus_files(given, stats=stats))
        for path, name in files:
            for doc in read_documents(path, name=name, stats=stats):
                report.documents += 1
                passages, counts = clean_document(doc.text, min_chars=min_chars, max_chars=max_chars)
                for reason, n in counts.items():
                    if passages or reason.startswith("passage:"):
                        report.drops[reason] += n
                    else:  # the whole document was dropped: keep it as an example of the reason
                        report.note(reason, doc.text)
                for passage in passages:
                    report.passages += 1
                    meta = {
                        "text": passage,
                        "source_id": doc.source_id,
                        "url": doc.url,
                        "meta": {"file": name},
                    }
                    batch.append((meta, pending(passage, params, sign=False)))
                    if len(batch) >= BATCH:
                        flush()
                if on_document:
                    on_document(report.documents)
        if batch:
            flush()
        report.seconds = time.monotonic() - started
        report.read = stats.as_dict()
        fresh = Corpus.objects.select_for_update().get(pk=corpus.pk)
        fresh.sources = [*fresh.sources, *({"file": f} for f in report.files)]
        fresh.stats = {**fresh.stats, "imports": [*fresh.stats.get("imports", []), report.as_dict()]}
        fresh.save(update_fields=["sources", "stats"])
    return report


def corpus_import(
    *, name: str, paths: Iterable[str | Path], user: Any = None, **options: Any
) -> tuple[Corpus, IngestReport]:
    """Import `paths` into the corpus `name`, creating it in the same transaction: a refused import (a bad file,
    or no passage kept in a corpus that has none) raises one of `REFUSED` and leaves no corpus row, no segment
    and no band key behind. `options` go to `ingest_files`."""
    with transaction.atomic():
        corpus, _ = Corpus.objects.get_or_create(name=name, defaults={"created_by": user})
        report = ingest_files(corpus=corpus, paths=paths, **options)
        if not corpus.segments.exists():
            drops = ", ".join(f"{k} {v}" for k, v in report.drops.most_common()) or "no documents"
            raise NothingImported(
                f"no passage of {report.documents} documents was kept ({drops}), so {name} would be empty"
            )
    return corpus, report


@transaction.atomic
def corpus_add_passages(
    *, corpus: Corpus, passages: Iterable[dict[str, Any]], batch_size: int = 1000
) -> tuple[int, int]:
    """Add passages ({"text", "source_id"?, "url"?, "meta"?}) to a corpus. Exact duplicates (same normalised
    hash within the corpus) are skipped by the database's unique constraint. Returns (added, duplicates)."""
    before = Segment.objects.filter(corpus=corpus).count()
    seen = 0
    batch: list[Segment] = []
    for passage in passages:
        text = passage["text"].strip()
        if not text:
            continue
        seen += 1
        batch.append(
            Segment(
                corpus=corpus,
                text=text,
                content_hash=content_hash(text),
                source_id=str(passage.get("source_id", ""))[:500],
                url=str(passage.get("url", ""))[:2000],
                meta=passage.get("meta", {}),
                char_count=len(text),
            )
        )
        if len(batch) >= batch_size:
            Segment.objects.bulk_create(batch, ignore_conflicts=True)
            batch.clear()
    Segment.objects.bulk_create(batch, ignore_conflicts=True)
    added = Segment.objects.filter(corpus=corpus).count() - before
    return added, seen - added


def corpus_upload(*, name: str, uploads: list[Any], user: Any = None) -> Job:
    """Save uploaded files under the data dir and queue their import into corpus `name`. The corpus is created by
    the import job, in the import's transaction (`corpus_import`): a refused import leaves none."""
    folder = Path(settings.DATA_DIR) / "uploads" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for upload in uploads:
        target = folder / Path(upload.name).name
        with target.open("wb") as f:
            for chunk in upload.chunks():
                f.write(chunk)
        paths.append(str(target))
    payload = {"corpus_name": name, "paths": paths, "user_id": getattr(user, "pk", None)}
    return job_create(stage="ingest", queue_name="default", payload=payload)
