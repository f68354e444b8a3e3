"""The embedded default model: prepared once (by `make test` / `make demo`), loadable, answering."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.backends.embedded import embedded_gguf_path, is_model_dir
from generation.models import ModelVersion

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def prepared_model_dir(model_dir: Path) -> Path:
    assert is_model_dir(model_dir)
    return model_dir


def test_the_gguf_ships_inside_the_installed_wheel():
    path = embedded_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50 * 2**20


def test_prepared_directory_is_plain_safetensors_without_a_quantization_marker(prepared_model_dir):
    import json

    config = json.loads((prepared_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["vocab_size"] == 49152
    assert (prepared_model_dir / "model.safetensors").stat().st_size > 100 * 2**20


def test_the_prepared_model_answers_a_question_with_its_chat_template(prepared_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(prepared_model_dir)
    model = AutoModelForCausalLM.from_pretrained(prepared_model_dir)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.django_db
def test_prepare_model_registers_the_base_model_once(prepared_model_dir):
    out = io.StringIO()
    call_command("prepare_model", stdout=out)
    call_command("prepare_model", stdout=out)
    assert "already prepared" in out.getvalue()
    base = ModelVersion.objects.get(role=ModelVersion.Role.BASE)
    assert base.path == str(prepared_model_dir) and base.name == "SmolLM2-135M-Instruct"


@pytest.mark.django_db
def test_prepare_model_refuses_a_directory_that_is_not_a_model(tmp_path):
    with pytest.raises(CommandError, match="is not a Hugging Face model directory"):
        call_command("prepare_model", path=str(tmp_path), stdout=io.StringIO())
    assert not ModelVersion.objects.exists()
