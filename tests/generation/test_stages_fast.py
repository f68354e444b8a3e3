"""The model stages on the fake backend (generation/backends/fake.py): chunks, retries, gates, the keep rule and the
round's states, in-process and in seconds. What real models make of them is tests/generation/test_stages.py."""

from __future__ import annotations

import pytest

from annotation.models import Candidate
from generation import services, stages
from generation.backends import registry
from generation.jobs import run_job
from generation.models import Job, ModelVersion, Round
from tests.factories import CorpusFactory

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
    services.corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in passages])
    base, _ = ModelVersion.objects.get_or_create(role="base", path=model_path, defaults={"name": "fake"})
    return services.round_create(corpus=corpus, base_model=base, config={**FAST, **config})


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
        jobs = stages.stage_launch(round=rnd, stage="augment")
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
    for t in (HONEYBEES, VOLCANOES, AQUEDUCTS, LIGHTHOUSES, OWLS):
        assert c[t].keep_score == c[t].signals["agreement"] and 1 < c[t].score < 5
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
def test_rewrite_then_filter_scores_the_rewrites(model_path, redis_conn, django_capture_on_commit_callbacks):
    rnd = make_round(model_path, order="rewrite_filter")
    with django_capture_on_commit_callbacks(execute=True):
        stages.stage_launch(round=rnd, stage="augment")
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
