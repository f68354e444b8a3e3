"""The job runtime: a Job row is the truth, RQ only carries its id.

A worker may run a job only after `job_claim` won the row with a conditional UPDATE, so a job delivered twice runs
once. Enqueues happen after the surrounding transaction commits (django-rq's COMMIT_MODE="on_db_commit"), so a
worker never sees a job id whose row it cannot read. `jobs_reconcile` puts back what Redis lost or a dead worker
dropped. The errors a handler raises, the heartbeat and the cancel check live here too.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from datetime import timedelta
from typing import Any

import django_rq
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from generation.models import QUEUES, Job, Round

logger = logging.getLogger(__name__)

#: What RQ calls for every job (a dotted path, so this module never imports the handlers).
ENTRY_POINT = "generation.handlers.run_job"


class StageError(RuntimeError):
    """A stage cannot run (bad state, bad model path); `permanent` says retrying will not help."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


class JobCancelled(Exception):
    """The job's row was cancelled while it ran: stop, write nothing."""


class PermanentJobError(Exception):
    """An error that retrying will not fix (bad input, missing model path): stored with permanent=True."""


def enqueue_job(job: Job) -> str:
    """Send `job` to its RQ queue; returns the RQ id recorded on the row."""
    if job.queue not in QUEUES:
        raise ValueError(f"unknown queue {job.queue!r}; expected one of {QUEUES}")
    rq_id = f"bf-{job.pk}-{uuid.uuid4().hex[:8]}"
    Job.objects.filter(pk=job.pk).update(rq_id=rq_id)
    job.rq_id = rq_id
    django_rq.get_queue(job.queue).enqueue(ENTRY_POINT, job.pk, job_id=rq_id)
    return rq_id


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
    enqueue_job(job)
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


def job_progress(*, job: Job, done: int, total: int | None = None) -> bool:
    """Record progress and beat the heartbeat (cheap: one UPDATE on the job's own row). False when the row is
    not running any more (cancelled meanwhile): nothing was written."""
    fields: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
    if total is not None:
        fields["progress_total"] = total
    running = bool(Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(**fields))
    job.progress_done = done
    if total is not None:
        job.progress_total = total
    return running


#: Seconds between two progress writes while an engine call runs (CallProgress).
PROGRESS_INTERVAL = 2.0


class CallProgress:
    """A job's progress while long engine calls run, fed by the backends' `progress` (finished requests): `done`
    items before the calls, plus one item per `per_item` finished requests, out of `total` (also written to the row
    with `write_total`). Written at most every PROGRESS_INTERVAL seconds (the Heartbeat keeps the row alive in
    between) and by `flush`. Never raises, as the engine calls it: a cancel it meets is kept in `cancelled`, for
    the caller to act on once the call returns."""

    def __init__(
        self,
        job: Job,
        *,
        total: int,
        done: int = 0,
        per_item: int = 1,
        write_total: bool = False,
    ) -> None:
        self.job, self.total, self.start, self.per_item = job, total, done, max(1, per_item)
        self.write_total = write_total
        self.requests = 0
        self.cancelled = False
        self._written = time.monotonic()

    @property
    def done(self) -> int:
        return min(self.total, self.start + self.requests // self.per_item)

    def __call__(self, n: int) -> None:
        self.requests += n
        if time.monotonic() - self._written >= PROGRESS_INTERVAL:
            self.flush()

    def flush(self) -> None:
        self._written = time.monotonic()
        try:
            total = self.total if self.write_total else None
            self.cancelled |= not job_progress(job=self.job, done=self.done, total=total)
        except Exception:  # a failed progress write must not fail the engine call; the heartbeat goes on
            logger.warning("job %s: progress not recorded", self.job.pk, exc_info=True)


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
        enqueue_job(job)
    return bool(updated)


def job_cancel(*, job: Job) -> bool:
    """Cancel a job that has not finished; a running job sees it at its next progress report and stops when its
    current engine call returns, writing nothing."""
    updated = Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now()
    )
    return bool(updated)


def job_round(job: Job) -> Round:
    """The round a stage job works for (jobs outside rounds, imports and health checks, have none)."""
    rnd = job.round
    if rnd is None:
        raise StageError(f"job {job.pk} ({job.stage}) belongs to no round: only a round's stages have handlers here")
    return rnd


def check_not_cancelled(job: Job) -> None:
    if Job.objects.filter(pk=job.pk, status=Job.Status.CANCELLED).exists():
        raise JobCancelled(f"job {job.pk} was cancelled")


class Heartbeat:
    """Beats the job's heartbeat every `interval` seconds from a thread while a long batch runs."""

    def __init__(self, job_id: int, interval: float = 5.0) -> None:
        self.job_id, self.interval = job_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def _run(self) -> None:
        from django.db import connection  # this thread's own connection

        try:
            while not self._stop.wait(self.interval):
                Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


def worker_name() -> str:
    try:
        current = get_current_job()
        if current is not None and current.worker_name:
            return current.worker_name
    except Exception:  # outside a worker (CLI, tests)
        pass
    return f"{socket.gethostname()}:{os.getpid()}"


def jobs_reconcile(*, stale_after: float = 60.0, grace: float = 10.0) -> dict[str, int]:
    """Put work back on the queue that Redis lost or a dead worker dropped. The database decides:
    - running jobs whose heartbeat is older than `stale_after` seconds go back to queued and are re-enqueued;
    - queued jobs older than `grace` seconds whose RQ job is gone (Redis flushed) or ended are re-enqueued.
    A job delivered twice still runs once (job_claim), so re-enqueueing is always safe."""
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
            enqueue_job(job)
            requeued_stale += 1
    connection = django_rq.get_connection("default")
    for job in Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=now - timedelta(seconds=grace)):
        try:
            status = RQJob.fetch(job.rq_id, connection=connection).get_status() if job.rq_id else None
        except NoSuchJobError:
            status = None
        if status not in ("queued", "started", "deferred", "scheduled"):
            enqueue_job(job)
            requeued_lost += 1
    if requeued_stale or requeued_lost:
        logger.warning("reconcile: requeued %d stale and %d lost jobs", requeued_stale, requeued_lost)
    return {"stale": requeued_stale, "lost": requeued_lost}
