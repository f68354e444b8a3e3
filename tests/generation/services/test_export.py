"""Dataset export on real PostgreSQL: every format loads with Hugging Face `datasets`, carries a manifest, and
(on the embedded model) feeds TRL's SFTTrainer unchanged."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from generation.services import export
from tests.factories import CandidateFactory, RoundFactory, SeedExampleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed_round():
    rnd = RoundFactory(state="closed", config_hash="abc123")
    CandidateFactory(round=rnd, status="accepted", rewritten_response="Tides come from the Moon.")
    CandidateFactory(round=rnd, status="edited", final_instruction="Fixed?", final_response="Fixed.")
    CandidateFactory(round=rnd, status="rejected")
    return rnd


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_every_format_loads_with_datasets_and_has_a_manifest(tmp_path, reviewed_round, fmt):
    from datasets import load_dataset, load_from_disk

    out = tmp_path / {"messages_jsonl": "d.jsonl", "alpaca_json": "d.json", "parquet": "d.parquet"}.get(fmt, "hf")
    call_command("export", "--round", str(reviewed_round.number), "--format", fmt, "--out", str(out))
    if fmt == "hf_dataset":
        ds = load_from_disk(str(out))
    else:
        ds = load_dataset({"parquet": "parquet"}.get(fmt, "json"), data_files=str(out), split="train")
    assert len(ds) == 2
    manifest = json.loads((tmp_path / f"{out.name}.manifest.json").read_text())
    assert manifest["count"] == 2 and manifest["config_hash"] == "abc123" and manifest["round"] == reviewed_round.number
    records = (tmp_path / manifest["records_file"]).read_text().splitlines()
    expected = reviewed_round.candidates.exclude(status="rejected").order_by("pk")
    assert records == ["id\tversion", *(f"candidate-{c.pk}\t{c.version}" for c in expected)]
    if fmt != "alpaca_json":
        first = ds[0]["messages"]
        assert first[0] == {"role": "system", "content": "Answer with knowledge from web search."}
        assert ds[1]["messages"][1:] == [
            {"role": "user", "content": "Fixed?"},
            {"role": "assistant", "content": "Fixed."},
        ]


def test_seed_export_streams_every_active_example(tmp_path):
    SeedExampleFactory.create_batch(5000, source="safety")
    manifest = export.export_dataset(rows=export.seed_rows(), fmt="messages_jsonl", out=tmp_path / "seed.jsonl")
    assert manifest["count"] == 5000
    assert sum(1 for _ in (tmp_path / "seed.jsonl").open()) == 5000


@pytest.mark.model
def test_an_export_feeds_trls_sft_trainer_unchanged(tmp_path, reviewed_round, model_dir):
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = tmp_path / "train.jsonl"
    export.export_dataset(rows=export.round_rows(reviewed_round), fmt="messages_jsonl", out=out)
    ds = load_dataset("json", data_files=str(out), split="train")
    args = SFTConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=128,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=str(model_dir), args=args, train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(model_dir)
    )
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


def test_curators_download_a_round_as_messages_jsonl(client, reviewed_round):
    from django.urls import reverse

    from tests.factories import UserFactory

    client.force_login(UserFactory(role="curator"))
    response = client.get(reverse("round-export", args=[reviewed_round.number]), {"format": "messages_jsonl"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["messages"][1]["content"] == "Fixed?"
