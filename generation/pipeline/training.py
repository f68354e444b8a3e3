"""Training data and hyperparameters for the backward and forward models. Pure: no Django, no torch.

Examples are TRL's conversational *prompt-completion* rows ({"prompt": [messages], "completion": [messages]}):
SFTTrainer applies the base model's chat template and computes the loss on the completion only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from generation.pipeline import prompts
from generation.pipeline.frozen import Section

# Humpback (Li et al. 2023) tags each data source with its own system prompt when fine-tuning the forward model.
SYSTEM_PROMPTS = {
    "seed": "Answer in the style of an AI Assistant.",
    "safety": "Answer in the style of an AI Assistant.",
    "web": "Answer with knowledge from web search.",
}
# At inference (evaluation) the forward model is asked in the seed style, as in the paper.
INFERENCE_SYSTEM_PROMPT = SYSTEM_PROMPTS["seed"]

Example = dict[str, list[dict[str, str]]]

Method = Literal["lora", "full"]
METHODS: tuple[Method, ...] = ("lora", "full")


@dataclass(frozen=True)
class TrainingConfig(Section):
    """How a round trains its backward and forward models (frozen in its config as `training`). The papers'
    settings (full fine-tuning of LLaMA: lr 1e-5, weight decay 0.1, batch 32); LoRA takes a higher rate. None =
    chosen by `resolve_hparams` for the method and the device."""

    method: Method = "lora"
    learning_rate: float | None = None
    weight_decay: float = 0.1
    batch_size: int = 32
    epochs: float = 3
    max_steps: int | None = None
    max_length: int = 1024
    # None = by device: TRL's BFD packing on a GPU; off on a CPU, where `make bench` measured packed batches of
    # 4 x 384 tokens 28% slower per real token than padded ones (finetune.packing_speedup: 69 vs 96 tokens/s).
    packing: bool | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    warmup_ratio: float = 0.03
    # Smaller batches, sequences and epochs when training on a CPU, so a round finishes in minutes.
    scale_down_on_cpu: bool = True


TRAINING_DEFAULTS: dict[str, Any] = TrainingConfig().as_dict()
LEARNING_RATES = {"full": 1e-5, "lora": 2e-4}
# A CPU run takes a few dozen steps, not thousands: LoRA needs a higher rate to move in that many (measured on
# the embedded model: held-out NLL falls with 1e-3 in 8–16 steps, not with 2e-4).
CPU_LEARNING_RATES = {"full": 1e-5, "lora": 1e-3}
# Measured on 2 cores with the 135M model: ~25 s per step of 4 × 384 tokens.
CPU_LIMITS = {"batch_size": 4, "max_length": 384, "epochs": 1, "max_steps": 6}


def backward_example(instruction: str, response: str, *, max_chars: int) -> Example:
    """(response → instruction): the backward model M_yx sees the text exactly as the augment stage shows it
    and answers with BACKWARD_PREFIX + the instruction, so generation can keep forcing that prefix."""
    text, _ = prompts.truncate(response.strip(), max_chars)
    return {
        "prompt": prompts.backward_messages(text),
        "completion": [{"role": "assistant", "content": prompts.BACKWARD_PREFIX + instruction.strip()}],
    }


def forward_example(instruction: str, response: str, source: str) -> Example:
    """(instruction → response) with the source's system prompt (Humpback's tagging)."""
    if source not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SYSTEM_PROMPTS)}")
    return {
        "prompt": [
            {"role": "system", "content": SYSTEM_PROMPTS[source]},
            {"role": "user", "content": instruction.strip()},
        ],
        "completion": [{"role": "assistant", "content": response.strip()}],
    }


def inference_messages(prompt: str) -> list[dict[str, str]]:
    """How evaluation asks a forward (or base) model: the seed-style system prompt, then the prompt."""
    return [{"role": "system", "content": INFERENCE_SYSTEM_PROMPT}, {"role": "user", "content": prompt.strip()}]


def heldout_split(examples: Iterable[tuple[int, str]], *, fraction: float, minimum: int, maximum: int) -> list[int]:
    """The ids of the seed pairs held out of training, from (id, instruction) rows. A pair is held out when a
    hash of its instruction falls under `fraction`, so the split of a pair never changes as the seed set grows;
    topped up by the lowest hashes to `minimum` and cut to `maximum`, and never more than a quarter of the set
    (the models still need data to train on). Sorted ids."""
    rows = list(examples)
    if fraction <= 0 and minimum <= 0:
        return []
    ranked = sorted(rows, key=lambda r: (_unit_hash(r[1]), r[0]))
    chosen = [r for r in ranked if _unit_hash(r[1]) < fraction]
    size = min(max(len(chosen), minimum), maximum, len(rows) // 4)
    return sorted(r[0] for r in ranked[:size])


def _unit_hash(text: str) -> float:
    digest = hashlib.sha256(("heldout:" + " ".join(text.lower().split())).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def data_hash(examples: Iterable[Example]) -> str:
    """sha256 over the training rows in order: two models trained on the same data share it."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class HParams:
    method: str
    learning_rate: float
    weight_decay: float
    per_device_batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    max_steps: int | None
    max_length: int
    packing: bool
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    warmup_ratio: float
    seed: int
    # Training processes (one per GPU under `accelerate launch`, DDP): the batch is split over them.
    processes: int = 1

    @property
    def batch_size(self) -> int:
        return self.per_device_batch_size * self.gradient_accumulation_steps * self.processes

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["batch_size"] = self.batch_size
        return out


