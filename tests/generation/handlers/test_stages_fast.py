"""The model stages on the fake backend (generation/backends/fake.py): chunks, retries, gates, the keep rule and the
round's states, in-process and in seconds. What real models make of them is tests/generation/handlers/test_stages.py."""

from __future__ import annotations

import pytest

from annotation.models import Candidate
from annotation.services import candidate_review
from generation.backends import registry
from generation.backends.fake import FakeBackend
from generation.handlers import run_job
from generation.models import Job, ModelVersion, Round
from generation.selectors import stage_progress
from generation.services.corpus import corpus_add_passages
from generation.services.jobs import job_cancel
from generation.services.rounds import (
    round_close_review,
    round_create,
    round_start,
    stage_cancel,
    stage_launch,
    stage_retry,
)
from tests.factories import CorpusFactory, SeedExampleFactory, UserFactory

# Each passage's fate on the fake backend, with top_k=3 by agreement (the fake's agreement is highest for short
# passages whose first words the instruction repeats: see its docstring).
HONEYBEES = "Honeybees tell each other where flowers are with a waggle dance."
VOLCANOES = "Volcanic soil is rich in minerals, so farmers grow coffee and grapes on the slopes of old volcanoes."
AQUEDUCTS = (
    "Roman aqueducts carried water across valleys on stone arches, using only gravity and a gentle slope over many "
    "miles of channels that skilled engineers surveyed, built and repaired for centuries."
)
GLACIERS = "[fake:garbage] Glaciers carve deep valleys as they move."  # augment: unparseable
LIGHTHOUSES = "[fake:echo] Lighthouses guide ships along dangerous coasts at night."  # augment: prompt echo
OWLS = "Owls hunt at night on silent feathers. [fake:rewrite:loop]"  # kept, then its rewrite loops
PASSAGES = [HONEYBEES, VOLCANOES, AQUEDUCTS, GLACIERS, LIGHTHOUSES, OWLS]

FAST = {
    "backend": "fake",
    "chunk_size": 2,
    "batch_size": 2,
    "sample_size": len(PASSAGES),
    "curation": {"threshold": None, "top_k": 3},
    # No random audit of the dropped pairs (it draws by candidate id): the queue holds the kept pairs and one
    # gated pair per gate.
    "review": {"audit_fraction": 0},
}

S = Candidate.Status


@pytest.fixture(autouse=True)
def _fresh_backend():
    registry.release(quiet=True)
    yield
    registry.release(quiet=True)


@pytest.fixture
def model_path(tmp_path) -> str:
    """A model directory as the stages check it (config.json); the fake backend reads nothing in it."""
    path = tmp_path / "fake-model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return str(path)


def make_round(model_path: str, passages: list[str] = PASSAGES, **config) -> Round:
    corpus = CorpusFactory()
    corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in passages])
    base, _ = ModelVersion.objects.get_or_create(role="base", path=model_path, defaults={"name": "fake"})
    return round_create(corpus=corpus, base_model=base, config={**FAST, **config})


def run_stage(rnd: Round, stage: str, capture) -> list[str]:
    """Run every queued chunk of `stage` here, in chunk order, as a worker would (callbacks on commit run)."""
    outcomes = []
    for job in rnd.jobs.filter(stage=stage).order_by("chunk"):
        with capture(execute=True):
            outcomes.append(run_job(job.pk))
    return outcomes


def by_text(rnd: Round) -> dict[str, Candidate]:
    return {c.segment.text: c for c in rnd.candidates.select_related("segment")}


def state(rnd: Round) -> str:
    rnd.refresh_from_db()
    return rnd.state


