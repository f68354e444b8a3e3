"""Training the backward and forward models of a round (DESIGN.md steps 1 and 7): their data, and the fine-tune
job. One job each on the `gpu` queue; the model row is written with the job's success in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from annotation.models import Candidate, SeedExample, Source
from generation.backends.registry import get_trainer, release
from generation.handlers.stages import check_model_path
from generation.models import Job, ModelVersion, Round
from generation.pipeline import training
from generation.services.jobs import StageError, check_not_cancelled, job_progress, job_round, job_succeed


def heldout_ids(rnd: Round) -> frozenset[int]:
    """The seed pairs frozen out of this round's training (its config), for the held-out evaluation."""
    return rnd.cfg.heldout_ids


def backward_training_rows(rnd: Round) -> list[dict[str, Any]]:
    """M_yx(r)'s data: the round's seed snapshot reversed (response → instruction), plus every instruction a
    human corrected in an earlier round, paired with the web text the backward model saw."""
    held = heldout_ids(rnd)
    ids = [row[0] for row in rnd.seed_snapshot.get("examples", []) if row[0] not in held]
    rows = [
        {"kind": "seed", "id": e.pk, "instruction": e.instruction, "response": e.response}
        for e in SeedExample.objects.filter(pk__in=ids).order_by("pk")
    ]
    if rnd.cfg.train_backward.include_corrections:
        corrected = (
            Candidate.objects.filter(round__number__lt=rnd.number, status=Candidate.Status.EDITED)
            .exclude(final_instruction="")
            .select_related("segment", "round")
            .order_by("pk")
        )
        rows += [
            {"kind": "correction", "id": c.pk, "instruction": c.final_instruction, "response": c.segment.text}
            for c in corrected
            if c.final_instruction.strip() != c.instruction.strip()
        ]
    return rows


def forward_training_rows(rnd: Round) -> list[dict[str, Any]]:
    """M_{r+1}'s data: the seed set after this round's feedback, each pair with its source tag, plus (when the
    round skips review, or asks for it) the kept pairs nobody reviewed, tagged `web`."""
    rows = [
        {"kind": e.source, "id": e.pk, "instruction": e.instruction, "response": e.response}
        for e in SeedExample.objects.filter(is_active=True).exclude(pk__in=heldout_ids(rnd)).order_by("pk")
    ]
    cfg = rnd.cfg
    if cfg.review.mode == "skip" or cfg.train_forward.include_unreviewed:
        kept = rnd.candidates.filter(status=Candidate.Status.KEPT).select_related("segment").order_by("pk")
        rows += [{"kind": "web", "id": f"c{c.pk}", "instruction": c.instruction, "response": c.response} for c in kept]
    return rows


def _on_step(job: Job) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        check_not_cancelled(job)
        job_progress(job=job, done=min(step, total), total=total)

    return report


def _train(job: Job, *, role: str, rows: list[dict[str, Any]], examples: list[training.Example]) -> dict[str, Any]:
    rnd = job_round(job)
    if not examples:
        raise StageError(f"no training data for the {role} model of round {rnd.number}")
    base = rnd.base_model.path
    check_model_path(base, f"train_{role}")
    out_dir = Path(settings.TRAINED_MODELS_DIR) / f"round-{rnd.number}" / role
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "training_data.jsonl").open("w", encoding="utf-8") as f:
        for row, example in zip(rows, examples, strict=True):
            f.write(json.dumps({"kind": row["kind"], "id": row["id"], **example}, ensure_ascii=False) + "\n")
    release()  # the generation engine is not needed while training: give its memory to the trainer
    cfg = rnd.cfg
    trainer = get_trainer(cfg.backend)
    hparams = training.resolve_hparams(
        cfg.training, on_gpu=trainer.on_gpu(), seed=cfg.seed, processes=trainer.processes()
    )
    result = trainer.finetune(
        base_path=base,
        out_dir=out_dir,
        examples=examples,
        hparams=hparams,
        on_step=_on_step(job),
        # A checkpoint is only resumed by the same round's same run (same data and settings).
        resume_key=f"{rnd.config_hash}:{training.data_hash(examples)}",
    )
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    summary = {**result.as_dict(), "data": kinds}
    field = {"backward": "backward_model", "forward": "forward_model"}[role]
    with transaction.atomic():
        check_not_cancelled(job)
        model, _ = ModelVersion.objects.update_or_create(
            role=role,
            path=str(out_dir),
            defaults={
                "name": f"round-{rnd.number}-{role}",
                "parent": rnd.base_model,
                "round": rnd,
                "hyperparameters": hparams.as_dict(),
                "data_hash": training.data_hash(examples),
                "metrics": summary,
            },
        )
        Round.objects.filter(pk=rnd.pk).update(**{field: model})
        job_succeed(job=job, result={**summary, "model": model.pk})
    return summary


def run_train_backward(job: Job) -> dict[str, Any]:
    rnd = job_round(job)
    rows = backward_training_rows(rnd)
    max_chars = rnd.cfg.max_segment_chars
    examples = [training.backward_example(r["instruction"], r["response"], max_chars=max_chars) for r in rows]
    return _train(job, role=ModelVersion.Role.BACKWARD, rows=rows, examples=examples)


def run_train_forward(job: Job) -> dict[str, Any]:
    rnd = job_round(job)
    rows = forward_training_rows(rnd)
    source = {Source.SEED: "seed", Source.SAFETY: "safety", Source.WEB: "web"}
    examples = [training.forward_example(r["instruction"], r["response"], source[r["kind"]]) for r in rows]
    return _train(job, role=ModelVersion.Role.FORWARD, rows=rows, examples=examples)
