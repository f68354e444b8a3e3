"""The one place that puts work on RQ. Enqueues happen after the surrounding transaction commits
(django-rq's COMMIT_MODE="on_db_commit"), so a worker never sees a job id whose row it cannot read."""

from __future__ import annotations

import uuid

import django_rq

from generation.models import Job

QUEUES = ("gpu", "default")


def enqueue_job(job: Job) -> str:
    """Send `job` to its RQ queue; returns the RQ id recorded on the row."""
    if job.queue not in QUEUES:
        raise ValueError(f"unknown queue {job.queue!r}; expected one of {QUEUES}")
    rq_id = f"bf-{job.pk}-{uuid.uuid4().hex[:8]}"
    Job.objects.filter(pk=job.pk).update(rq_id=rq_id)
    job.rq_id = rq_id
    django_rq.get_queue(job.queue).enqueue("generation.jobs.run_job", job.pk, job_id=rq_id)
    return rq_id