@pytest.mark.django_db
def test_augment_curate_rewrite_take_a_round_to_review(model_path, redis_conn, django_capture_on_commit_callbacks):
    rnd = make_round(model_path)
    with django_capture_on_commit_callbacks(execute=True):
        jobs = stage_launch(round=rnd, stage="augment")
    assert [len(j.payload["ids"]) for j in jobs] == [2, 2, 2] and state(rnd) == "augment"

    # Augment: one instruction per segment; garbage is recorded on its item, the echo is not gated yet.
    assert run_stage(rnd, "augment", django_capture_on_commit_callbacks) == ["done"] * 3
    assert state(rnd) == "curate"
    c = by_text(rnd)
    assert len(c) == 6 and rnd.candidates.filter(status=S.AUGMENTED).count() == 5
    assert c[HONEYBEES].instruction == "Can you explain honeybees tell each other where?"
    assert c[LIGHTHOUSES].instruction == "Which question does the text above answer?" and not c[LIGHTHOUSES].gate
    assert c[GLACIERS].status == S.ERROR and c[GLACIERS].error == (
        "unparseable instruction from the model: '### ... ###'"
    )
    assert c[OWLS].lineage["augment_backend"] == "fake" and c[OWLS].lineage["augment_model"] == model_path
    assert c[OWLS].lineage["config_hash"] == rnd.config_hash
    augment = rnd.jobs.filter(stage="augment")
    assert sum(j.result["errors"] for j in augment) == 1 and sum(j.result["items"] for j in augment) == 6
    assert sum(j.result["completion_tokens"] for j in augment) == 42

    # Curate: every parsed pair scored, the echo gated; the top 3 ungated by agreement kept.
    assert rnd.jobs.filter(stage="curate").count() == 3  # 5 pairs in chunks of 2
    assert run_stage(rnd, "curate", django_capture_on_commit_callbacks) == ["done"] * 3
    assert state(rnd) == "rewrite"
    c = by_text(rnd)
    assert {t for t, x in c.items() if x.status == S.KEPT} == {HONEYBEES, VOLCANOES, OWLS}
    assert c[AQUEDUCTS].status == S.DROPPED and not c[AQUEDUCTS].gate and c[AQUEDUCTS].kept_by_curation is False
    assert c[LIGHTHOUSES].status == S.DROPPED and c[LIGHTHOUSES].gate == "prompt_echo"
    assert [round(c[t].keep_score, 6) for t in (OWLS, HONEYBEES, VOLCANOES, AQUEDUCTS)] == [
        1.204,
        0.943636,
        0.447778,
        0.404667,
    ]
    assert [round(c[t].score, 6) for t in (HONEYBEES, VOLCANOES, AQUEDUCTS, LIGHTHOUSES, OWLS)] == [
        2.940806,
        2.860327,
        2.073214,
        3.599359,
        2.811111,
    ]
    for t in (HONEYBEES, VOLCANOES, AQUEDUCTS, LIGHTHOUSES, OWLS):
        assert c[t].keep_score == c[t].signals["agreement"]
        assert sum(c[t].score_distribution) == pytest.approx(1.0) and c[t].lineage["curate_option_mass"] == 0.9
    assert sum(j.result["gated"] for j in rnd.jobs.filter(stage="curate")) == 1

    # Rewrite: the kept pairs get their rewrite; a looping rewrite is gated and its pair dropped.
    assert rnd.jobs.filter(stage="rewrite").count() == 2  # 3 kept pairs in chunks of 2
    assert run_stage(rnd, "rewrite", django_capture_on_commit_callbacks) == ["done"] * 2
    assert state(rnd) == Round.State.REVIEW
    c = by_text(rnd)
    assert c[HONEYBEES].rewritten_response == HONEYBEES and c[VOLCANOES].rewritten_response == VOLCANOES
    assert c[OWLS].gate == "repetitive_response" and c[OWLS].status == S.DROPPED and c[OWLS].kept_by_curation
    assert {t for t, x in c.items() if x.status == S.KEPT} == {HONEYBEES, VOLCANOES}
    assert c[AQUEDUCTS].rewritten_response == "" and c[LIGHTHOUSES].rewritten_response == ""
    assert sum(j.result["gated"] for j in rnd.jobs.filter(stage="rewrite")) == 1
    assert set(rnd.jobs.values_list("status", flat=True)) == {Job.Status.DONE}
    queued = {x.segment.text for x in rnd.candidates.filter(in_queue=True).select_related("segment")}
    assert queued == {HONEYBEES, VOLCANOES, LIGHTHOUSES, OWLS}  # the kept pairs, and a pair per gate to audit


