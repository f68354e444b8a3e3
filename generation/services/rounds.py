"""A round's life: launch (config validated, frozen and hashed; seed snapshot; held-out split), its stages launched,
advanced, cancelled and retried, review closed, the round cancelled.

`round_transition` is the only writer of `Round.state` (pipeline/lifecycle.py says which moves are legal). A stage
is launched once: its items are fixed and split into chunks, one Job row each (unique per round, stage, chunk);
when the last chunk of a stage is done, `stage_advance` moves the round to the next stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Value
from django.db.models.functions import MD5, Cast, Concat
from django.utils import timezone

from annotation import services as annotation_services
from annotation.models import Candidate, SeedExample, Source
from annotation.queue import queue_build
from generation.backends.devices import gpu_count
from generation.backends.registry import fake_backend_allowed
from generation.data import builtin_eval_prompts
from generation.models import Corpus, Job, ModelVersion, Round, Segment
from generation.pipeline import config as round_config
from generation.pipeline import lifecycle, signals, training
from generation.pipeline.devices import tensor_parallel_problem
from generation.selectors import worker_gpu_counts
from generation.services.jobs import StageError, enqueue_job, job_cancel, job_retry

logger = logging.getLogger(__name__)
STAGES = round_config.JOB_STAGES


class ReviewNotOpen(ValueError):
    """The round is not in review, so its review cannot be closed."""


class RoundFinished(ValueError):
    """The round is closed or cancelled already: there is nothing to cancel."""


class GuidelinesRefused(ValueError):
    """Guidelines that cannot be set: too long, or the round is closed or cancelled."""


class StageActionRefused(ValueError):
    """A stage action the round's state does not allow (retrying a stage of a closed round, or one it has left)."""


def _seed_snapshot() -> dict[str, Any]:
    """The seed set S_r as it is now: ids with versions, and a hash of that list."""
    rows = list(SeedExample.objects.filter(is_active=True).order_by("id").values_list("id", "version", "source"))
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    return {"examples": [[i, v, s] for i, v, s in rows], "count": len(rows), "hash": digest}


def _choose_heldout(held: round_config.HeldoutConfig) -> list[int]:
    """The human-written seed pairs (source `seed`) no model of the round trains on (pipeline/training.py)."""
    rows = SeedExample.objects.filter(is_active=True, source=Source.SEED).values_list("id", "instruction")
    return training.heldout_split(rows, fraction=held.fraction, minimum=held.min, maximum=held.max)


def round_check_devices(cfg: round_config.RoundConfig) -> None:
    """Refuse (ConfigError) a tensor_parallel_size that no worker can run: more GPUs than the best-equipped live
    worker on queue gpu registered, or, when none runs, than this host has. A host without GPUs and no worker
    running cannot tell: the worker checks when it loads the model."""
    if cfg.tensor_parallel_size == 1 or cfg.backend in ("transformers", round_config.FAKE_BACKEND):
        return
    counts = worker_gpu_counts()
    if counts:
        problem = tensor_parallel_problem(cfg.tensor_parallel_size, max(counts), "the best-equipped live worker")
    else:
        problem = tensor_parallel_problem(cfg.tensor_parallel_size, gpu_count() or None, "this host")
    if problem:
        raise round_config.ConfigError(problem)


@transaction.atomic
def round_create(
    *,
    corpus: Corpus,
    base_model: ModelVersion,
    config: dict[str, Any] | None = None,
    created_by: Any = None,
    guidelines: str = "",
) -> Round:
    """A new round with its config validated, frozen and hashed, and a snapshot of the seed set. `guidelines`
    (markdown for the annotators) is kept beside the config, outside its hash: it may be edited while the round
    runs (round_guidelines_update)."""
    guidelines = _clean_guidelines(guidelines)
    cfg = round_config.parse(config, allow_fake_backend=fake_backend_allowed())
    round_check_devices(cfg)
    if cfg.evaluation.prompts is None:
        # Frozen into the config (and its hash) so the evaluation of this round can always be reproduced.
        cfg = cfg.replace(
            evaluation=cfg.evaluation.replace(prompts=tuple(builtin_eval_prompts()), prompt_set="builtin")
        )
    if cfg.heldout.ids is None:
        cfg = cfg.replace(heldout=cfg.heldout.replace(ids=tuple(_choose_heldout(cfg.heldout))))
    frozen = cfg.as_dict()
    last = Round.objects.select_for_update().order_by("-number").first()
    previous = Round.objects.filter(state=Round.State.CLOSED).order_by("-number").first()
    return Round.objects.create(
        number=(last.number + 1) if last else 1,
        corpus=corpus,
        base_model=base_model,
        config=frozen,
        config_hash=round_config.config_hash(frozen),
        seed_snapshot=_seed_snapshot(),
        # Round r+1 curates with M_r when there is one (DESIGN.md step 3).
        curation_model=previous.forward_model if previous else None,
        created_by=created_by,
        guidelines=guidelines,
    )


