"""The loop around the model stages (DESIGN.md steps 1, 6, 7, 8): training the backward and forward models,
feedback of reviewed pairs into the seed set, and evaluation of M_{r+1} against M_r.

Training and evaluation are one job each on the `gpu` queue, run by the same worker code as the chunk stages
(claim, heartbeat, cancel, reconcile). Their results are written with the job's success in one transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Candidate, SeedExample, Source
from generation import services, stages
from generation.backends.base import GenerationParams
from generation.backends.registry import release
from generation.models import Job, ModelVersion, Round
from generation.pipeline import config as round_config
from generation.pipeline import evaluation, prompts, signals, training

logger = logging.getLogger(__name__)
EVAL_PROMPTS_FILE = Path(__file__).parent / "data" / "eval_prompts.jsonl"


class ReviewNotOpen(ValueError):
    """The round is not in review, so its review cannot be closed."""


class RoundFinished(ValueError):
    """The round is closed or cancelled already: there is nothing to cancel."""


# --- launching and closing ---------------------------------------------------------------------------------


def default_eval_prompts() -> list[str]:
    return evaluation.parse_prompts_jsonl(EVAL_PROMPTS_FILE.read_text(encoding="utf-8"))


@transaction.atomic
def round_cancel(*, round: Round) -> int:
    """Stop a round: its unfinished jobs are cancelled (a running one stops at its next progress report)."""
    rnd = Round.objects.select_for_update().get(pk=round.pk)
    if rnd.state in (Round.State.CLOSED, Round.State.CANCELLED):
        raise RoundFinished(f"round {rnd.number} is {rnd.state} already")
    n = sum(services.job_cancel(job=j) for j in rnd.jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]))
    services.round_transition(round=rnd, to=Round.State.CANCELLED, expected_from=rnd.state, finished_at=timezone.now())
    return n


def round_start(*, round: Round) -> list[Job]:
    """Launch the round's first stage (train_backward; it passes straight on when there is nothing to train)."""
    return stages.stage_launch(round=round, stage="train_backward")


@transaction.atomic
def round_close_review(*, round: Round, user: Any = None) -> dict[str, int]:
    """End the review of a round (DESIGN.md step 6) and train the forward model on the grown seed set.

    Accepted and edited pairs join the seed set tagged `web` with the candidate as provenance (once: a pair
    already in the seed is not added again); rejections stay on their candidates with their reasons."""
    rnd = Round.objects.select_for_update().get(pk=round.pk)
    if rnd.state != Round.State.REVIEW:
        raise ReviewNotOpen(f"round {rnd.number} is {rnd.state}, not in review")
    reviewed = rnd.candidates.filter(status__in=[Candidate.Status.ACCEPTED, Candidate.Status.EDITED])
    already = set(SeedExample.objects.filter(candidate__round=rnd).values_list("candidate_id", flat=True))
    new = [
        SeedExample(
            instruction=c.final_instruction or c.instruction,
            response=c.final_response or c.response,
            source=Source.WEB,
            provenance={"kind": "candidate", "round": rnd.number, "candidate": c.pk, "status": c.status},
            candidate=c,
            created_by=user,
        )
        for c in reviewed.select_related("segment")
        if c.pk not in already
    ]
    SeedExample.objects.bulk_create(new)
    counts = {
        "added_to_seed": len(new),
        "rejected": rnd.candidates.filter(status=Candidate.Status.REJECTED).count(),
        "unreviewed": rnd.candidates.filter(status__in=[Candidate.Status.KEPT, Candidate.Status.DROPPED]).count(),
    }
    metrics = {**rnd.metrics, "feedback": {**counts, "closed_by": getattr(user, "username", None)}}
    Round.objects.filter(pk=rnd.pk).update(metrics=metrics)
    following = round_config.next_stage(rnd.config, Round.State.REVIEW)
    if following is None:  # cannot happen with the fixed stage list; keeps the state machine total
        raise ReviewNotOpen(f"round {rnd.number} has no stage after review")
    stages.stage_launch(round=rnd, stage=following, expected_from=Round.State.REVIEW)
    logger.info("round %s: review closed, %s", rnd.number, counts)
    return counts


