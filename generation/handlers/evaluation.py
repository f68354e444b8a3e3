"""Evaluating a round (DESIGN.md step 8): M_{r+1} against M_r, judged pairwise in both orders; held-out NLL of the
reference answers and instructions with bootstrap intervals; and how well curation agreed with the review.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from annotation.models import SeedExample
from generation.backends.base import GenerationParams
from generation.data import builtin_eval_prompts
from generation.handlers.stages import backend_for_path
from generation.handlers.training import heldout_ids
from generation.models import Job, ModelVersion, Round
from generation.pipeline import evaluation, prompts, statistics, training
from generation.selectors import curation_quality
from generation.services.jobs import CallProgress, StageError, check_not_cancelled, job_round, job_succeed


def _reference_model(rnd: Round) -> ModelVersion:
    """M_r: the forward model this round curated with (the previous round's), else the base model."""
    return rnd.curation_model or rnd.base_model


def _generate_all(
    job: Job, rnd: Round, path: str, items: list[str], done: int, total: int, params: GenerationParams
) -> list[str]:
    """Answers to every item from the model at `path`, in one backend call (it batches them itself), reporting
    progress as answers finish."""
    backend = backend_for_path(rnd, "evaluate", path)
    check_not_cancelled(job)
    progress = CallProgress(job, total=total, done=done, write_total=True)
    out = backend.generate([training.inference_messages(p) for p in items], params, progress=progress)
    progress.flush()
    return [g.text.strip() for g in out]


def _heldout_pairs(rnd: Round) -> list[tuple[str, str]]:
    ids = heldout_ids(rnd)
    return list(SeedExample.objects.filter(pk__in=ids).order_by("pk").values_list("instruction", "response"))


def _loglik_all(
    job: Job, rnd: Round, path: str, items: list[tuple[Any, str]], done: int, total: int, prefix: str = ""
) -> list[tuple[float, int]]:
    """(sum log p, tokens) of each completion under the model at `path`, in one backend call, reporting progress
    like `_generate_all`; items are (messages, text)."""
    backend = backend_for_path(rnd, "evaluate", path)
    check_not_cancelled(job)
    progress = CallProgress(job, total=total, done=done, write_total=True)
    ll = backend.loglik([m for m, _ in items], [t for _, t in items], assistant_prefix=prefix, progress=progress)
    progress.flush()
    return [(x.total, x.tokens) for x in ll]


def heldout_items(rnd: Round) -> dict[str, list[tuple[Any, str]]]:
    """What the held-out NLL reads: reference answers after their instruction (forward models, asked as in
    evaluation), and reference instructions after their answer (backward models, asked as in augment)."""
    pairs = _heldout_pairs(rnd)
    max_chars = rnd.cfg.max_segment_chars
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
    rnd = job_round(job)
    cfg = rnd.cfg
    candidate, reference = rnd.forward_model, _reference_model(rnd)
    if candidate is None:
        raise StageError(f"round {rnd.number} has no forward model to evaluate")
    # Frozen at launch; older configs: the shipped set.
    eval_prompts = list(cfg.evaluation.prompts or builtin_eval_prompts())
    if cfg.evaluation.limit:
        eval_prompts = eval_prompts[: cfg.evaluation.limit]
    n = len(eval_prompts)
    held = heldout_items(rnd)
    backward = rnd.backward_model
    n_held = len(held["forward"])
    # candidate and reference answers, two judgements per prompt; held-out texts under 2 (or 4) models
    total = 4 * n + n_held * (4 if backward else 2)
    params = GenerationParams(max_new_tokens=cfg.evaluation.max_new_tokens, temperature=0.0, seed=cfg.seed)
    judge = cfg.models.judge or rnd.base_model.path
    started = time.monotonic()
    answers_c = _generate_all(job, rnd, candidate.path, eval_prompts, 0, total, params)
    held_c = _loglik_all(job, rnd, candidate.path, held["forward"], n, total)
    answers_r = _generate_all(job, rnd, reference.path, eval_prompts, n + n_held, total, params)
    held_r = _loglik_all(job, rnd, reference.path, held["forward"], 2 * n + n_held, total)
    generated = time.monotonic()
    backend = backend_for_path(rnd, "evaluate", judge)
    first = [prompts.judge_messages(p, c, r) for p, c, r in zip(eval_prompts, answers_c, answers_r, strict=True)]
    second = [prompts.judge_messages(p, r, c) for p, c, r in zip(eval_prompts, answers_c, answers_r, strict=True)]
    # Both orders in one call: a prompt's two judgements share the judge's preamble and the question (prefix cache).
    check_not_cancelled(job)
    progress = CallProgress(job, total=total, done=2 * n_held + 2 * n, write_total=True)
    probs = backend.score(
        first + second, prompts.JUDGE_OPTIONS, assistant_prefix=prompts.JUDGE_PREFIX, progress=progress
    )
    progress.flush()
    judged = time.monotonic()
    heldout: dict[str, Any] = {
        "forward": {
            **statistics.nll_comparison(held_c, held_r, seed=cfg.seed),
            "new_model": candidate.name,
            "old_model": reference.name,
        }
    }
    if backward is not None and n_held:
        done = 4 * n + 2 * n_held
        bw_base = _loglik_all(job, rnd, rnd.base_model.path, held["backward"], done, total, prompts.BACKWARD_PREFIX)
        bw_new = _loglik_all(job, rnd, backward.path, held["backward"], done + n_held, total, prompts.BACKWARD_PREFIX)
        heldout["backward"] = {
            **statistics.nll_comparison(bw_new, bw_base, seed=cfg.seed),
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
        "prompt_set": cfg.evaluation.prompt_set or "uploaded",
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
        check_not_cancelled(job)
        fresh = Round.objects.select_for_update().get(pk=rnd.pk)
        fresh.metrics = {**fresh.metrics, "evaluation": result, "curation": curation}
        fresh.save(update_fields=["metrics"])
        summary = {k: v for k, v in result.items() if k != "pairs"}
        ModelVersion.objects.filter(pk=candidate.pk).update(metrics={**candidate.metrics, "evaluation": summary})
        if backward is not None and "backward" in heldout:
            ModelVersion.objects.filter(pk=backward.pk).update(
                metrics={**backward.metrics, "heldout": heldout["backward"]}
            )
        job_succeed(job=job, result=summary)
    return summary
