"""Preference exports of a round built in real PostgreSQL through the review service: DPO pairs and KTO rows
in every container, loaded with Hugging Face `datasets`, with their manifest; the CLI and the download; and (on
the embedded model) TRL's DPOTrainer and KTOTrainer take one step on them."""

from __future__ import annotations

import json
import math

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation import services as annotation_services
from annotation.models import Review, SeedExample
from generation.services import export
from generation.services.rounds import round_create
from tests.factories import (
    CandidateFactory,
    CorpusFactory,
    ModelVersionFactory,
    SeedExampleFactory,
    SegmentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TIDES = "What causes tides?"
WEB_TEXT = "A long web passage, never rewritten."


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


@pytest.fixture
def decided_round():
    """A launched round (held-out split frozen from 12 human-written seed pairs) whose candidates people
    accepted, edited and rejected through annotation.services.candidate_review."""
    SeedExampleFactory.create_batch(12, source="seed")
    corpus = CorpusFactory()
    rnd = round_create(corpus=corpus, base_model=ModelVersionFactory(), config={})
    held = sorted(rnd.cfg.heldout_ids)
    assert len(held) == 3  # a quarter of the 12 seed pairs (min 8, capped at a quarter of the set)
    # Added after the launch: not held out; an approved answer to the rejected pair's prompt.
    tides_seed = SeedExampleFactory(instruction=TIDES, response="Gravity of the Moon and the Sun.", source="seed")
    annotator = UserFactory(role="annotator")
    lineage = {"augment_model": "/models/backward", "rewrite_model": "/models/rewrite"}

    def candidate(model_instruction, rewritten, *, action, text=None, **decision):
        c = CandidateFactory(
            round=rnd,
            segment=SegmentFactory(corpus=corpus, **({"text": text} if text else {})),
            instruction=model_instruction,
            rewritten_response=rewritten,
            status="kept",
            lineage=lineage if rewritten else {"augment_model": "/models/backward"},
        )
        if action:
            annotation_services.candidate_review(
                candidate_id=c.pk, reviewer=annotator, action=action, version=c.version, **decision
            )
        c.refresh_from_db()
        return c

    heldout_instruction = SeedExample.objects.get(pk=held[0]).instruction
    cs = {
        "wrong_tides": candidate(TIDES, "The Sun heats the sea.", action="reject", reason="factual_error"),
        "right_tides": candidate(TIDES, "The Moon's gravity.", action="accept"),
        "rust": candidate(
            "Explain rust.",
            "Rust is a colour.",
            action="edit",
            instruction="Why does iron rust?",
            response="Iron oxidises in water and air.",
        ),
        "bees": candidate("Say something on bees", "Bees make honey.", action="edit", instruction="What do bees make?"),
        "prime": candidate("Name a prime.", "Nine.", action="reject", reason="factual_error"),
        "heldout": candidate(heldout_instruction, "Whatever.", action="reject", reason="not_helpful"),
        "duplicate": candidate(TIDES, "Mostly the Moon.", action="reject", reason="duplicate"),
        "web_text": candidate(
            "Summarise the passage.",
            "",
            action="edit",
            text=WEB_TEXT,
            response="A short summary.",
        ),
        "unreviewed": candidate("Left alone?", "Nobody looked.", action=None),
    }
    return rnd, cs, tides_seed


def expected_dpo(cs, tides_seed):
    def pair(c, row_id, source, chosen_from, prompt, chosen, rejected):
        return {
            "id": row_id,
            "candidate": f"candidate-{c.pk}",
            "version": c.version,
            "source": source,
            "chosen_from": chosen_from,
            "prompt": user(prompt),
            "chosen": assistant(chosen),
            "rejected": assistant(rejected),
        }

    wrong, right, rust, summary = cs["wrong_tides"], cs["right_tides"], cs["rust"], cs["web_text"]
    return [
        pair(
            wrong,
            f"candidate-{wrong.pk}:vs:candidate-{right.pk}",
            "rejection",
            f"candidate-{right.pk}",
            TIDES,
            "The Moon's gravity.",
            "The Sun heats the sea.",
        ),
        pair(
            wrong,
            f"candidate-{wrong.pk}:vs:seed-{tides_seed.pk}",
            "rejection",
            f"seed-{tides_seed.pk}",
            TIDES,
            "Gravity of the Moon and the Sun.",
            "The Sun heats the sea.",
        ),
        pair(
            rust,
            f"candidate-{rust.pk}:edit",
            "edit",
            f"candidate-{rust.pk}",
            "Why does iron rust?",
            "Iron oxidises in water and air.",
            "Rust is a colour.",
        ),
        # No rewrite: what the person was shown, and replaced, is the web text.
        pair(
            summary,
            f"candidate-{summary.pk}:edit",
            "edit",
            f"candidate-{summary.pk}",
            "Summarise the passage.",
            "A short summary.",
            WEB_TEXT,
        ),
    ]


def expected_kto(cs):
    def row(c, suffix, source, prompt, completion, label):
        return {
            "id": f"candidate-{c.pk}:{suffix}",
            "candidate": f"candidate-{c.pk}",
            "version": c.version,
            "source": source,
            "prompt": user(prompt),
            "completion": assistant(completion),
            "label": label,
        }

    return [
        row(cs["wrong_tides"], "rejected", "rejection", TIDES, "The Sun heats the sea.", False),
        row(cs["right_tides"], "accepted", "accepted", TIDES, "The Moon's gravity.", True),
        row(cs["rust"], "edited", "edited", "Why does iron rust?", "Iron oxidises in water and air.", True),
        row(cs["rust"], "model", "edit_model_version", "Why does iron rust?", "Rust is a colour.", False),
        row(cs["bees"], "edited", "edited", "What do bees make?", "Bees make honey.", True),
        row(cs["prime"], "rejected", "rejection", "Name a prime.", "Nine.", False),
        row(cs["web_text"], "edited", "edited", "Summarise the passage.", "A short summary.", True),
        row(cs["web_text"], "model", "edit_model_version", "Summarise the passage.", WEB_TEXT, False),
    ]  # fmt: skip


DPO_COUNTS = {
    "edits": 2,
    "edits_response_unchanged": 1,
    "excluded_heldout": 1,
    "rejection_pairs": 2,
    "rejections": 1,
    "rejections_not_about_quality": 1,
    "rejections_without_chosen": 1,
}
KTO_COUNTS = {
    "accepted": 1,
    "edits": 3,
    "edits_model_version": 2,
    "edits_response_unchanged": 1,
    "excluded_heldout": 1,
    "rejections": 2,
    "rejections_not_about_quality": 1,
}


def load(out, fmt):
    from datasets import load_dataset, load_from_disk

    if fmt.endswith("hf_dataset"):
        return load_from_disk(str(out))
    return load_dataset("parquet" if fmt.endswith("parquet") else "json", data_files=str(out), split="train")


@pytest.mark.parametrize("fmt", export.PREFERENCE_FORMATS)
def test_every_preference_format_loads_with_datasets_with_exact_rows_and_a_manifest(tmp_path, decided_round, fmt):
    rnd, cs, tides_seed = decided_round
    out = tmp_path / {"jsonl": "p.jsonl", "parquet": "p.parquet"}.get(fmt.split("_", 1)[1], "hf")
    manifest = export.round_export(rnd=rnd, fmt=fmt, out=out)
    kind = fmt.split("_")[0]
    expected = expected_dpo(cs, tides_seed) if kind == "dpo" else expected_kto(cs)
    assert load(out, fmt).to_list() == expected
    assert manifest == json.loads((tmp_path / f"{out.name}.manifest.json").read_text())
    assert manifest["count"] == len(expected) and manifest["format"] == fmt and manifest["preference"] == kind
    assert manifest["counts"] == (DPO_COUNTS if kind == "dpo" else KTO_COUNTS)
    assert (manifest["round"], manifest["config_hash"]) == (rnd.number, rnd.config_hash)
    assert manifest["models"] == {"base": {"id": rnd.base_model.pk, "name": "test base", "path": rnd.base_model.path}}
    assert manifest["models_of_reviewed"] == {
        "instruction": {"/models/backward": 8},
        "response": {"/models/rewrite": 7, "web text": 1},
    }
    records = (tmp_path / manifest["records_file"]).read_text().splitlines()
    assert records == ["id\tversion", *(f"{r['id']}\t{r['version']}" for r in expected)]


def test_the_same_round_exports_the_same_content_hash_in_every_container(tmp_path, decided_round):
    rnd = decided_round[0]
    hashes = {
        fmt: export.round_export(rnd=rnd, fmt=fmt, out=tmp_path / fmt)["content_sha256"]
        for fmt in export.PREFERENCE_FORMATS
    }
    assert hashes["dpo_jsonl"] == hashes["dpo_parquet"] == hashes["dpo_hf_dataset"]
    assert hashes["kto_jsonl"] == hashes["kto_parquet"] == hashes["kto_hf_dataset"] != hashes["dpo_jsonl"]


def test_an_undone_rejection_reason_no_longer_counts(decided_round):
    rnd, cs, _ = decided_round
    # The pair rejected as a duplicate was, before that, rejected as unhelpful by someone who took it back.
    reviewer = UserFactory(role="annotator")
    dup = cs["duplicate"]
    taken_back = Review.objects.create(candidate=dup, reviewer=reviewer, action="reject", reason="not_helpful")
    Review.objects.create(candidate=dup, reviewer=reviewer, action="undo", undoes=taken_back)
    rows = list(export.preference_rows(rnd, "kto"))
    assert f"candidate-{dup.pk}:rejected" not in [r["id"] for r in rows]
    Review.objects.create(candidate=dup, reviewer=reviewer, action="reject", reason="not_helpful")
    rows = list(export.preference_rows(rnd, "kto"))
    assert [r for r in rows if r["id"] == f"candidate-{dup.pk}:rejected"] == [
        {
            "id": f"candidate-{dup.pk}:rejected",
            "candidate": f"candidate-{dup.pk}",
            "version": dup.version,
            "source": "rejection",
            "prompt": user(TIDES),
            "completion": assistant("Mostly the Moon."),
            "label": False,
        }
    ]


def test_a_round_nobody_reviewed_exports_empty_files_with_their_columns(tmp_path):
    import pyarrow.parquet as pq

    from tests.factories import RoundFactory

    rnd = RoundFactory()
    CandidateFactory(round=rnd, status="kept", rewritten_response="Unjudged.")
    hf = export.round_export(rnd=rnd, fmt="dpo_hf_dataset", out=tmp_path / "dpo")
    ds = load(tmp_path / "dpo", "dpo_hf_dataset")
    assert (hf["count"], hf["counts"], len(ds)) == (0, {}, 0)
    assert ds.column_names == ["id", "candidate", "version", "source", "chosen_from", "prompt", "chosen", "rejected"]
    # `datasets`' Parquet loader refuses a file without rows; the file itself is valid, with its columns.
    parquet = export.round_export(rnd=rnd, fmt="kto_parquet", out=tmp_path / "kto.parquet")
    table = pq.read_table(tmp_path / "kto.parquet")
    assert (parquet["count"], table.num_rows) == (0, 0)
    assert table.column_names == ["id", "candidate", "version", "source", "prompt", "completion", "label"]


def test_the_export_command_writes_preference_formats_and_refuses_them_for_the_seed_set(
    tmp_path, decided_round, capsys
):
    rnd, cs, tides_seed = decided_round
    out = tmp_path / "dpo.jsonl"
    call_command("export", "--round", str(rnd.number), "--format", "dpo_jsonl", "--out", str(out))
    assert [json.loads(line) for line in out.read_text().splitlines()] == expected_dpo(cs, tides_seed)
    assert capsys.readouterr().out == (
        f"Exported 4 records to {out} (+ .manifest.json) (edits 2, edits_response_unchanged 1, excluded_heldout 1,"
        " rejection_pairs 2, rejections 1, rejections_not_about_quality 1, rejections_without_chosen 1)\n"
    )
    with pytest.raises(CommandError, match="use --round N"):
        call_command("export", "--seed", "--format", "kto_jsonl", "--out", str(tmp_path / "x.jsonl"))
    with pytest.raises(CommandError, match="--include-unreviewed is for SFT formats"):
        call_command(
            "export", "--round", str(rnd.number), "--format", "kto_jsonl", "--include-unreviewed", "--out", str(out)
        )


def test_curators_download_dpo_and_kto_jsonl_from_the_dashboard(client, decided_round):
    rnd, cs, tides_seed = decided_round
    client.force_login(UserFactory(role="curator"))
    page = client.get(reverse("round-dashboard", args=[rnd.number])).content.decode()
    url = reverse("round-export", args=[rnd.number])
    assert f'href="{url}?format=dpo_jsonl"' in page and f'href="{url}?format=kto_jsonl"' in page
    for fmt, expected in (("dpo_jsonl", expected_dpo(cs, tides_seed)), ("kto_jsonl", expected_kto(cs))):
        response = client.get(url, {"format": fmt})
        assert response["Content-Disposition"] == f'attachment; filename="round-{rnd.number}-{fmt}.jsonl"'
        lines = b"".join(response.streaming_content).decode().splitlines()
        assert [json.loads(line) for line in lines] == expected
    assert client.get(url, {"format": "dpo_parquet"}).status_code == 404


def test_annotators_cannot_download_preferences(client, decided_round):
    client.force_login(UserFactory(role="annotator"))
    response = client.get(reverse("round-export", args=[decided_round[0].number]), {"format": "dpo_jsonl"})
    assert response.status_code == 403


def _one_step(trainer) -> tuple[int, float]:
    result = trainer.train()
    return trainer.state.global_step, result.training_loss


def _lora():
    from peft import LoraConfig

    # As generation/backends/finetune.py trains: LoRA on every linear layer but the head.
    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def _cpu_args(tmp_path):
    return {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "max_length": 128,
        "learning_rate": 1e-4,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


@pytest.mark.model
def test_a_dpo_export_trains_trls_dpo_trainer_for_one_step(tmp_path, decided_round, model_dir):
    from datasets import load_from_disk
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    export.round_export(rnd=decided_round[0], fmt="dpo_hf_dataset", out=tmp_path / "dpo")
    ds = load_from_disk(str(tmp_path / "dpo"))
    assert len(ds) == 4
    trainer = DPOTrainer(
        model=str(model_dir),
        args=DPOConfig(**_cpu_args(tmp_path)),
        train_dataset=ds,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=_lora(),
    )
    step, loss = _one_step(trainer)
    assert step == 1 and math.isfinite(loss)
    # sigmoid DPO loss at the start: the policy is the reference, so every pair's loss is -log σ(0) = log 2
    assert loss == pytest.approx(math.log(2), abs=1e-3)


@pytest.mark.model
def test_a_kto_export_trains_trls_kto_trainer_for_one_step(tmp_path, decided_round, model_dir):
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    export.round_export(rnd=decided_round[0], fmt="kto_jsonl", out=tmp_path / "kto.jsonl")
    ds = load_dataset("json", data_files=str(tmp_path / "kto.jsonl"), split="train")
    assert (len(ds), sum(ds["label"])) == (8, 4)
    trainer = KTOTrainer(
        model=str(model_dir),
        args=KTOConfig(**_cpu_args(tmp_path)),
        train_dataset=ds,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=_lora(),
    )
    step, loss = _one_step(trainer)
    assert step == 1 and math.isfinite(loss) and loss > 0
