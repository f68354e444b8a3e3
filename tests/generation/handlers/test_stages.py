"""The model stages for real: embedded model, real PostgreSQL, Redis and RQ worker processes."""

from __future__ import annotations

import io
import signal
import time

import django_rq
import pytest
from django.core.management import CommandError, call_command

from annotation.models import Candidate
from generation.handlers import run_job
from generation.models import Job, ModelVersion, Round
from generation.selectors import stage_progress
from generation.services.corpus import corpus_add_passages
from generation.services.jobs import jobs_reconcile
from generation.services.rounds import round_create, stage_cancel, stage_launch, stage_retry
from tests.conftest import worker_process
from tests.factories import CorpusFactory

pytestmark = [pytest.mark.model, pytest.mark.integration]


def make_round(passages: list[str], model_dir, **config) -> Round:
    corpus = CorpusFactory()
    corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in passages])
    base, _ = ModelVersion.objects.get_or_create(role="base", path=str(model_dir), defaults={"name": "smol"})
    defaults = {"backend": "transformers", "chunk_size": 2, "batch_size": 2, "sample_size": len(passages)}
    return round_create(corpus=corpus, base_model=base, config={**defaults, **config})


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_round_runs_augment_curate_rewrite_on_a_real_worker_with_vllm(burst_worker, model_dir, web_passages):
    rnd = make_round(
        web_passages[:6],
        model_dir,
        backend="auto",
        chunk_size=3,
        batch_size=3,
        curation={"threshold": None, "top_k": 3},
        generation={"rewrite_max_new_tokens": 160},
    )
    stage_launch(round=rnd, stage="augment")
    burst_worker("gpu", timeout=600)  # later stages are enqueued as earlier ones finish, in the same burst

    rnd.refresh_from_db()
    assert rnd.state == Round.State.REVIEW, rnd.error
    cands = list(rnd.candidates.select_related("segment"))
    assert len(cands) == 6 and len({c.segment_id for c in cands}) == 6
    ok = [c for c in cands if c.status != Candidate.Status.ERROR]
    # A bound: how many of the model's instructions parse depends on what the real model writes (vLLM on CPU).
    assert len(ok) >= 4, [c.error for c in cands]
    for c in ok:
        assert c.instruction and 1.0 <= c.score <= 5.0
        assert sum(c.score_distribution) == pytest.approx(1.0)
        assert c.lineage["augment_backend"] == "vllm" and c.lineage["config_hash"] == rnd.config_hash
        assert set(c.signals) == {"rubric", "agreement", "ifd", "nll_conditional", "nll_unconditional"}
        assert c.lineage["signals_prompt"] == "likelihood.v1" and c.keep_score == c.signals["agreement"]
    kept = [c for c in ok if c.status == Candidate.Status.KEPT]
    # The top 3 by agreement were kept; a kept pair whose rewrite an output gate caught was dropped after it.
    rewrite_gated = [c for c in ok if c.gate and c.rewritten_response]
    assert len(kept) + len(rewrite_gated) == 3, [(c.gate, c.rewritten_response[:80]) for c in ok]
    assert all(c.status == Candidate.Status.DROPPED and c.kept_by_curation for c in rewrite_gated)
    ungated_dropped = [c for c in ok if c.status == Candidate.Status.DROPPED and not c.gate]
    assert min(c.keep_score for c in kept + rewrite_gated) >= max(
        (c.keep_score for c in ungated_dropped), default=float("-inf")
    )
    assert sum(bool(c.rewritten_response) for c in kept + rewrite_gated) >= 2  # the model's rewrites: a bound too
    augment_jobs = rnd.jobs.filter(stage="augment")
    assert all(j.status == Job.Status.DONE and j.result["completion_tokens"] > 0 for j in augment_jobs)


def test_a_worker_killed_mid_stage_loses_and_duplicates_nothing(burst_worker, model_dir, web_passages):
    rnd = make_round(web_passages[:8], model_dir)  # 4 augment chunks of 2
    stage_launch(round=rnd, stage="augment")
    worker = worker_process()
    try:
        jobs = rnd.jobs.filter(stage="augment")
        wait_for(
            lambda: jobs.filter(status=Job.Status.DONE).exists() and jobs.filter(status=Job.Status.RUNNING).exists(),
            180,
            "one chunk done and another running",
        )
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed = jobs.get(status=Job.Status.RUNNING)
    assert jobs_reconcile(stale_after=0, grace=0)["stale"] == 1
    burst_worker("gpu", timeout=600)

    rnd.refresh_from_db()
    assert rnd.state == Round.State.REVIEW
    assert rnd.candidates.count() == 8
    assert set(rnd.candidates.values_list("segment_id", flat=True)) == set(
        rnd.corpus.segments.values_list("id", flat=True)
    )
    killed.refresh_from_db()
    assert killed.status == Job.Status.DONE and killed.attempts == 2
    assert all(j.status == Job.Status.DONE for j in rnd.jobs.all())


