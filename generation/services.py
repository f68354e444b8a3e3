"""Writes on corpora, models and jobs.

Jobs: the row is the truth; RQ only carries its id. A worker may run a job only after `job_claim` won the
row with a conditional UPDATE, so a job delivered twice runs once.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from generation import queue
from generation.models import Corpus, Job, ModelVersion, Round, Segment
from generation.pipeline.text import content_hash


@transaction.atomic
def job_create(
    *,
    stage: str,
    queue_name: str = "default",
    round: Round | None = None,
    chunk: int = 0,
    payload: dict[str, Any] | None = None,
    total: int = 0,
) -> Job:
    """Create a job row and enqueue it once the transaction commits."""
    job = Job.objects.create(
        stage=stage,
        queue=queue_name,
        round=round,
        chunk=chunk,
        payload=payload or {},
        progress_total=total,
    )
    queue.enqueue_job(job)
    return job


def job_claim(*, job_id: int, worker: str) -> Job | None:
    """Move a queued job to running for `worker`; None if someone else got it (or it is not queued)."""
    now = timezone.now()
    won = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        error="",
        permanent=False,
    )
    return Job.objects.get(pk=job_id) if won else None


def job_progress(*, job: Job, done: int, total: int | None = None) -> None:
    """Record progress and beat the heartbeat (cheap: one UPDATE on the job's own row)."""
    fields: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
    if total is not None:
        fields["progress_total"] = total
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(**fields)
    job.progress_done = done
    if total is not None:
        job.progress_total = total


def job_succeed(*, job: Job, result: dict[str, Any] | None = None) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        status=Job.Status.DONE,
        result=result or {},
        finished_at=now,
        heartbeat_at=now,
        progress_done=F("progress_total"),
    )


def job_fail(*, job: Job, error: BaseException | str, permanent: bool = False) -> None:
    """Store the error on the row (shown in the UI); a permanent error is not worth retrying."""
    if isinstance(error, BaseException):
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        text += "\n\n" + "".join(traceback.format_tb(error.__traceback__)[-5:])
    else:
        text = error
    now = timezone.now()
    Job.objects.filter(pk=job.pk).exclude(status=Job.Status.DONE).update(
        status=Job.Status.FAILED, error=text[:20000], permanent=permanent, finished_at=now, heartbeat_at=now
    )


@transaction.atomic
def job_retry(*, job: Job) -> bool:
    """Put a failed or cancelled job back on its queue. False if it is not in a retryable state."""
    updated = Job.objects.filter(pk=job.pk, status__in=[Job.Status.FAILED, Job.Status.CANCELLED]).update(
        status=Job.Status.QUEUED, error="", permanent=False, finished_at=None, worker=""
    )
    if updated:
        job.refresh_from_db()
        queue.enqueue_job(job)
    return bool(updated)


def job_cancel(*, job: Job) -> bool:
    """Cancel a job that has not finished; a running job sees it at its next progress report."""
    updated = Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now()
    )
    return bool(updated)


def model_register_base(*, path: Path, name: str) -> tuple[ModelVersion, bool]:
    """Register a local model directory as a base ModelVersion (idempotent on its path)."""
    return ModelVersion.objects.get_or_create(role=ModelVersion.Role.BASE, path=str(path), defaults={"name": name})


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
