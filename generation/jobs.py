"""What RQ workers run. Thin: claim the row, call the handler for the job's stage, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from django.db import connection

from generation import services
from generation.models import Job

logger = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """An error that retrying will not fix (bad input, missing model path): stored with permanent=True."""


def _ping(job: Job) -> dict[str, Any]:
    """Health check: proves a worker can take a job from Redis and write to PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        (db_version,) = cursor.fetchone()
    return {"worker": job.worker, "host": socket.gethostname(), "pid": os.getpid(), "db": db_version.split(",")[0]}


HANDLERS: dict[str, Callable[[Job], dict[str, Any] | None]] = {"ping": _ping}


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
    """Entry point of every RQ job. Returns the final status (also stored on the row)."""
    job = services.job_claim(job_id=job_id, worker=worker_name())
    if job is None:
        logger.info("job %s: not queued any more (done, cancelled or taken by another worker); skipping", job_id)
        return "skipped"
    handler = HANDLERS.get(job.stage)
    if handler is None:
        services.job_fail(job=job, error=f"no handler for stage {job.stage!r}", permanent=True)
        return Job.Status.FAILED
    try:
        result = handler(job)
    except PermanentJobError as exc:
        logger.warning("job %s failed permanently: %s", job_id, exc)
        services.job_fail(job=job, error=exc, permanent=True)
        return Job.Status.FAILED
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        services.job_fail(job=job, error=exc, permanent=False)
        return Job.Status.FAILED
    services.job_succeed(job=job, result=result)
    return Job.Status.DONE
