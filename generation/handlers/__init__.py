"""What RQ workers run. Thin: claim the row, call the handler for the job's stage (one registry), record the
outcome, and move the round on when a stage's last chunk is done.

- system.py: the health check and corpus imports
- stages.py: augment, curate, rewrite (one chunk per job)
- training.py: the backward and forward fine-tunes
- evaluation.py: the round's evaluation
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection

from generation.handlers import evaluation, stages, system, training
from generation.models import Job, Round
from generation.pipeline.lifecycle import IllegalTransition
from generation.services import jobs as job_runtime
from generation.services.rounds import STAGES, round_transition, stage_advance

logger = logging.getLogger(__name__)

Handler = Callable[[Job], dict[str, Any] | None]

#: Every stage a Job row can name, and what runs it.
REGISTRY: dict[str, Handler] = {
    "ping": system.ping,
    "ingest": system.ingest,
    "train_backward": training.run_train_backward,
    "augment": stages.run_augment,
    "curate": stages.run_curate,
    "rewrite": stages.run_rewrite,
    "train_forward": training.run_train_forward,
    "evaluate": evaluation.run_evaluate,
}


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
    job = job_runtime.job_claim(job_id=job_id, worker=job_runtime.worker_name())
    if job is None:
        logger.info("job %s: not queued any more (done, cancelled or taken by another worker); skipping", job_id)
        return "skipped"
    handler = REGISTRY.get(job.stage)
    if handler is None:
        job_runtime.job_fail(job=job, error=f"no handler for stage {job.stage!r}", permanent=True)
        return Job.Status.FAILED
    try:
        with job_runtime.Heartbeat(job.pk):
            result = handler(job)
    except job_runtime.JobCancelled:
        logger.info("job %s was cancelled while running; nothing written", job_id)
        return Job.Status.CANCELLED
    except (job_runtime.PermanentJobError, job_runtime.StageError) as exc:
        permanent = getattr(exc, "permanent", True)
        logger.warning("job %s failed (permanent=%s): %s", job_id, permanent, exc)
        job_runtime.job_fail(job=job, error=exc, permanent=permanent)
        if permanent and job.round is not None:
            try:
                round_transition(round=job.round, to=Round.State.FAILED, error=str(exc))
            except IllegalTransition as refused:  # cancelled (or closed) meanwhile: that state stands
                logger.warning("job %s: round not marked failed: %s", job_id, refused)
        return Job.Status.FAILED
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        job_runtime.job_fail(job=job, error=exc, permanent=False)
        return Job.Status.FAILED
    job_runtime.job_succeed(job=job, result=result)  # no-op for stage runners: they finish inside their write
    if job.round_id and job.stage in STAGES:
        stage_advance(round_id=job.round_id, stage=job.stage)
    return Job.Status.DONE
