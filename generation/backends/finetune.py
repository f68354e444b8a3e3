"""Fine-tuning with TRL's SFTTrainer (+ PEFT LoRA by default), the I/O half of generation/pipeline/training.py.

A run writes checkpoints under `<out_dir>/checkpoints`; a run started again on the same out_dir (after a
killed worker) resumes from the newest one. At the end LoRA adapters are merged into the base weights and the
model is saved as a plain Hugging Face directory, so every backend (vLLM included) loads it like any other.

A worker that owns one GPU (or none) trains in its own process. One that owns several runs the same `finetune`
in one process per GPU under `accelerate launch` (generation/backends/launch.py; DDP, or the strategy of
BACKFORTH_ACCELERATE_CONFIG): `python -m generation.backends.finetune REQUEST` is what each of them runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generation.backends import launch
from generation.backends.base import TrainResult
from generation.backends.devices import gpu_count
from generation.pipeline.devices import training_processes
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
            if on_step is not None and state.is_world_process_zero:  # one report per step, from the first process
                on_step(state.global_step, state.max_steps)

    return Progress()


def prepare_checkpoints(out_dir: Path, resume_key: str) -> Path:
    """`<out_dir>/checkpoints`, kept when an interrupted run with the same `resume_key` left it, else emptied.
    Done once, before any training process starts."""
    checkpoints = out_dir / "checkpoints"
    key_file = checkpoints / "RESUME_KEY"
    if checkpoints.is_dir() and (not key_file.is_file() or key_file.read_text() != resume_key):
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    key_file.write_text(resume_key)
    return checkpoints


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
    launched: bool = False,
) -> TrainResult:
    """Train on `examples` (prompt-completion rows; loss on the completion only) and save the merged model to
    `out_dir`. `on_step(step, max_steps)` is called after every optimiser step (progress, heartbeat, cancel:
    it may raise to stop). Resumes from a checkpoint left in `out_dir` by an interrupted run with the same
    `resume_key`; checkpoints of any other run there are discarded. `launched`: one of the processes of
    `accelerate launch` (the worker prepared the checkpoints; all of them take part in saving)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("no training examples")
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints" if launched else prepare_checkpoints(out_dir, resume_key)
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
    first = trainer.is_world_process_zero()
    if save:
        if launched:
            _save_gathered(trainer, out_dir, base_path, model.dtype, lora=peft_config is not None)
        elif first:
            trained = trainer.model
            if peft_config is not None:
                trained = trained.merge_and_unload()
            trained.save_pretrained(out_dir, safe_serialization=True)
        if first:
            tokenizer.save_pretrained(out_dir)
            (out_dir / "training.json").write_text(
                json.dumps({"hyperparameters": hparams.as_dict(), **result.as_dict()}, indent=1)
            )
    if not keep_checkpoints and first:
        shutil.rmtree(checkpoints, ignore_errors=True)
    del trainer, model
    return result


def _save_gathered(trainer: Any, out_dir: Path, base_path: str | Path, dtype: Any, *, lora: bool) -> None:
    """Save a launched run's model: every process calls the Trainer's save (under FSDP or DeepSpeed ZeRO-3 it
    gathers the sharded weights), then the first process merges the LoRA adapter into a fresh copy of the base
    model (or re-saves the full model) as a plain model directory, like an in-process run."""
    from transformers import AutoModelForCausalLM

    staging = out_dir / "checkpoints" / "final"
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    if lora:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
        merged = PeftModel.from_pretrained(base, str(staging)).merge_and_unload()
    else:
        merged = AutoModelForCausalLM.from_pretrained(staging, dtype=dtype)
    merged.save_pretrained(out_dir, safe_serialization=True)
    shutil.rmtree(staging, ignore_errors=True)


LAUNCH_ENV, CONFIG_ENV = "BACKFORTH_FINETUNE_LAUNCH", "BACKFORTH_ACCELERATE_CONFIG"


class TRLTrainer:
    """The trainer of real rounds: `finetune` above (TRL's SFTTrainer + PEFT LoRA), in the worker's process, or
    under `accelerate launch` in one process per GPU when the worker owns several (BACKFORTH_FINETUNE_LAUNCH:
    auto, accelerate, inprocess; BACKFORTH_ACCELERATE_CONFIG: an accelerate config file for FSDP or DeepSpeed)."""

    name = "trl"

    def on_gpu(self) -> bool:
        return on_gpu()

    def launched_processes(self) -> int:
        """Processes of an `accelerate launch` run, 0 for a run in this process."""
        return training_processes(os.environ.get(LAUNCH_ENV, "").strip() or "auto", gpu_count())

    def processes(self) -> int:
        return self.launched_processes() or 1

    def finetune(self, **kwargs: Any) -> TrainResult:
        processes = self.launched_processes()
        if not processes:
            return finetune(**kwargs)
        prepare_checkpoints(Path(kwargs["out_dir"]), kwargs.get("resume_key", ""))
        return launch.run(processes=processes, config_file=os.environ.get(CONFIG_ENV, "").strip() or None, **kwargs)


def main(argv: list[str]) -> int:
    """One process of a launched fine-tune: `python -m generation.backends.finetune REQUEST` (launch.py)."""
    launch.die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = Path(argv[0])
    result = finetune(**launch.read_request(request), on_step=launch.report_step, launched=True)
    if int(os.environ.get("RANK", "0")) == 0:
        launch.write_result(request.parent, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
