"""Fine-tuning with TRL's SFTTrainer (+ PEFT LoRA by default), the I/O half of generation/pipeline/training.py.

A run writes checkpoints under `<out_dir>/checkpoints`; a run started again on the same out_dir (after a
killed worker) resumes from the newest one. At the end LoRA adapters are merged into the base weights and the
model is saved as a plain Hugging Face directory, so every backend (vLLM included) loads it like any other.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generation.backends.base import TrainResult
from generation.pipeline.training import Example, HParams

logger = logging.getLogger(__name__)


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint. The Trainer writes trainer_state.json last: a worker killed while saving
    leaves a folder without it, which is not resumable."""
    found = [
        p
        for p in checkpoints.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def _progress_callback(on_step: Callable[[int, int], None] | None) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if on_step is not None:
                on_step(state.global_step, state.max_steps)

    return Progress()


def finetune(
    *,
    base_path: str | Path,
    out_dir: str | Path,
    examples: list[Example],
    hparams: HParams,
    on_step: Callable[[int, int], None] | None = None,
    keep_checkpoints: bool = False,
    save: bool = True,
    resume_key: str = "",
) -> TrainResult:
    """Train on `examples` (prompt-completion rows; loss on the completion only) and save the merged model to
    `out_dir`. `on_step(step, max_steps)` is called after every optimiser step (progress, heartbeat, cancel:
    it may raise to stop). Resumes from a checkpoint left in `out_dir` by an interrupted run with the same
    `resume_key`; checkpoints of any other run there are discarded."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("no training examples")
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints"
    key_file = checkpoints / "RESUME_KEY"
    if checkpoints.is_dir() and (not key_file.is_file() or key_file.read_text() != resume_key):
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    key_file.write_text(resume_key)
    gpu = torch.cuda.is_available()
    bf16 = gpu and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    steps_per_epoch = max(1, math.ceil(len(examples) / hparams.batch_size))
    max_steps = hparams.max_steps or -1
    total_steps = max_steps if max_steps > 0 else math.ceil(steps_per_epoch * hparams.epochs)
    args = SFTConfig(
        output_dir=str(checkpoints),
        per_device_train_batch_size=hparams.per_device_batch_size,
        gradient_accumulation_steps=hparams.gradient_accumulation_steps,
        learning_rate=hparams.learning_rate,
        weight_decay=hparams.weight_decay,
        num_train_epochs=hparams.epochs,
        max_steps=max_steps,
        warmup_steps=math.ceil(hparams.warmup_ratio * total_steps),
        lr_scheduler_type="cosine",
        max_length=hparams.max_length,
        packing=hparams.packing,
        completion_only_loss=True,
        # TRL turns gradient checkpointing on by default: it saves GPU memory by recomputing activations, which
        # on a CPU (where memory is not the limit) only costs time.
        gradient_checkpointing=gpu,
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, total_steps // 4),
        save_total_limit=1,
        report_to="none",
        seed=hparams.seed,
        bf16=bf16,
        use_cpu=not gpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataset_num_proc=None,
    )
    peft_config = None
    if hparams.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=hparams.lora_r,
            lora_alpha=hparams.lora_alpha,
            lora_dropout=hparams.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_progress_callback(on_step)],
    )
    resume = _last_checkpoint(checkpoints)
    resumed_from = int(resume.name.split("-")[-1]) if resume else None
    if resume:
        logger.info("resuming training from %s", resume)
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.monotonic() - started
    state = trainer.state
    curve = [[float(h["step"]), round(float(h["loss"]), 5)] for h in state.log_history if "loss" in h]
    result = TrainResult(
        path=str(out_dir),
        steps=state.global_step,
        epochs=float(state.epoch or 0.0),
        examples=len(examples),
        train_tokens=int(state.num_input_tokens_seen or 0),
        seconds=seconds,
        loss_curve=curve,
        resumed_from_step=resumed_from,
    )
    if save:
        trained = trainer.model
        if peft_config is not None:
            trained = trained.merge_and_unload()
        trained.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        (out_dir / "training.json").write_text(
            json.dumps({"hyperparameters": hparams.as_dict(), **result.as_dict()}, indent=1)
        )
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    del trainer, model
    return result


class TRLTrainer:
    """The trainer of real rounds: `finetune` above (TRL's SFTTrainer + PEFT LoRA)."""

    name = "trl"

    def on_gpu(self) -> bool:
        return on_gpu()

    def finetune(self, **kwargs: Any) -> TrainResult:
        return finetune(**kwargs)