def _clean_guidelines(text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if len(text) > Round.GUIDELINES_MAX_CHARS:
        raise GuidelinesRefused(f"the guidelines are longer than {Round.GUIDELINES_MAX_CHARS:,} characters")
    return text


@transaction.atomic
def round_guidelines_update(*, round: Round, text: str, user: Any = None) -> Round:
    """Replace a round's guidelines (markdown), also while annotators review it; the change, before and after,
    goes to the audit log. Refused once the round is closed or cancelled: nobody reviews it any more."""
    text = _clean_guidelines(text)
    rnd = Round.objects.select_for_update().get(pk=round.pk)
    if rnd.state in (Round.State.CLOSED, Round.State.CANCELLED):
        raise GuidelinesRefused(f"round {rnd.number} is {rnd.state}: its guidelines can no longer change")
    if text != rnd.guidelines:
        annotation_services.audit(
            user=user,
            action="round.guidelines",
            obj=rnd,
            before={"guidelines": rnd.guidelines},
            after={"guidelines": text},
        )
        Round.objects.filter(pk=rnd.pk).update(guidelines=text)
    round.guidelines = rnd.guidelines = text
    return rnd


def round_transition(
    *, round: Round, to: str, expected_from: str | Iterable[str] | None = None, **fields: Any
) -> Round:
    """Move `round` to state `to`, with `fields` (started_at, finished_at, error) in the same UPDATE. The only
    writer of `Round.state`.

    One conditional UPDATE: the row moves only if its state, read at write time, is one `to` may be reached
    from (pipeline/lifecycle.py) and, when `expected_from` is given, one of those too. Two workers racing
    cannot both move it, nor one overwrite the other's move. Raises IllegalTransition when the lifecycle
    refuses the move from the row's state, StaleTransition when the move is legal but the round is no longer
    at `expected_from`; the row is left as it was."""
    allowed = lifecycle.sources(to)
    expected = None
    if expected_from is not None:
        expected = frozenset([expected_from] if isinstance(expected_from, str) else expected_from)
        allowed &= expected
    moved = Round.objects.filter(pk=round.pk, state__in=allowed).update(state=to, **fields)
    if not moved:
        current = Round.objects.filter(pk=round.pk).values_list("state", flat=True).first()
        if current is None:
            raise Round.DoesNotExist(f"round {round.number} does not exist")
        lifecycle.check(current, to, number=round.number)
        raise lifecycle.StaleTransition(round.number, current, to, expected or allowed)
    round.state = to
    for name, value in fields.items():
        setattr(round, name, value)
    return round


def round_start(*, round: Round) -> list[Job]:
    """Launch the round's first stage (train_backward; it passes straight on when there is nothing to train)."""
    return stage_launch(round=round, stage="train_backward")


@transaction.atomic
def round_cancel(*, round: Round) -> int:
    """Stop a round: its unfinished jobs are cancelled (a running one stops at its next progress report)."""
    rnd = Round.objects.select_for_update().get(pk=round.pk)
    if rnd.state in (Round.State.CLOSED, Round.State.CANCELLED):
        raise RoundFinished(f"round {rnd.number} is {rnd.state} already")
    n = sum(job_cancel(job=j) for j in rnd.jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]))
    round_transition(round=rnd, to=Round.State.CANCELLED, expected_from=rnd.state, finished_at=timezone.now())
    return n


