"""Pure logic of rounds: the stage order, training rows and hyperparameters (no database, no model)."""

import pytest

from generation.pipeline import config as round_config
from generation.pipeline import prompts, training


def test_the_round_runs_every_stage_in_order_and_can_skip_review():
    cfg = round_config.validate({})
    assert round_config.round_stages(cfg) == (
        "train_backward",
        "augment",
        "curate",
        "rewrite",
        "review",
        "train_forward",
        "evaluate",
    )
    assert round_config.next_stage(cfg, "rewrite") == "review"
    assert round_config.next_stage(cfg, "evaluate") is None
    skip = round_config.validate({"review": {"mode": "skip"}, "order": "rewrite_filter"})
    assert round_config.next_stage(skip, "augment") == "rewrite"
    assert round_config.next_stage(skip, "curate") == "train_forward"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"review": {"mode": "maybe"}}, "review.mode"),
        ({"training": {"method": "qlora"}}, "training.method"),
        ({"training": {"max_steps": 0}}, "training.max_steps"),
        ({"training": {"learning_rate": 3}}, "training.learning_rate"),
        ({"evaluation": {"prompts": ["ok", ""]}}, "evaluation.prompts"),
        ({"models": {"judge": 3}}, "models.judge"),
    ],
)
def test_bad_round_settings_are_refused_by_name(override, message):
    with pytest.raises(round_config.ConfigError, match=message):
        round_config.validate(override)


def test_backward_examples_train_on_the_prompt_the_augment_stage_uses():
    ex = training.backward_example("What is a tuple?", "A tuple is an immutable sequence.", max_chars=6000)
    assert ex["prompt"] == prompts.backward_messages("A tuple is an immutable sequence.")
    assert ex["completion"] == [{"role": "assistant", "content": "Question: What is a tuple?"}]
    long = training.backward_example("Q?", "word. " * 5000, max_chars=100)
    assert long["prompt"] == prompts.backward_messages(" ".join(["word."] * 16))  # cut to 95 chars at a sentence end


def test_forward_examples_carry_humpbacks_source_tags():
    seed = training.forward_example("Q?", "A.", "seed")
    web = training.forward_example("Q?", "A.", "web")
    assert seed["prompt"][0] == {"role": "system", "content": "Answer in the style of an AI Assistant."}
    assert web["prompt"][0] == {"role": "system", "content": "Answer with knowledge from web search."}
    assert training.data_hash([seed]) != training.data_hash([web])
    with pytest.raises(ValueError, match="unknown source"):
        training.forward_example("Q?", "A.", "forum")


def test_hyperparameters_follow_the_papers_on_gpu_and_scale_down_on_cpu():
    cfg = round_config.validate({})["training"]
    gpu = training.resolve_hparams(cfg, on_gpu=True)
    assert (gpu.batch_size, gpu.weight_decay, gpu.learning_rate, gpu.epochs) == (32, 0.1, 2e-4, 3)
    assert (gpu.per_device_batch_size, gpu.gradient_accumulation_steps) == (8, 4)
    full = training.resolve_hparams({**cfg, "method": "full"}, on_gpu=True)
    assert full.learning_rate == 1e-5
    cpu = training.resolve_hparams(cfg, on_gpu=False)
    assert (cpu.batch_size, cpu.max_length, cpu.max_steps) == (4, 384, 6), "training.CPU_LIMITS"
    assert cpu.learning_rate == 1e-3, "a few CPU steps need a higher LoRA rate"
    asked = training.resolve_hparams({**cfg, "max_steps": 20}, on_gpu=False)
    assert (asked.max_steps, asked.per_device_batch_size) == (20, 4), "an explicit step count is honoured"
    exact = training.resolve_hparams({**cfg, "scale_down_on_cpu": False}, on_gpu=False)
    assert (exact.batch_size, exact.learning_rate) == (32, 2e-4)
    assert (gpu.packing, cpu.packing) == (True, False), "packing by device unless the config says"
    assert training.resolve_hparams({**cfg, "packing": True}, on_gpu=False).packing is True
    with pytest.raises(ValueError, match="training.packing"):
        training.validate_training({**cfg, "packing": "yes"})