def test_a_flushed_redis_is_recovered_by_reconcile(burst_worker, redis_conn, model_dir, web_passages):
    rnd = make_round(web_passages[:4], model_dir)
    stage_launch(round=rnd, stage="augment")
    assert django_rq.get_queue("gpu").count == 2
    redis_conn.flushdb()
    assert jobs_reconcile(grace=0) == {"stale": 0, "lost": 2}
    assert jobs_reconcile(grace=0) == {"stale": 0, "lost": 0}, "a job already back on the queue is left alone"
    burst_worker("gpu", timeout=600)
    rnd.refresh_from_db()
    assert rnd.state == Round.State.REVIEW and rnd.candidates.count() == 4


@pytest.mark.django_db
def test_garbage_output_is_recorded_on_the_item_and_the_stage_goes_on(
    model_dir, web_passages, django_capture_on_commit_callbacks
):
    rnd = make_round(web_passages[:2], model_dir, generation={"augment_max_new_tokens": 1})
    with django_capture_on_commit_callbacks(execute=True):
        [job] = stage_launch(round=rnd, stage="augment", enqueue=False)
        assert run_job(job.pk) == Job.Status.DONE
    job.refresh_from_db()
    assert job.result["errors"] == 2
    assert rnd.candidates.count() == 2, "an item for each segment, each recording its error"
    for c in rnd.candidates.all():
        assert c.status == Candidate.Status.ERROR and c.error.startswith("unparseable instruction from the model")
    rnd.refresh_from_db()
    assert rnd.state == Round.State.REVIEW, "nothing to curate: the round moves on instead of hanging"


@pytest.mark.django_db
def test_huge_and_odd_segments_are_truncated_and_recorded(model_dir):
    huge = ("A sentence about the history of tea in many countries. " * 2000)[:100_000]
    odd = "€€€ ### ¿¿¿ ☃☃☃ 🚀🚀🚀 " * 30 + "\ufffd" * 50
    rnd = make_round([huge, odd], model_dir, generation={"augment_max_new_tokens": 24})
    [job] = stage_launch(round=rnd, stage="augment", enqueue=False)
    assert run_job(job.pk) == Job.Status.DONE
    by_len = {c.segment.char_count: c for c in rnd.candidates.select_related("segment")}
    assert sorted(by_len) == [len(odd), 100_000]  # both items recorded, whatever the model made of the odd one
    # Cut to max_segment_chars (6000) at the last sentence end before it.
    assert by_len[100_000].lineage["truncated_to"] == 5994
    assert "truncated_to" not in by_len[len(odd)].lineage
    assert job.__class__.objects.get(pk=job.pk).result["truncated"] == 1


@pytest.mark.django_db
def test_a_retried_chunk_overwrites_instead_of_duplicating(model_dir, web_passages):
    rnd = make_round(web_passages[:2], model_dir, generation={"augment_max_new_tokens": 24})
    [job] = stage_launch(round=rnd, stage="augment", enqueue=False)
    assert run_job(job.pk) == Job.Status.DONE
    first = {c.segment_id: c.pk for c in rnd.candidates.all()}
    # Something to compare: a row for each of the 2 segments (an empty stage would pass the check below).
    assert set(first) == set(rnd.corpus.segments.values_list("pk", flat=True)) and len(first) == 2
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)
    Round.objects.filter(pk=rnd.pk).update(state="augment")
    assert run_job(job.pk) == Job.Status.DONE
    assert {c.segment_id: c.pk for c in rnd.candidates.all()} == first
    job.refresh_from_db()
    assert job.attempts == 2 and rnd.candidates.count() == 2


@pytest.mark.django_db
def test_a_missing_model_fails_the_stage_with_a_clear_message(model_dir, web_passages):
    rnd = make_round(web_passages[:2], model_dir, models={"augment": "/models/does-not-exist"})
    [job] = stage_launch(round=rnd, stage="augment", enqueue=False)
    assert run_job(job.pk) == Job.Status.FAILED
    job.refresh_from_db()
    rnd.refresh_from_db()
    assert job.permanent and "model path /models/does-not-exist for stage augment does not exist" in job.error
    assert rnd.state == Round.State.FAILED and "does-not-exist" in rnd.error
    assert not rnd.candidates.exists()


@pytest.mark.django_db
def test_cancel_then_retry_a_stage(model_dir, web_passages, redis_conn, django_capture_on_commit_callbacks):
    rnd = make_round(web_passages[:4], model_dir)
    with django_capture_on_commit_callbacks(execute=True):
        jobs = stage_launch(round=rnd, stage="augment")
    assert stage_cancel(round=rnd, stage="augment") == 2
    assert run_job(jobs[0].pk) == "skipped"
    with django_capture_on_commit_callbacks(execute=True):
        assert stage_retry(round=rnd, stage="augment") == 2
    assert set(rnd.jobs.values_list("status", flat=True)) == {Job.Status.QUEUED}
    assert stage_progress(round=rnd, stage="augment")["total"] == 4


@pytest.mark.django_db
def test_run_stage_command_runs_the_stage_here_with_progress(model_dir, web_passages):
    rnd = make_round(web_passages[:2], model_dir, generation={"augment_max_new_tokens": 24})
    out = io.StringIO()
    call_command("run_stage", round=rnd.number, stage="augment", stdout=out, stderr=io.StringIO())
    assert "augment: 2/2 items" in out.getvalue()
    assert rnd.candidates.count() == 2
    with pytest.raises(CommandError, match="there is no round 999"):
        call_command("run_stage", round=999, stage="augment")