@transaction.atomic
def round_close_review(*, round: Round, user: Any = None) -> dict[str, int]:
    """End the review of a round (DESIGN.md step 6) and train the forward model on the grown seed set.

    Accepted and edited pairs join the seed set tagged `web` with the candidate as provenance (once: a pair
    already in the seed is not added again); rejections stay on their candidates with their reasons."""
    rnd = Round.objects.select_for_update().get(pk=round.pk)
    if rnd.state != Round.State.REVIEW:
        raise ReviewNotOpen(f"round {rnd.number} is {rnd.state}, not in review")
    counts = annotation_services.seed_feedback(round=rnd, user=user)
    metrics = {**rnd.metrics, "feedback": {**counts, "closed_by": getattr(user, "username", None)}}
    Round.objects.filter(pk=rnd.pk).update(metrics=metrics)
    following = rnd.cfg.next_stage(Round.State.REVIEW)
    if following is None:  # cannot happen with the fixed stage list; keeps the state machine total
        raise ReviewNotOpen(f"round {rnd.number} has no stage after review")
    stage_launch(round=rnd, stage=following, expected_from=Round.State.REVIEW)
    logger.info("round %s: review closed, %s", rnd.number, counts)
    return counts


def _augment_items(rnd: Round) -> list[int]:
    """Sample segments of the round's corpus not used by an earlier round; deterministic for a seed."""
    cfg = rnd.cfg
    used_elsewhere = Candidate.objects.filter(segment=OuterRef("pk")).exclude(round=rnd)
    order_key = MD5(Concat(Cast("id", CharField()), Value(f":{cfg.seed}")))
    qs = (
        Segment.objects.filter(corpus=rnd.corpus)
        .annotate(used=Exists(used_elsewhere), order_key=order_key)
        .filter(used=False)
        .order_by("order_key")
        .values_list("id", flat=True)
    )
    return list(qs[: cfg.sample_size])


def _stage_items(rnd: Round, stage: str) -> list[int]:
    """The ids a stage works on: segment ids for augment, candidate ids for curate and rewrite."""
    cfg = rnd.cfg
    if stage == "augment":
        return _augment_items(rnd)
    # Training and evaluation are one job each (item 0); an empty list skips the stage.
    if stage == "train_backward":
        return [0] if cfg.train_backward.enabled and not cfg.models.augment else []
    if stage == "train_forward":
        return [0] if cfg.train_forward.enabled else []
    if stage == "evaluate":
        return [0] if cfg.evaluation.enabled and rnd.forward_model_id else []
    order = cfg.stage_order()
    candidates = rnd.candidates.exclude(status=Candidate.Status.ERROR)
    if stage == "curate":
        # After a rewrite (rewrite→filter) only pairs that got a rewrite are scored.
        if order.index("rewrite") < order.index("curate"):
            candidates = candidates.exclude(rewritten_response="")
        return list(candidates.filter(status=Candidate.Status.AUGMENTED).values_list("id", flat=True))
    if stage == "rewrite":
        wanted = Candidate.Status.KEPT if order.index("curate") < order.index("rewrite") else Candidate.Status.AUGMENTED
        return list(candidates.filter(status=wanted).values_list("id", flat=True))
    raise StageError(f"unknown stage {stage!r}")


@transaction.atomic
def stage_launch(*, round: Round, stage: str, enqueue: bool = True, expected_from: str | None = None) -> list[Job]:
    """Create the stage's chunk jobs (once) and put them on the `gpu` queue. Idempotent.

    The round moves to the stage (lifecycle.IllegalTransition if it may not, e.g. a closed round);
    `expected_from`: only from that state (lifecycle.StaleTransition otherwise), for callers that decided to
    launch on a state another worker may have changed since."""
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    rnd = Round.objects.select_for_update().get(pk=round.pk)
    existing = list(rnd.jobs.filter(stage=stage).order_by("chunk"))
    if existing:
        return existing
    round_transition(
        round=rnd, to=stage, expected_from=expected_from, started_at=rnd.started_at or timezone.now(), error=""
    )
    items = _stage_items(rnd, stage)
    chunks = round_config.chunked(items, rnd.cfg.chunk_size)
    jobs = Job.objects.bulk_create(
        [
            Job(round=rnd, stage=stage, chunk=i, queue="gpu", payload={"ids": ids}, progress_total=len(ids))
            for i, ids in enumerate(chunks)
        ]
    )
    if enqueue:
        for job in jobs:
            enqueue_job(job)
    if not jobs:  # nothing to do (e.g. curation kept nothing): move on at once
        transaction.on_commit(lambda: stage_advance(round_id=rnd.pk, stage=stage))
    logger.info("round %s: launched %s with %d items in %d chunks", rnd.number, stage, len(items), len(jobs))
    return jobs