@pytest.mark.django_db
def test_a_chunk_is_one_backend_call_per_pass_with_progress_from_the_backend(
    model_path, redis_conn, django_capture_on_commit_callbacks, monkeypatch
):
    """batch_size is the transformers backend's own batch: the stages hand the backend a whole chunk per pass (the
    rubric score and the likelihoods for curate), and progress comes from the requests the backend finishes."""
    rnd = make_round(model_path, passages=PASSAGES[:3], chunk_size=3, batch_size=1)
    with django_capture_on_commit_callbacks(execute=True):
        [job] = stage_launch(round=rnd, stage="augment")
    seen: list[int] = []
    generate = FakeBackend.generate

    def generate_and_look(self, conversations, params, **kwargs):
        out = generate(self, conversations, params, **kwargs)
        seen.append(Job.objects.get(pk=job.pk).progress_done)
        return out

    monkeypatch.setattr("generation.services.jobs.PROGRESS_INTERVAL", 0.0)  # write at every report
    monkeypatch.setattr(FakeBackend, "generate", generate_and_look)
    assert run_stage(rnd, "augment", django_capture_on_commit_callbacks) == ["done"]
    backend = registry.get_backend("fake", model_path, batch_size=1)
    assert backend.calls == {"generate": 1, "score": 0, "loglik": 0}
    assert seen == [3], "the fake backend finishes its 3 requests at once; the progress write follows at once"
    job.refresh_from_db()
    assert set(job.result["phase_seconds"]) == {"backend", "load", "engine", "write"}
    assert job.progress_done == 3 and job.result["items"] == 3

    run_stage(rnd, "curate", django_capture_on_commit_callbacks)
    assert backend.calls == {"generate": 1, "score": 1, "loglik": 1}  # 3 pairs: one rubric call, one likelihood call


@pytest.mark.django_db
def test_rewrite_then_filter_scores_the_rewrites(model_path, redis_conn, django_capture_on_commit_callbacks):
    rnd = make_round(model_path, order="rewrite_filter")
    with django_capture_on_commit_callbacks(execute=True):
        stage_launch(round=rnd, stage="augment")
    run_stage(rnd, "augment", django_capture_on_commit_callbacks)
    assert state(rnd) == "rewrite" and rnd.jobs.filter(stage="rewrite").count() == 3  # the 5 parsed pairs
    run_stage(rnd, "rewrite", django_capture_on_commit_callbacks)
    assert state(rnd) == "curate"
    c = by_text(rnd)
    assert c[OWLS].gate == "repetitive_response" and c[OWLS].status == S.AUGMENTED  # gated, not yet dropped
    assert c[LIGHTHOUSES].rewritten_response == "Lighthouses guide ships along dangerous coasts at night."
    run_stage(rnd, "curate", django_capture_on_commit_callbacks)
    assert state(rnd) == Round.State.REVIEW
    c = by_text(rnd)
    assert {t for t, x in c.items() if x.status == S.KEPT} == {HONEYBEES, VOLCANOES, AQUEDUCTS}
    assert c[OWLS].status == S.DROPPED and c[LIGHTHOUSES].status == S.DROPPED
    assert c[LIGHTHOUSES].gate == "prompt_echo" and not c[OWLS].kept_by_curation


@pytest.mark.django_db
def test_a_retried_chunk_overwrites_instead_of_duplicating(model_path, redis_conn, django_capture_on_commit_callbacks):
    rnd = make_round(model_path, passages=[HONEYBEES, VOLCANOES], chunk_size=2)
    with django_capture_on_commit_callbacks(execute=True):
        [job] = stage_launch(round=rnd, stage="augment")
    assert run_stage(rnd, "augment", django_capture_on_commit_callbacks) == ["done"]
    first = {c.segment_id: c.pk for c in rnd.candidates.all()}
    assert set(first) == set(rnd.corpus.segments.values_list("pk", flat=True)) and len(first) == 2, "a row a segment"
    rnd.candidates.update(instruction="stale", status=S.ERROR, error="stale")
    assert state(rnd) == "curate"
    # Delivered again (requeued by reconcile after its worker died, say): it runs again and overwrites its rows.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_job(job.pk) == Job.Status.DONE
    assert {c.segment_id: c.pk for c in rnd.candidates.all()} == first
    c = by_text(rnd)
    assert c[HONEYBEES].instruction == "Can you explain honeybees tell each other where?"
    assert c[HONEYBEES].status == S.AUGMENTED and c[HONEYBEES].error == ""
    job.refresh_from_db()
    assert job.attempts == 2 and state(rnd) == "curate"
    assert rnd.jobs.filter(stage="curate").count() == 1, "the next stage was launched once"


@pytest.mark.django_db
def test_garbage_output_is_recorded_on_the_item_and_the_stage_goes_on(
    model_path, redis_conn, django_capture_on_commit_callbacks
):
    unreadable = "Tides rise twice a day because of the moon. [fake:rewrite:garbage]"
    rnd = make_round(model_path, passages=[HONEYBEES, unreadable], curation={"threshold": -10.0})
    with django_capture_on_commit_callbacks(execute=True):
        stage_launch(round=rnd, stage="augment")
    for stage in ("augment", "curate", "rewrite"):
        assert run_stage(rnd, stage, django_capture_on_commit_callbacks) == ["done"]
    assert state(rnd) == Round.State.REVIEW
    c = by_text(rnd)[unreadable]
    assert c.status == S.KEPT and c.rewritten_response == "" and not c.gate
    assert c.lineage["rewrite_error"] == "unparseable rewrite: ''"
    assert rnd.jobs.get(stage="rewrite").result["errors"] == 1


