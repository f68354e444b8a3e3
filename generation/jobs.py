"""What RQ workers run. Thin: claim the row, call the handler for the job's stage, record the outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from generation import services
from generation.models import Job, Round
from generation.pipeline.lifecycle import IllegalTransition

logger = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """An error that retrying will not fix (bad input, missing model path): stored with permanent=True."""


def _ping(job: Job) -> dict[str, Any]:
    """Health check: proves a worker can take a job from Redis and write to PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        (db_version,) = cursor.fetchone()
    return {"worker": job.worker, "host": socket.gethostname(), "pid": os.getpid(), "db": db_version.split(",")[0]}


def _ingest(job: Job) -> dict[str, Any]:
    """Import uploaded files into a corpus (queue `default`), creating the corpus in the import's transaction; a
    refused import (a bad file, or nothing kept) fails the job permanently with the file and line, leaves no corpus
    and no segment behind, and its uploaded files are deleted."""
    from django.contrib.auth import get_user_model

    from generation.ingest import REFUSED, corpus_import
    from generation.models import Corpus

    payload = job.payload
    # Jobs queued before the corpus was created by the job name it by id.
    name = payload.get("corpus_name") or Corpus.objects.get(pk=payload["corpus_id"]).name
    user = get_user_model().objects.filter(pk=payload.get("user_id")).first() if payload.get("user_id") else None
    try:
        corpus, report = corpus_import(
            name=name,
            paths=payload["paths"],
            user=user,
            on_document=lambda n: services.job_progress(job=job, done=0, total=0) if n % 500 == 0 else None,
        )
    except REFUSED as exc:
        _remove_uploads(payload["paths"])
        raise PermanentJobError(f"{exc} — nothing was imported") from exc
    return {"corpus_id": corpus.pk, **{k: v for k, v in report.as_dict().items() if k != "examples"}}


def _remove_uploads(paths: list[str]) -> None:
    """Delete the uploaded files of a refused import (only files under DATA_DIR/uploads, and their folder)."""
    root = (Path(settings.DATA_DIR) / "uploads").resolve()
    for raw in paths:
        path = Path(raw).resolve()
        if path.parent.parent != root:
            continue
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: another file of the upload is still there
            path.parent.rmdir()


HANDLERS: dict[str, Callable[[Job], dict[str, Any] | None]] = {"ping": _ping, "ingest": _ingest}


def worker_name() -> str:
    try:
        from rq import get_current_job

        current = get_current_job()
        if current is not None and current.worker_name:
            return current.worker_name
    except Exception:  # outside a worker (CLI, tests)
        pass
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: int) -> str:
    """Entry point of every RQ job (and of the CLI). Returns the final status (also stored on the row)."""
    _drop_stale_connections()
    try:
        return _run_claimed(job_id)
    finally:
        _drop_stale_connections()


def _drop_stale_connections() -> None:
    """A long-lived worker process must not reuse a connection the server dropped. (Inside an atomic block,
    e.g. the CLI wrapped in a transaction or a test, the connection is in use and is left alone.)"""
    if not connection.in_atomic_block:
        close_old_connections()


def _run_claimed(job_id: int) -> str:
    from generation import rounds, stages

    job = services.job_claim(job_id=job_id, worker=worker_name())
    if job is None:
        logger.info("job %s: not queued any more (done, cancelled or taken by another worker); skipping", job_id)
        return "skipped"
    handler = HANDLERS.get(job.stage) or stages.RUNNERS.get(job.stage) or rounds.RUNNERS.get(job.stage)
    if handler is None:
        services.job_fail(job=job, error=f"no handler for stage {job.stage!r}", permanent=True)
        return Job.Status.FAILED
    try:
        with stages.Heartbeat(job.pk):
            result = handler(job)
    except stages.JobCancelled:
        logger.info("job %s was cancelled while running; nothing written", job_id)
        return Job.Status.CANCELLED
    except (PermanentJobError, stages.StageError) as exc:
        permanent = getattr(exc, "permanent", True)
        logger.warning("job %s failed (permanent=%s): %s", job_id, permanent, exc)
        services.job_fail(job=job, error=exc, permanent=permanent)
        if job.round_id and permanent:
            try:
                services.round_transition(round=job.round, to=Round.State.FAILED, error=str(exc))
            except IllegalTransition as refused:  # cancelled (or closed) meanwhile: that state stands
                logger.warning("job %s: round not marked failed: %s", job_id, refused)
        return Job.Status.FAILED
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        services.job_fail(job=job, error=exc, permanent=False)
        return Job.Status.FAILED
    services.job_succeed(job=job, result=result)  # no-op for stage runners: they finish inside their write
    if job.round_id and job.stage in stages.STAGES:
        stages.stage_advance(round_id=job.round_id, stage=job.stage)
    return Job.Status.DONE