def stage_cancel(*, round: Round, stage: str) -> int:
    """Cancel the stage's unfinished chunks; running ones stop at their next progress report."""
    n = 0
    for job in round.jobs.filter(stage=stage, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]):
        n += job_cancel(job=job)
    return n


@transaction.atomic
def stage_retry(*, round: Round, stage: str) -> int:
    """Re-queue the stage's failed and cancelled chunks; the round goes back to that stage.

    Only for the stage the round is at, or any stage of a failed or cancelled round (that resumes it there):
    a closed round stays closed, and a round in review is not sent back to augment behind its reviewers."""
    round = Round.objects.select_for_update().get(pk=round.pk)
    if round.state == Round.State.CLOSED:
        raise StageActionRefused(f"round {round.number} is closed: its stages cannot be retried")
    if round.state not in (Round.State.FAILED, Round.State.CANCELLED, stage):
        raise StageActionRefused(
            f"round {round.number} is at {round.state}: only that stage can be retried (or any, once it failed)"
        )
    n = 0
    for job in round.jobs.filter(stage=stage, status__in=[Job.Status.FAILED, Job.Status.CANCELLED]):
        n += job_retry(job=job)
    if n:
        round_transition(round=round, to=stage, expected_from=round.state, error="")
    return n


def stage_advance(*, round_id: int, stage: str) -> str | None:
    """If every chunk of `stage` is done: finish the stage and launch the next. Returns the next state."""
    with transaction.atomic():
        rnd = Round.objects.select_for_update().get(pk=round_id)
        if rnd.state != stage:
            return None  # already advanced by another chunk, or cancelled/failed
        if rnd.jobs.filter(stage=stage).exclude(status=Job.Status.DONE).exists():
            return None
        if stage == "curate":
            _curation_apply_keep(rnd)
        following = rnd.cfg.next_stage(stage)
        if following is None:
            round_transition(round=rnd, to=Round.State.CLOSED, expected_from=stage, finished_at=timezone.now())
            logger.info("round %s: closed", rnd.number)
            return Round.State.CLOSED
        if following == Round.State.REVIEW:
            round_transition(round=rnd, to=Round.State.REVIEW, expected_from=stage)
            queue_build(round=rnd)
            return Round.State.REVIEW
    try:
        # The lock is released: a cancel or a failure may have come in since, and must not be overwritten.
        stage_launch(round=rnd, stage=following, expected_from=stage)
    except lifecycle.StaleTransition as exc:
        logger.info("round %s: %s not launched: %s", rnd.number, following, exc)
        return None
    return following


def _curation_apply_keep(rnd: Round) -> None:
    """Apply the round's keep rule over all scored pairs (top-k needs the whole stage); gated pairs are never
    kept. The decision is recorded apart from the status, so review can measure it."""
    cur = rnd.cfg.curation
    scored = list(
        rnd.candidates.filter(status=Candidate.Status.AUGMENTED, score__isnull=False).only("id", "signals", "gate")
    )
    keep = signals.keep_decisions([c.signals for c in scored], [bool(c.gate) for c in scored], cur)
    kept = [c.id for c, k in zip(scored, keep, strict=True) if k]
    dropped = [c.id for c, k in zip(scored, keep, strict=True) if not k]
    Candidate.objects.filter(id__in=kept).update(status=Candidate.Status.KEPT, kept_by_curation=True)
    Candidate.objects.filter(id__in=dropped).update(status=Candidate.Status.DROPPED, kept_by_curation=False)
