"""Jobs end to end: PostgreSQL row → Redis → a real RQ worker process → result back in PostgreSQL."""

import os

import django_rq
import pytest
from django.urls import reverse

from generation.handlers import run_job
from generation.models import Job
from generation.selectors import system_status
from generation.services.jobs import job_claim, job_create, job_retry
from tests.factories import UserFactory

pytestmark = pytest.mark.integration


def test_a_job_is_enqueued_only_when_its_transaction_commits(db, redis_conn, django_capture_on_commit_callbacks):
    queue = django_rq.get_queue("default")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = job_create(stage="ping")
        assert queue.count == 0, "enqueued before commit: a worker could look for a row it cannot see"
    assert len(callbacks) == 1
    assert queue.count == 1
    job.refresh_from_db()
    assert job.rq_id and queue.job_ids == [job.rq_id]


def test_a_real_worker_runs_a_job_end_to_end(burst_worker):
    job = job_create(stage="ping")  # transactional_db: commits at once, so it is enqueued
    assert django_rq.get_queue("default").count == 1
    burst_worker("default")
    job.refresh_from_db()
    assert job.status == Job.Status.DONE, job.error
    assert job.attempts == 1 and job.started_at <= job.finished_at
    assert job.worker == job.result["worker"] != "", "the claiming worker's (random) RQ name, as it ran the job"
    assert job.result["pid"] != os.getpid(), "the job ran in this test process, not in a worker"
    assert job.result["db"].startswith("PostgreSQL")
    assert django_rq.get_queue("default").count == 0


def test_a_job_delivered_twice_runs_once(db):
    job = Job.objects.create(stage="ping")
    assert run_job(job.pk) == Job.Status.DONE
    assert run_job(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1


def test_claim_is_won_by_exactly_one_worker(db):
    job = Job.objects.create(stage="ping")
    won = job_claim(job_id=job.pk, worker="a")
    assert (won.pk, won.worker, won.status, won.attempts) == (job.pk, "a", Job.Status.RUNNING, 1)
    assert job_claim(job_id=job.pk, worker="b") is None
    job.refresh_from_db()
    assert job.worker == "a" and job.status == Job.Status.RUNNING


def test_unknown_stage_fails_permanently_with_a_message(db):
    job = Job.objects.create(stage="no-such-stage")
    assert run_job(job.pk) == Job.Status.FAILED
    job.refresh_from_db()
    assert job.permanent and "no handler for stage 'no-such-stage'" in job.error


def test_a_failed_job_can_be_retried(db, redis_conn, django_capture_on_commit_callbacks):
    job = Job.objects.create(stage="ping", status=Job.Status.FAILED, error="boom", permanent=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_retry(job=job) is True
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and not job.error and not job.permanent
    assert django_rq.get_queue("default").job_ids == [job.rq_id]
    assert job_retry(job=job) is False, "a queued job is not retryable"


def test_status_reports_database_redis_queues_and_missing_workers(db, redis_conn):
    checks = {c.name: c for c in system_status()}
    assert checks["PostgreSQL"].ok and "PostgreSQL" in checks["PostgreSQL"].detail
    assert checks["Redis"].ok
    assert not checks["Workers"].ok and "no worker listens on gpu, default" in checks["Workers"].detail
    assert {q["name"] for q in checks["Queues"].extra["queues"]} == {"gpu", "default"}


def test_admin_sends_a_test_job_from_the_status_page(client, burst_worker):
    client.force_login(UserFactory(role="admin"))
    response = client.post(reverse("status-ping"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "job-queued" in response["HX-Trigger"]
    assert 'id="status-panel"' in response.content.decode() and "<html" not in response.content.decode()
    burst_worker("default")
    page = client.get(reverse("status")).content.decode()
    job = Job.objects.get()
    assert job.status == Job.Status.DONE
    assert "badge st-done" in page and job.result["host"] in page


def test_the_status_page_shows_finished_stage_jobs_whose_result_has_an_items_key(client, db, redis_conn):
    client.force_login(UserFactory(role="admin"))
    Job.objects.create(
        stage="curate", status=Job.Status.DONE, result={"items": 8, "gated": 1, "heldout": {"forward": {"n": 8}}}
    )
    response = client.get(reverse("status"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<dt>items</dt><dd>8</dd>" in html and "<dt>gated</dt><dd>1</dd>" in html and "heldout" not in html


def test_jobs_travel_as_json_never_as_pickles(burst_worker, django_capture_on_commit_callbacks):
    import json
    import zlib

    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(stage="ping", queue_name="default")
    job.refresh_from_db()
    raw = django_rq.get_connection("default").hget(f"rq:job:{job.rq_id}", "data")
    func, _instance, args, _kwargs = json.loads(zlib.decompress(raw))
    assert (func, args) == ("generation.handlers.run_job", [job.pk])
    burst_worker("default")
    job.refresh_from_db()
    assert job.status == Job.Status.DONE, "the worker reads the JSON job and runs it"