def validate_training(cfg: dict[str, Any]) -> None:
    """Raise ValueError naming the key when a training setting is wrong."""
    if cfg["method"] not in METHODS:
        raise ValueError(f"training.method must be one of {', '.join(METHODS)}, got {cfg['method']!r}")
    for key in ("batch_size", "max_length", "lora_r", "lora_alpha"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"training.{key} must be a positive integer, got {value!r}")
    if cfg["max_steps"] is not None and (not isinstance(cfg["max_steps"], int) or cfg["max_steps"] < 1):
        raise ValueError(f"training.max_steps must be a positive integer or null, got {cfg['max_steps']!r}")
    if not isinstance(cfg["epochs"], int | float) or cfg["epochs"] <= 0:
        raise ValueError(f"training.epochs must be > 0, got {cfg['epochs']!r}")
    if cfg["packing"] is not None and not isinstance(cfg["packing"], bool):
        raise ValueError(f"training.packing must be true, false or null (by device), got {cfg['packing']!r}")
    lr = cfg["learning_rate"]
    if lr is not None and (not isinstance(lr, int | float) or not 0 < lr < 1):
        raise ValueError(f"training.learning_rate must be between 0 and 1, got {lr!r}")
    for key in ("weight_decay", "lora_dropout", "warmup_ratio"):
        if not isinstance(cfg[key], int | float) or not 0 <= cfg[key] < 1:
            raise ValueError(f"training.{key} must be in [0, 1), got {cfg[key]!r}")


def resolve_hparams(
    cfg: TrainingConfig | Mapping[str, Any],
    *,
    on_gpu: bool,
    seed: int = 0,
    per_device_max: int = 8,
    processes: int = 1,
) -> HParams:
    """The round's training settings made concrete for this device: the learning rate for the method, the
    batch split into per-device batches × gradient accumulation × `processes` (one per GPU of a DDP run: the
    round's batch stays the same however many GPUs train it), and on a CPU the scaled-down limits."""
    t = TrainingConfig.of(cfg)
    batch, max_length, epochs, max_steps = t.batch_size, t.max_length, t.epochs, t.max_steps
    rates = LEARNING_RATES
    if not on_gpu and t.scale_down_on_cpu:
        rates = CPU_LEARNING_RATES
        batch = min(batch, CPU_LIMITS["batch_size"])
        max_length = min(max_length, CPU_LIMITS["max_length"])
        epochs = min(epochs, CPU_LIMITS["epochs"])
        # An explicit step count is honoured (the demo asks for several passes over its small seed set).
        max_steps = max_steps or CPU_LIMITS["max_steps"]
    if processes < 1:
        raise ValueError(f"need at least one training process, got {processes}")
    per_device = min(-(-batch // processes), per_device_max)
    return HParams(
        method=t.method,
        learning_rate=t.learning_rate or rates[t.method],
        weight_decay=t.weight_decay,
        per_device_batch_size=per_device,
        gradient_accumulation_steps=max(1, batch // (per_device * processes)),
        epochs=epochs,
        max_steps=max_steps,
        max_length=max_length,
        packing=on_gpu if t.packing is None else t.packing,
        lora_r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        warmup_ratio=t.warmup_ratio,
        seed=seed,
        processes=processes,
    )
