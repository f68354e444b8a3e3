"""Whole rounds for real: fine-tuning (TRL + LoRA) and evaluation on the embedded model, in RQ worker processes,
on the test PostgreSQL and Redis. Sizes are tiny (1–3 optimiser steps) so two rounds fit in minutes."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from django.conf import settings

from annotation import services as annotation_services
from annotation.models import Candidate, Review, SeedExample
from generation.models import Job, ModelVersion, Round
from generation.pipeline import evaluation
from generation.services.corpus import corpus_add_passages
from generation.services.jobs import jobs_reconcile
from generation.services.rounds import round_close_review, round_create, round_start
from tests.conftest import ROOT, worker_process
from tests.factories import CorpusFactory, UserFactory
from tests.generation.handlers.test_stages import wait_for

pytestmark = [pytest.mark.model, pytest.mark.integration]

TINY = {
    "backend": "transformers",
    "chunk_size": 2,
    "batch_size": 2,
    "sample_size": 6,
    "curation": {"threshold": None, "top_k": 2},
    # Long enough that a rewrite can finish: one cut at max_new_tokens is gated, and a gated pair is not kept.
    "generation": {"augment_max_new_tokens": 32, "rewrite_max_new_tokens": 160},
    "training": {"max_steps": 1, "batch_size": 2, "max_length": 128},
    "evaluation": {"limit": 2, "max_new_tokens": 16},
}


def seed_from_demo(n: int = 8) -> None:
    lines = (ROOT / "app" / "demo" / "seed.jsonl").read_text().splitlines()
    annotation_services.seed_examples_create(rows=[json.loads(line) for line in lines[:n]])


def new_round(corpus, model_dir, **config) -> Round:
    base, _ = ModelVersion.objects.get_or_create(role="base", path=str(model_dir), defaults={"name": "smol"})
    return round_create(corpus=corpus, base_model=base, config={**TINY, **config})


def test_two_rounds_feed_human_corrections_into_the_next_backward_model(burst_worker, model_dir, web_passages):
    seed_from_demo()
    corpus = CorpusFactory()
    corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in web_passages[:12]])

    # Round 1: train M_yx(1) → augment → curate (with the base model: there is no M_0) → rewrite → review.
    r1 = new_round(corpus, model_dir)
    assert r1.curation_model is None
    round_start(round=r1)
    burst_worker("gpu", timeout=900)
    r1.refresh_from_db()
    assert r1.state == Round.State.REVIEW, job_errors(r1)
    backward1 = r1.backward_model
    assert backward1.role == "backward" and backward1.round == r1 and backward1.parent == r1.base_model
    assert Path(backward1.path, "model.safetensors").is_file() and backward1.metrics["loss_curve"]
    # A quarter of the 8 seed pairs (the most a held-out split takes) is frozen out of every model's training.
    held = set(r1.config["heldout"]["ids"])
    assert len(held) == 2 and held <= set(SeedExample.objects.filter(source="seed").values_list("pk", flat=True))
    assert backward1.metrics["data"] == {"seed": 6}
    augmented = r1.candidates.exclude(status=Candidate.Status.ERROR)
    assert augmented.exists()
    assert all(c.lineage["augment_model"] == backward1.path for c in augmented), "augment used M_yx(1)"

    # Review: one instruction corrected, one pair rejected, one dropped pair accepted by the audit.
    annotator = UserFactory(role="annotator")
    # Reviewable pairs, those the keep rule kept first. How many it kept depends on what the output gates let
    # through (the tiny model's output varies with its training), so the expected curation counts follow.
    reviewable = list(
        r1.candidates.filter(status__in=[Candidate.Status.KEPT, Candidate.Status.DROPPED]).order_by(
            "-kept_by_curation", "pk"
        )
    )
    assert len(reviewable) >= 3 and reviewable[0].kept_by_curation, [(c.status, c.gate) for c in r1.candidates.all()]
    kept, dropped = reviewable[:2], reviewable[-1]
    corrected = "CORRECTED: What does this passage explain, step by step?"
    annotation_services.candidate_review(
        candidate_id=kept[0].pk, reviewer=annotator, action="edit", version=kept[0].version, instruction=corrected
    )
    annotation_services.candidate_review(
        candidate_id=kept[1].pk, reviewer=annotator, action="reject", version=kept[1].version, reason="off-topic"
    )
    annotation_services.candidate_review(
        candidate_id=dropped.pk, reviewer=annotator, action="accept", version=dropped.version
    )
    counts = round_close_review(round=r1)
    unreviewed = r1.candidates.filter(status__in=["kept", "dropped"]).count()
    assert counts == {"added_to_seed": 2, "rejected": 1, "unreviewed": unreviewed}
    web = SeedExample.objects.filter(source="web")
    assert set(web.values_list("instruction", flat=True)) == {corrected, dropped.instruction}
    assert web.get(instruction=corrected).provenance == {
        "kind": "candidate",
        "round": 1,
        "candidate": kept[0].pk,
        "status": "edited",
    }
    burst_worker("gpu", timeout=900)  # train_forward → evaluate → closed
    r1.refresh_from_db()
    assert r1.state == Round.State.CLOSED, job_errors(r1)
    m1 = r1.forward_model
    assert m1.role == "forward" and m1.metrics["data"] == {"seed": 6, "web": 2}
    ev = r1.metrics["evaluation"]
    # Held-out NLL of the 2 reference answers (M_1 vs the base) and instructions (M_yx(1) vs the base).
    assert ev["heldout"]["forward"]["n"] == 2 and ev["heldout"]["backward"]["n"] == 2
    # The numbers are the real model's; what follows from them is checked exactly.
    forward = ev["heldout"]["forward"]
    assert forward["new"]["nll"] > 0
    assert forward["delta"]["nll"] == pytest.approx(forward["new"]["nll"] - forward["old"]["nll"], abs=2e-6)
    assert len(forward["delta"]["ci"]) == 2, "two pairs: an interval"
    assert ev["n"] == 2 and ev["wins"] + ev["ties"] + ev["losses"] == 2
    assert ev["judge_consistency"] == (ev["wins"] + ev["losses"]) / 2, "a tie is an order flip (or a draw)"
    reliable = ev["judge_consistency"] >= evaluation.JUDGE_MIN_CONSISTENCY
    assert ev["headline"]["measure"] == ("win_rate" if reliable else "heldout_nll")
    assert ev["candidate"]["id"] == m1.pk and ev["reference"]["id"] == r1.base_model_id
    assert len(ev["pairs"]) == 2 and all(p["candidate"] and p["reference"] for p in ev["pairs"])
    assert ev["lc_win_rate"] == pytest.approx(
        evaluation.length_controlled_win_rate(
            [p["p_candidate"] for p in ev["pairs"]], [len(p["candidate"]) - len(p["reference"]) for p in ev["pairs"]]
        )
    )
    curation = r1.metrics["curation"]
    # accepted: kept[0] (edited) and dropped; rejected: kept[1]
    by_curation = [kept[0].kept_by_curation, kept[1].kept_by_curation, dropped.kept_by_curation]
    expected = (3, by_curation[0] + by_curation[2], int(by_curation[1]), 2 - by_curation[0] - by_curation[2])
    assert (curation["n"], curation["tp"], curation["fp"], curation["fn"]) == expected
    assert m1.metrics["evaluation"]["n"] == 2

    # Round 2: M_yx(2) learns round 1's correction; curation uses M_1. Review skipped: it runs to the end.
    r2 = new_round(corpus, model_dir, review={"mode": "skip"})
    assert r2.curation_model == m1
    round_start(round=r2)
    burst_worker("gpu", timeout=900)
    r2.refresh_from_db()
    assert r2.state == Round.State.CLOSED, job_errors(r2)
    backward2 = r2.backward_model
    assert backward2.metrics["data"] == {"seed": 8, "correction": 1}
    assert set(r2.config["heldout"]["ids"]) == held, "the split is the same in every round"
    rows = [json.loads(line) for line in Path(backward2.path, "training_data.jsonl").read_text().splitlines()]
    [correction] = [r for r in rows if r["kind"] == "correction"]
    assert correction["completion"][0]["content"].endswith(corrected)
    assert kept[0].segment.text[:200] in correction["prompt"][0]["content"]
    assert backward2.data_hash != backward1.data_hash
    r2_candidates = r2.candidates.exclude(status=Candidate.Status.ERROR).exclude(score=None)
    assert r2_candidates.exists()
    assert all(c.lineage["curate_model"] == m1.path for c in r2_candidates), "round 2 curated with M_1"
    assert not set(r2.candidates.values_list("segment_id", flat=True)) & set(
        r1.candidates.values_list("segment_id", flat=True)
    ), "round 2 samples segments no earlier round used"
    assert r2.metrics["evaluation"]["reference"]["id"] == m1.pk, "M_2 is evaluated against M_1"
    assert r2.forward_model.metrics["data"]["web"] == 2 + r2.candidates.filter(status="kept").count()
    assert Review.objects.count() == 3
    held_texts = set(SeedExample.objects.filter(pk__in=held).values_list("instruction", flat=True))
    for model in (backward1, m1, backward2, r2.forward_model):
        rows = [json.loads(line) for line in Path(model.path, "training_data.jsonl").read_text().splitlines()]
        assert rows and not {r["id"] for r in rows} & held, f"{model.name} trained on a held-out pair"
        contents = [m["content"] for r in rows for m in r["prompt"] + r["completion"]]
        assert not any(text.strip() in c for c in contents for text in held_texts)


def test_a_worker_killed_during_training_resumes_from_its_checkpoint(burst_worker, model_dir, web_passages):
    seed_from_demo()
    corpus = CorpusFactory()
    corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in web_passages[:2]])
    rnd = new_round(corpus, model_dir, sample_size=2, training={"max_steps": 3, "batch_size": 2, "max_length": 128})
    round_start(round=rnd)
    job = rnd.jobs.get(stage="train_backward")
    out = trained_dir(rnd)
    shutil.rmtree(out, ignore_errors=True)  # an earlier test run's round 1 may have left its files here
    checkpoint = out / "backward" / "checkpoints" / "checkpoint-1" / "trainer_state.json"  # written last
    worker = worker_process("gpu")
    try:
        wait_for(checkpoint.is_file, 300, "the first complete training checkpoint")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING, "the job was mid-training when its worker died"
    assert jobs_reconcile(stale_after=0, grace=0)["stale"] == 1
    burst_worker("gpu", timeout=900)

    job.refresh_from_db()
    rnd.refresh_from_db()
    assert job.status == Job.Status.DONE and job.attempts == 2, job.error
    # A bound: the worker is killed once checkpoint 1 is complete, and may have written checkpoint 2 by then.
    assert job.result["resumed_from_step"] >= 1 and job.result["steps"] == 3
    assert rnd.state == Round.State.REVIEW, job_errors(rnd)
    assert ModelVersion.objects.filter(role="backward", round=rnd).count() == 1


def job_errors(rnd: Round) -> list:
    return [rnd.error, *rnd.jobs.exclude(status=Job.Status.DONE).values_list("stage", "status", "error")]


def trained_dir(rnd: Round) -> Path:
    return Path(settings.TRAINED_MODELS_DIR) / f"round-{rnd.number}"
