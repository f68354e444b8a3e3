"""Writes on corpora, models and jobs.

Jobs: the row is the truth; RQ only carries its id. A worker may run a job only after `job_claim` won the
row with a conditional UPDATE, so a job delivered twice runs once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_rq
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import SeedExample, Source
from generation import queue
from generation.backends.registry import fake_backend_allowed
from generation.models import Corpus, Job, ModelVersion, Round, Segment
from generation.pipeline import config as round_config
from generation.pipeline import lifecycle, training
from generation.pipeline.text import content_hash

logger = logging.getLogger(__name__)


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


def _seed_snapshot() -> dict[str, Any]:
    """The seed set S_r as it is now: ids with versions, and a hash of that list."""
    rows = list(SeedExample.objects.filter(is_active=True).order_by("id").values_list("id", "version", "source"))
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    return {"examples": [[i, v, s] for i, v, s in rows], "count": len(rows), "hash": digest}


def _choose_heldout(held: dict[str, Any]) -> list[int]:
    """The human-written seed pairs (source `seed`) no model of the round trains on (pipeline/training.py)."""
    rows = SeedExample.objects.filter(is_active=True, source=Source.SEED).values_list("id", "instruction")
    return training.heldout_split(rows, fraction=held["fraction"], minimum=held["min"], maximum=held["max"])


@transaction.atomic
def round_create(
    *, corpus: Corpus, base_model: ModelVersion, config: dict[str, Any] | None = None, created_by: Any = None
) -> Round:
    """A new round with its config validated, frozen and hashed, and a snapshot of the seed set."""
    frozen = round_config.validate(config, allow_fake_backend=fake_backend_allowed())
    if frozen["evaluation"]["prompts"] is None:
        from generation.rounds import default_eval_prompts

        # Frozen into the config (and its hash) so the evaluation of this round can always be reproduced.
        frozen["evaluation"]["prompts"] = default_eval_prompts()
        frozen["evaluation"]["prompt_set"] = "builtin"
    if frozen["heldout"]["ids"] is None:
        frozen["heldout"]["ids"] = _choose_heldout(frozen["heldout"])
    last = Round.objects.select_for_update().order_by("-number").first()
    previous = Round.objects.filter(state=Round.State.CLOSED).order_by("-number").first()
    return Round.objects.create(
        number=(last.number + 1) if last else 1,
        corpus=corpus,
        base_model=base_model,
        config=frozen,
        config_hash=round_config.config_hash(frozen),
        seed_snapshot=_seed_snapshot(),
        # Round r+1 curates with M_r when there is one (DESIGN.md step 3).
        curation_model=previous.forward_model if previous else None,
        created_by=created_by,
    )


def round_transition(
    *, round: Round, to: str, expected_from: str | Iterable[str] | None = None, **fields: Any
) -> Round:
    """Move `round` to state `to`, with `fields` (started_at, finished_at, error) in the same UPDATE. The only
    writer of `Round.state`.

    One conditional UPDATE: the row moves only if its state, read at write time, is one `to` may be reached
    from (pipeline/lifecycle.py) and, when `expected_from` is given, one of those too. Two workers racing
    cannot both move it, nor one overwrite the other's move. Raises IllegalTransition when the lifecycle
    refuses the move from the row's state, StaleTransition when the move is legal but the round is no longer
    at `expected_from`; the row is left as it was."""
    allowed = lifecycle.sources(to)
    expected = None
    if expected_from is not None:
        expected = frozenset([expected_from] if isinstance(expected_from, str) else expected_from)
        allowed &= expected
    moved = Round.objects.filter(pk=round.pk, state__in=allowed).update(state=to, **fields)
    if not moved:
        current = Round.objects.filter(pk=round.pk).values_list("state", flat=True).first()
        if current is None:
            raise Round.DoesNotExist(f"round {round.number} does not exist")
        lifecycle.check(current, to, number=round.number)
        raise lifecycle.StaleTransition(round.number, current, to, expected or allowed)
    round.state = to
    for name, value in fields.items():
        setattr(round, name, value)
    return round


def jobs_reconcile(*, stale_after: float = 60.0, grace: float = 10.0) -> dict[str, int]:
    """Put work back on the queue that Redis lost or a dead worker dropped. The database decides:
    - running jobs whose heartbeat is older than `stale_after` seconds go back to queued and are re-enqueued;
    - queued jobs older than `grace` seconds whose RQ job is gone (Redis flushed) or ended are re-enqueued.
    A job delivered twice still runs once (job_claim), so re-enqueueing is always safe."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    now = timezone.now()
    requeued_stale = requeued_lost = 0
    stale = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=now - timedelta(seconds=stale_after))
    for job in stale:
        # Conditional on the heartbeat we saw: a job that just beat again is left alone.
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at=job.heartbeat_at).update(
            status=Job.Status.QUEUED,
            worker="",
            error=f"requeued: no heartbeat from {job.worker} since {job.heartbeat_at:%H:%M:%S}",
        ):
            queue.enqueue_job(job)
            requeued_stale += 1
    connection = django_rq.get_connection("default")
    for job in Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=now - timedelta(seconds=grace)):
        try:
            status = RQJob.fetch(job.rq_id, connection=connection).get_status() if job.rq_id else None
        except NoSuchJobError:
            status = None
        if status not in ("queued", "started", "deferred", "scheduled"):
            queue.enqueue_job(job)
            requeued_lost += 1
    if requeued_stale or requeued_lost:
        logger.warning("reconcile: requeued %d stale and %d lost jobs", requeued_stale, requeued_lost)
    return {"stale": requeued_stale, "lost": requeued_lost}


def corpus_upload(*, name: str, uploads: list[Any], user: Any = None) -> Job:
    """Save uploaded files under the data dir and queue their import into corpus `name`. The corpus is created by
    the import job, in the import's transaction (generation.ingest.corpus_import): a refused import leaves none."""
    import uuid

    from django.conf import settings

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