# --- training data ------------------------------------------------------------------------------------------


def heldout_ids(rnd: Round) -> set[int]:
    """The seed pairs frozen out of this round's training (its config), for the held-out evaluation."""
    return set((rnd.config.get("heldout") or {}).get("ids") or [])


def backward_training_rows(rnd: Round) -> list[dict[str, Any]]:
    """M_yx(r)'s data: the round's seed snapshot reversed (response → instruction), plus every instruction a
    human corrected in an earlier round, paired with the web text the backward model saw."""
    held = heldout_ids(rnd)
    ids = [row[0] for row in rnd.seed_snapshot.get("examples", []) if row[0] not in held]
    rows = [
        {"kind": "seed", "id": e.pk, "instruction": e.instruction, "response": e.response}
        for e in SeedExample.objects.filter(pk__in=ids).order_by("pk")
    ]
    if rnd.config["train_backward"]["include_corrections"]:
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
    cfg = rnd.config
    if cfg["review"]["mode"] == "skip" or cfg["train_forward"]["include_unreviewed"]:
        kept = rnd.candidates.filter(status=Candidate.Status.KEPT).select_related("segment").order_by("pk")
        rows += [{"kind": "web", "id": f"c{c.pk}", "instruction": c.instruction, "response": c.response} for c in kept]
    return rows


# --- running training and evaluation -------------------------------------------------------------------------


def _on_step(job: Job) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        stages.check_not_cancelled(job)
        services.job_progress(job=job, done=min(step, total), total=total)

    return report