@pytest.mark.django_db
def test_a_stage_of_only_garbage_moves_the_round_on(model_path, redis_conn, django_capture_on_commit_callbacks):
    rnd = make_round(model_path, passages=[GLACIERS, "Deserts are cold at night. [fake:augment:garbage]"])
    with django_capture_on_commit_callbacks(execute=True):
        stage_launch(round=rnd, stage="augment")
    assert run_stage(rnd, "augment", django_capture_on_commit_callbacks) == ["done"]
    assert set(rnd.candidates.values_list("status", flat=True)) == {S.ERROR}
    assert rnd.jobs.get(stage="augment").result["errors"] == 2
    assert state(rnd) == Round.State.REVIEW, "nothing to curate or rewrite: the round moves on instead of hanging"
    assert not rnd.jobs.exclude(stage="augment").exists()


@pytest.mark.django_db
def test_cancel_then_retry_a_stage(model_path, redis_conn, django_capture_on_commit_callbacks, monkeypatch):
    rnd = make_round(model_path, batch_size=1)  # 3 chunks of 2
    with django_capture_on_commit_callbacks(execute=True):
        jobs = stage_launch(round=rnd, stage="augment")

    # A running chunk is cancelled while its engine call runs: it stops when the call returns, writing nothing.
    generate = FakeBackend.generate

    def cancel_then_generate(self, *args, **kwargs):
        job_cancel(job=jobs[0])
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(FakeBackend, "generate", cancel_then_generate)
    assert run_job(jobs[0].pk) == Job.Status.CANCELLED
    monkeypatch.setattr(FakeBackend, "generate", generate)
    assert not rnd.candidates.exists()
    # The queued ones are cancelled before they start: a worker that gets one skips it.
    assert stage_cancel(round=rnd, stage="augment") == 2
    assert run_job(jobs[1].pk) == "skipped"
    assert set(rnd.jobs.values_list("status", flat=True)) == {Job.Status.CANCELLED} and state(rnd) == "augment"

    with django_capture_on_commit_callbacks(execute=True):
        assert stage_retry(round=rnd, stage="augment") == 3
    assert set(rnd.jobs.values_list("status", flat=True)) == {Job.Status.QUEUED}
    assert stage_progress(round=rnd, stage="augment")["total"] == 6
    assert run_stage(rnd, "augment", django_capture_on_commit_callbacks) == ["done"] * 3
    assert state(rnd) == "curate" and rnd.candidates.count() == 6
    assert rnd.candidates.filter(status=S.AUGMENTED).count() == 5


@pytest.mark.django_db
def test_a_fake_round_fails_outside_tests_with_a_clear_message(model_path, monkeypatch, settings):
    rnd = make_round(model_path, passages=[HONEYBEES])
    [job] = stage_launch(round=rnd, stage="augment", enqueue=False)
    settings.TESTING = False  # a worker that is not a test process (and has no BACKFORTH_ALLOW_FAKE_BACKEND)
    monkeypatch.delenv(registry.ALLOW_FAKE_ENV, raising=False)
    assert run_job(job.pk) == Job.Status.FAILED
    job.refresh_from_db()
    assert job.permanent and "the fake backend is for tests only" in job.error
    assert state(rnd) == Round.State.FAILED and not rnd.candidates.exists()


