"""Curation signals and output gates on the embedded model: the curate stage and `manage.py score_pairs`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Candidate
from generation.backends.registry import get_backend
from generation.handlers import run_job
from generation.handlers.stages import pair_signals
from generation.models import Job
from generation.pipeline import signals, statistics
from generation.services.rounds import stage_advance, stage_launch
from tests.generation.handlers.test_stages import make_round

pytestmark = pytest.mark.model

REAL = [
    (
        "What is the difference between a list and a tuple in Python?",
        "A list is mutable: you can append, remove and replace its items. A tuple is immutable once created, "
        "so it can be used as a dictionary key, and it signals a fixed record such as a coordinate.",
    ),
    (
        "How do I boil an egg so that the yolk stays soft?",
        "Bring a pot of water to a rolling boil, lower the egg in gently and cook it for six to seven minutes. "
        "Then move it to a bowl of cold water for a minute so it stops cooking and peels easily.",
    ),
    (
        "Give me three tips for writing clearer commit messages.",
        "Write a short summary line in the imperative mood, such as 'Fix crash on empty input'. Leave a blank "
        "line, then explain why the change was needed. Keep each commit to one logical change.",
    ),
    (
        "Why is the sky blue?",
        "Sunlight is scattered by the molecules of the air, and short blue wavelengths are scattered much more "
        "than long red ones, so blue light reaches our eyes from every direction of the sky.",
    ),
]


@pytest.fixture(scope="module")
def backend(model_dir):
    return get_backend("transformers", model_dir, batch_size=8)


def test_a_real_pair_agrees_more_than_the_same_response_under_an_unrelated_instruction(backend):
    mismatched = [(REAL[(i + 1) % len(REAL)][0], y) for i, (_, y) in enumerate(REAL)]
    scored = pair_signals(backend, REAL + mismatched)
    real, other = [s for _, s in scored[: len(REAL)]], [s for _, s in scored[len(REAL) :]]
    for r, m in zip(real, other, strict=True):
        assert r["agreement"] > m["agreement"] and r["ifd"] < m["ifd"]
        assert r["agreement"] > 0 and 1.0 <= r["rubric"] <= 5.0
        assert r["agreement"] == pytest.approx(r["nll_unconditional"] - r["nll_conditional"], abs=1e-5)
    labels = [True] * len(real) + [False] * len(other)
    assert signals.signal_aucs(real + other, labels, signals=("agreement", "ifd")) == {"agreement": 1.0, "ifd": 1.0}


@pytest.mark.django_db
def test_the_curate_stage_gates_degenerate_output_and_never_keeps_it(model_dir, web_passages):
    rnd = make_round(web_passages[:4], model_dir, curation={"threshold": None, "top_k": 4})
    segments = list(rnd.corpus.segments.order_by("pk"))
    loop = "The function returns the value. " * 30
    planted = {
        "prompt_echo": ("Write an instruction for the response below.", segments[0].text),
        "copied_response": (" ".join(segments[1].text.split()[:25]), segments[1].text),
        "repetitive_response": ("What does this function return, and when?", loop),
        "ok": ("What is this passage about, in a few sentences?", segments[3].text),
    }
    ids = {}
    for segment, (name, (instruction, rewrite)) in zip(segments, planted.items(), strict=True):
        c = Candidate.objects.create(round=rnd, segment=segment, instruction=instruction, rewritten_response=rewrite)
        ids[name] = c.pk
    # rewrite→filter: the curate stage scores (and gates) the rewrites too
    rnd.config["order"] = "rewrite_filter"
    rnd.save(update_fields=["config"])
    jobs = stage_launch(round=rnd, stage="curate", enqueue=False)
    assert all(run_job(j.pk) == Job.Status.DONE for j in jobs)
    stage_advance(round_id=rnd.pk, stage="curate")
    got = {name: Candidate.objects.get(pk=pk) for name, pk in ids.items()}
    assert {name: c.gate for name, c in got.items()} == {
        "prompt_echo": "prompt_echo",
        "copied_response": "copied_response",
        "repetitive_response": "repetitive_response",
        "ok": "",
    }
    for name in ("prompt_echo", "copied_response", "repetitive_response"):
        assert got[name].status == Candidate.Status.DROPPED and got[name].kept_by_curation is False
        scored = got[name].signals  # gated pairs are scored too (for the audit)
        assert scored["agreement"] == pytest.approx(scored["nll_unconditional"] - scored["nll_conditional"], abs=1e-5)
    assert got["ok"].status == Candidate.Status.KEPT, "top_k 4 keeps every ungated pair"
    assert sum(j.result["gated"] for j in rnd.jobs.filter(stage="curate")) == 3


@pytest.mark.django_db
def test_score_pairs_ranks_real_pairs_above_mismatched_ones(model_dir, tmp_path):
    path = tmp_path / "pairs.jsonl"
    mismatched = [(REAL[(i + 2) % len(REAL)][0], y) for i, (_, y) in enumerate(REAL)]
    rows = [{"instruction": x, "response": y, "id": f"real-{i}"} for i, (x, y) in enumerate(REAL)]
    rows += [{"instruction": x, "response": y, "id": f"mismatched-{i}"} for i, (x, y) in enumerate(mismatched)]
    rows.append({"instruction": "Summarize the text above.", "response": REAL[0][1], "id": "echo"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    stdout = io.StringIO()
    call_command("score_pairs", str(path), "--out", str(out), "--backend", "transformers", stdout=stdout)
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in scored] == [r["id"] for r in rows], "every row written back, in order, with its fields"
    assert set(scored[0]) == {"instruction", "response", "id", "signals", "gate", "keep_score", "keep"}
    assert set(scored[0]["signals"]) == {"rubric", "agreement", "ifd", "nll_conditional", "nll_unconditional"}
    real = [r for r in scored if r["id"].startswith("real")]
    other = [r for r in scored if r["id"].startswith("mismatched")]
    ranking = statistics.auc([r["keep_score"] for r in real + other], [True] * len(real) + [False] * len(other))
    assert ranking >= 0.9  # a bound: the real model's scores, not ours, decide the exact AUC
    assert all(r["keep"] for r in real) and not any(r["keep"] for r in other)
    echo = scored[-1]
    assert (echo["gate"], echo["keep"]) == ("prompt_echo", False)
    assert "Scored 9 pairs" in stdout.getvalue() and "1 gated" in stdout.getvalue()


@pytest.mark.django_db
def test_score_pairs_refuses_bad_files_with_their_line_numbers(model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Q", "response": "A"}\nnot json\n')
    with pytest.raises(CommandError, match=r"bad\.jsonl: line 2"):
        call_command("score_pairs", str(bad), "--out", str(tmp_path / "o.jsonl"))
    good = tmp_path / "good.jsonl"
    good.write_text('{"instruction": "Q", "response": "A"}\n')
    with pytest.raises(CommandError, match="top_k must be a positive integer"):
        call_command("score_pairs", str(good), "--out", str(tmp_path / "o.jsonl"), "--keep", "rubric", "--top-k", "0")
    assert not (tmp_path / "o.jsonl").exists()