def _train(job: Job, *, role: str, rows: list[dict[str, Any]], examples: list[training.Example]) -> dict[str, Any]:
    rnd = job.round
    if not examples:
        raise stages.StageError(f"no training data for the {role} model of round {rnd.number}")
    base = rnd.base_model.path
    stages.check_model_path(base, f"train_{role}")
    out_dir = Path(settings.TRAINED_MODELS_DIR) / f"round-{rnd.number}" / role
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "training_data.jsonl").open("w", encoding="utf-8") as f:
        for row, example in zip(rows, examples, strict=True):
            f.write(json.dumps({"kind": row["kind"], "id": row["id"], **example}, ensure_ascii=False) + "\n")
    release()  # the generation engine is not needed while training: give its memory to the trainer
    from generation import finetune

    hparams = training.resolve_hparams(rnd.config["training"], on_gpu=finetune.on_gpu(), seed=rnd.config["seed"])
    result = finetune.finetune(
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
        stages.check_not_cancelled(job)
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
        services.job_succeed(job=job, result={**summary, "model": model.pk})
    return summary


def run_train_backward(job: Job) -> dict[str, Any]:
    rnd = job.round
    rows = backward_training_rows(rnd)
    max_chars = rnd.config["max_segment_chars"]
    examples = [training.backward_example(r["instruction"], r["response"], max_chars=max_chars) for r in rows]
    return _train(job, role=ModelVersion.Role.BACKWARD, rows=rows, examples=examples)


def run_train_forward(job: Job) -> dict[str, Any]:
    rnd = job.round
    rows = forward_training_rows(rnd)
    source = {Source.SEED: "seed", Source.SAFETY: "safety", Source.WEB: "web"}
    examples = [training.forward_example(r["instruction"], r["response"], source[r["kind"]]) for r in rows]
    return _train(job, role=ModelVersion.Role.FORWARD, rows=rows, examples=examples)


def _reference_model(rnd: Round) -> ModelVersion:
    """M_r: the forward model this round curated with (the previous round's), else the base model."""
    return rnd.curation_model or rnd.base_model


def _generate_all(
    job: Job, rnd: Round, path: str, items: list[str], done: int, total: int, params: GenerationParams
) -> list[str]:
    backend = stages.backend_for_path(rnd, "evaluate", path)
    out: list[str] = []
    size = rnd.config["batch_size"]
    for i in range(0, len(items), size):
        stages.check_not_cancelled(job)
        batch = [training.inference_messages(p) for p in items[i : i + size]]
        out += [g.text.strip() for g in backend.generate(batch, params)]
        services.job_progress(job=job, done=done + len(out), total=total)
    return out


def _heldout_pairs(rnd: Round) -> list[tuple[str, str]]:
    ids = heldout_ids(rnd)
    return list(SeedExample.objects.filter(pk__in=ids).order_by("pk").values_list("instruction", "response"))


def _loglik_all(
    job: Job, rnd: Round, path: str, items: list[tuple[Any, str]], done: int, total: int, prefix: str = ""
) -> list[tuple[float, int]]:
    """(sum log p, tokens) of each completion under the model at `path`, batched, reporting progress like
    `_generate_all`; items are (messages, text)."""
    backend = stages.backend_for_path(rnd, "evaluate", path)
    out: list[tuple[float, int]] = []
    size = rnd.config["batch_size"]
    for i in range(0, len(items), size):
        stages.check_not_cancelled(job)
        batch = items[i : i + size]
        ll = backend.loglik([m for m, _ in batch], [t for _, t in batch], assistant_prefix=prefix)
        out += [(x.total, x.tokens) for x in ll]
        services.job_progress(job=job, done=done + len(out), total=total)
    return out


def heldout_items(rnd: Round) -> dict[str, list[tuple[Any, str]]]:
    """What the held-out NLL reads: reference answers after their instruction (forward models, asked as in
    evaluation), and reference instructions after their answer (backward models, asked as in augment)."""
    pairs = _heldout_pairs(rnd)
    max_chars = rnd.config["max_segment_chars"]
    return {
        "forward": [(training.inference_messages(x), y.strip()) for x, y in pairs],
        "backward": [
            (prompts.backward_messages(prompts.truncate(y.strip(), max_chars)[0]), x.strip()) for x, y in pairs
        ],
    }


def run_evaluate(job: Job) -> dict[str, Any]:
    """M_{r+1} (candidate) vs M_r (reference): judged pairwise in both orders on the evaluation prompts, with
    the judge's order consistency; the held-out NLL of the reference answers (M_{r+1} vs M_r) and instructions
    (M_yx(r) vs B) with bootstrap intervals; and the agreement of each curation signal with the review."""
    rnd = job.round
    cfg = rnd.config["evaluation"]
    if rnd.forward_model_id is None:
        raise stages.StageError(f"round {rnd.number} has no forward model to evaluate")
    eval_prompts = cfg["prompts"] or default_eval_prompts()  # frozen at launch; older configs: the shipped set
    if cfg["limit"]:
        eval_prompts = eval_prompts[: cfg["limit"]]
    n = len(eval_prompts)
    held = heldout_items(rnd)
    backward = rnd.backward_model if rnd.backward_model_id else None
    n_held = len(held["forward"])
    # candidate and reference answers, two judgements per prompt; held-out texts under 2 (or 4) models
    total = 4 * n + n_held * (4 if backward else 2)
    params = GenerationParams(max_new_tokens=cfg["max_new_tokens"], temperature=0.0, seed=rnd.config["seed"])
    candidate, reference = rnd.forward_model, _reference_model(rnd)
    judge = rnd.config["models"]["judge"] or rnd.base_model.path
    started = time.monotonic()
    answers_c = _generate_all(job, rnd, candidate.path, eval_prompts, 0, total, params)
    held_c = _loglik_all(job, rnd, candidate.path, held["forward"], n, total)
    answers_r = _generate_all(job, rnd, reference.path, eval_prompts, n + n_held, total, params)
    held_r = _loglik_all(job, rnd, reference.path, held["forward"], 2 * n + n_held, total)
    generated = time.monotonic()
    backend = stages.backend_for_path(rnd, "evaluate", judge)
    first = [prompts.judge_messages(p, c, r) for p, c, r in zip(eval_prompts, answers_c, answers_r, strict=True)]
    second = [prompts.judge_messages(p, r, c) for p, c, r in zip(eval_prompts, answers_c, answers_r, strict=True)]
    probs: list[list[float]] = []
    size = rnd.config["batch_size"]
    for i in range(0, 2 * n, size):
        stages.check_not_cancelled(job)
        batch = (first + second)[i : i + size]
        probs += backend.score(batch, prompts.JUDGE_OPTIONS, assistant_prefix=prompts.JUDGE_PREFIX)
        services.job_progress(job=job, done=2 * n_held + 2 * n + len(probs), total=total)
    judged = time.monotonic()
    heldout: dict[str, Any] = {
        "forward": {
            **evaluation.nll_comparison(held_c, held_r, seed=rnd.config["seed"]),
            "new_model": candidate.name,
            "old_model": reference.name,
        }
    }
    if backward is not None and n_held:
        done = 4 * n + 2 * n_held
        bw_base = _loglik_all(job, rnd, rnd.base_model.path, held["backward"], done, total, prompts.BACKWARD_PREFIX)
        bw_new = _loglik_all(job, rnd, backward.path, held["backward"], done + n_held, total, prompts.BACKWARD_PREFIX)
        heldout["backward"] = {
            **evaluation.nll_comparison(bw_new, bw_base, seed=rnd.config["seed"]),
            "new_model": backward.name,
            "old_model": rnd.base_model.name,
        }
    verdicts = [evaluation.pairwise_verdict(probs[i], probs[n + i]) for i in range(n)]
    rates = evaluation.win_rates(verdicts, [len(a) for a in answers_c], [len(a) for a in answers_r])
    result = {
        **rates,
        "judge_consistency": evaluation.judge_consistency(verdicts),
        "judge_min_consistency": evaluation.JUDGE_MIN_CONSISTENCY,
        "heldout": heldout,
        "candidate": {"id": candidate.pk, "name": candidate.name, "path": candidate.path},
        "reference": {"id": reference.pk, "name": reference.name, "path": reference.path},
        "judge": judge,
        "prompt_set": cfg.get("prompt_set") or "uploaded",
        "generate_seconds": round(generated - started, 2),
        "judge_pairs_per_s": round(n / (judged - generated), 3) if judged > generated else None,
        "pairs": [
            {"prompt": p, "candidate": c, "reference": r, **v}
            for p, c, r, v in zip(eval_prompts, answers_c, answers_r, verdicts, strict=True)
        ],
    }
    result["headline"] = evaluation.headline(result)
    curation = curation_quality(rnd)
    with transaction.atomic():
        stages.check_not_cancelled(job)
        fresh = Round.objects.select_for_update().get(pk=rnd.pk)
        fresh.metrics = {**fresh.metrics, "evaluation": result, "curation": curation}
        fresh.save(update_fields=["metrics"])
        summary = {k: v for k, v in result.items() if k != "pairs"}
        ModelVersion.objects.filter(pk=candidate.pk).update(metrics={**candidate.metrics, "evaluation": summary})
        if backward is not None and "backward" in heldout:
            ModelVersion.objects.filter(pk=backward.pk).update(
                metrics={**backward.metrics, "heldout": heldout["backward"]}
            )
        services.job_succeed(job=job, result=summary)
    return summary


def curation_quality(rnd: Round) -> dict[str, Any]:
    """The model's keep decision and score against the human decisions on the same pairs, and each curation
    signal's AUC for telling accepted (and edited) pairs from rejected ones."""
    rows = list(
        rnd.candidates.filter(status__in=Candidate.REVIEWED, kept_by_curation__isnull=False, score__isnull=False)
        .values_list("score", "kept_by_curation", "status", "signals", "keep_score")
        .order_by("pk")
    )
    accepted = [r[2] != Candidate.Status.REJECTED for r in rows]
    keep_scores = [r[4] if r[4] is not None else r[0] for r in rows]
    agreement = evaluation.curation_agreement(keep_scores, [r[1] for r in rows], accepted)
    # Pairs curated before the likelihood signals existed still have their rubric score in `score`.
    rows_signals = [{"rubric": r[0], **(r[3] or {})} for r in rows]
    return {**agreement, "signal_auc": signals.signal_aucs(rows_signals, accepted)}


RUNNERS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "train_backward": run_train_backward,
    "train_forward": run_train_forward,
    "evaluate": run_evaluate,
}