@pytest.mark.django_db
def test_a_whole_round_on_the_fake_backend_trains_reviews_and_evaluates(
    model_path, redis_conn, django_capture_on_commit_callbacks, settings, tmp_path
):
    """train_backward → augment → curate → rewrite → review → train_forward → evaluate → closed, with the fake
    trainer standing in for TRL: every stage's bookkeeping, the seed feedback and the evaluation's shape."""
    settings.TRAINED_MODELS_DIR = tmp_path / "rounds"
    for n in range(12):
        SeedExampleFactory(instruction=f"How do {n} bees dance?", response=f"Bees dance {n} times to tell the way.")
    curator = UserFactory(username="curator")
    rnd = make_round(model_path, training={"max_steps": 3})
    assert len(rnd.cfg.heldout.ids) == 3  # a quarter of 12 human-written pairs at most
    with django_capture_on_commit_callbacks(execute=True):
        round_start(round=rnd)
    assert state(rnd) == "train_backward"

    assert run_stage(rnd, "train_backward", django_capture_on_commit_callbacks) == ["done"]
    rnd.refresh_from_db()
    backward = rnd.backward_model
    assert backward.role == "backward" and backward.name == f"round-{rnd.number}-backward"
    assert backward.metrics["steps"] == 3 and backward.metrics["data"] == {"seed": 9}  # 12 seeds, 3 held out
    assert backward.metrics["loss_curve"] == [[1, 1.6], [2, 1.3333], [3, 1.1429]]
    assert (tmp_path / "rounds" / f"round-{rnd.number}" / "backward" / "training_data.jsonl").read_text().count(
        "\n"
    ) == 9
    for stage in ("augment", "curate", "rewrite"):
        assert state(rnd) == stage
        run_stage(rnd, stage, django_capture_on_commit_callbacks)
    assert state(rnd) == Round.State.REVIEW
    assert rnd.candidates.get(segment__text=HONEYBEES).lineage["augment_model"] == backward.path

    kept = rnd.candidates.get(segment__text=HONEYBEES)
    candidate_review(candidate_id=kept.pk, reviewer=curator, action="accept", version=kept.version)
    with django_capture_on_commit_callbacks(execute=True):
        counts = round_close_review(round=rnd, user=curator)
    assert counts == {"added_to_seed": 1, "rejected": 0, "unreviewed": 4}
    assert state(rnd) == "train_forward"

    assert run_stage(rnd, "train_forward", django_capture_on_commit_callbacks) == ["done"]
    rnd.refresh_from_db()
    assert rnd.forward_model.metrics["data"] == {"seed": 9, "web": 1}
    assert state(rnd) == "evaluate"
    assert run_stage(rnd, "evaluate", django_capture_on_commit_callbacks) == ["done"]
    assert state(rnd) == Round.State.CLOSED
    rnd.refresh_from_db()
    result = rnd.metrics["evaluation"]
    n_prompts = len(rnd.cfg.evaluation.prompts)
    assert len(result["pairs"]) == n_prompts and result["candidate"]["id"] == rnd.forward_model_id
    assert result["reference"]["name"] == "fake" and result["judge"] == model_path
    assert result["heldout"]["forward"]["n"] == 3 and result["heldout"]["backward"]["n"] == 3
    # The fake judge's verdicts flip with the order of the answers, and the fake scores the same under any model
    # path: the judge is not consistent, so the headline is the held-out NLL, unchanged.
    assert result["judge_consistency"] == 0.0
    assert result["heldout"]["forward"]["delta"] == {"nll": 0.0, "ci": [0.0, 0.0]}
    assert result["headline"]["measure"] == "heldout_nll" and result["headline"]["text"].endswith("no clear change")
    assert rnd.metrics["curation"]["n"] == 1 and rnd.metrics["curation"]["tp"] == 1  # kept, and accepted
    assert rnd.forward_model.metrics["evaluation"]["judge_consistency"] == result["judge_consistency"]
    assert set(rnd.jobs.values_list("status", flat=True)) == {Job.Status.DONE}


@pytest.mark.django_db
def test_a_worker_without_the_gpus_for_tensor_parallelism_fails_the_stage_permanently(
    model_path, redis_conn, django_capture_on_commit_callbacks, monkeypatch
):
    """The round's tensor_parallel_size reaches the vLLM backend, which checks it against the worker's GPUs before
    loading anything (none here: an empty CUDA_VISIBLE_DEVICES hides any GPU): a permanent error on the job and the
    round, never a crash."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    rnd = make_round(model_path, backend="vllm", tensor_parallel_size=2)
    with django_capture_on_commit_callbacks(execute=True):
        stage_launch(round=rnd, stage="augment")
    assert run_stage(rnd, "augment", django_capture_on_commit_callbacks)[0] == "failed"
    job = rnd.jobs.filter(stage="augment").order_by("chunk").first()
    message = "tensor_parallel_size 2 needs 2 GPUs in one worker, and this worker has no GPU"
    assert job.permanent and job.error.startswith(f"generation.services.jobs.StageError: {message}")
    rnd.refresh_from_db()
    assert rnd.state == Round.State.FAILED and rnd.error == f"{message} (CUDA_VISIBLE_DEVICES=)"
