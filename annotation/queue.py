"""The review queue: which pairs wait for people, who holds which, and the decisions on them.

Assignment holds under concurrency: the next item is claimed with `SELECT … FOR UPDATE SKIP LOCKED` on the
candidate row and a Lease row (unique per candidate and annotator) that expires; an item needing N distinct
annotators (overlap) is handed to at most N people at once, never twice to the same person.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation import services
from annotation.models import Candidate, Lease, Review
from generation.models import Round

DECISIONS = (Review.Action.ACCEPT, Review.Action.EDIT, Review.Action.REJECT)
REJECT_REASONS = {
    "wrong_instruction": "instruction does not match the text",
    "not_helpful": "response is not a helpful answer",
    "factual_error": "factual error",
    "unsafe": "unsafe or harmful",
    "low_quality_text": "web text is boilerplate, spam or broken",
    "duplicate": "duplicate of another pair",
}
MAX_SECONDS_PER_ITEM = 3600.0
MAX_CLAIM_TRIES = 50


# --- building the queue (pure part first) ------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    candidate_id: int
    priority: float
    is_audit: bool


def _unit(candidate_id: int, seed: int) -> float:
    """A deterministic uniform number in [0, 1) per candidate: the audit sample is reproducible."""
    digest = hashlib.sha256(f"{seed}:{candidate_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


GATE_AUDIT_FRACTION = 0.25  # gated pairs are audited at least this often, and at least one per reason


def plan_queue(
    scored: list[tuple[int, float, bool]],
    *,
    threshold: float | None,
    audit_fraction: float,
    seed: int = 0,
    gates: Mapping[int, str] | None = None,
) -> list[QueueEntry]:
    """Every kept pair, uncertain first (|score − cut|; the cut is the threshold, or the lowest kept score for
    top-k), plus a random `audit_fraction` of the dropped pairs spread through the queue. `scored` holds
    (candidate id, keep score, kept). Pairs an output gate dropped (`gates`: id → reason) are audited more
    often and at least once per reason, so people check the gates too. Pure."""
    gates = gates or {}
    kept_scores = [s for _, s, k in scored if k]
    cut = threshold if threshold is not None else (min(kept_scores) if kept_scores else 0.0)
    spread = max((abs(s - cut) for _, s, _ in scored), default=1.0) or 1.0
    audited = {
        cid
        for cid, _, kept in scored
        if not kept
        and _unit(cid, seed) < (max(audit_fraction, GATE_AUDIT_FRACTION) if cid in gates else audit_fraction)
    }
    for reason in sorted(set(gates.values())):
        of_reason = [cid for cid, _, kept in scored if not kept and gates.get(cid) == reason]
        if of_reason and not audited.intersection(of_reason):
            audited.add(min(of_reason, key=lambda cid: _unit(cid, seed)))
    entries = []
    for cid, score, kept in scored:
        if kept:
            entries.append(QueueEntry(cid, abs(score - cut), False))
        elif cid in audited:
            # Spread over the queue at random (not by uncertainty): the audit is a sample, not a ranking.
            entries.append(QueueEntry(cid, random.Random(f"{seed}:{cid}").uniform(0, spread), True))
    return sorted(entries, key=lambda e: (e.priority, e.candidate_id))


@transaction.atomic
def queue_build(*, round: Round) -> int:
    """Put the round's pairs in its review queue (idempotent: a rebuilt queue skips decided pairs)."""
    cfg = round.cfg
    rows = list(
        round.candidates.filter(status__in=[Candidate.Status.KEPT, Candidate.Status.DROPPED])
        .annotate(by=Coalesce("keep_score", "score"))
        .exclude(by=None)
        .values_list("id", "by", "status", "gate")
    )
    scored = [(cid, by, status == Candidate.Status.KEPT) for cid, by, status, _ in rows]
    plan = plan_queue(
        scored,
        # The cut on the keep score's own scale; the IFD rule keeps a band (no single cut): the lowest kept.
        threshold=cfg.curation.threshold if cfg.curation.keep != "ifd" else None,
        audit_fraction=cfg.review.audit_fraction,
        seed=cfg.seed,
        gates={cid: gate for cid, _, _, gate in rows if gate},
    )
    # One UPDATE … FROM unnest(arrays): a per-row bulk_update (one big CASE per batch) took minutes at 1M rows.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Candidate._meta.db_table} AS c
               SET in_queue = true, queue_priority = v.priority, is_audit = v.is_audit, reviews_needed = %s
              FROM unnest(%s::bigint[], %s::float8[], %s::boolean[]) AS v(id, priority, is_audit)
             WHERE c.id = v.id
            """,
            [
                cfg.review.overlap,
                [e.candidate_id for e in plan],
                [e.priority for e in plan],
                [e.is_audit for e in plan],
            ],
        )
    return len(plan)


# --- taking items ----------------------------------------------------------------------------------------


def _lease_minutes(rnd: Round) -> int:
    return rnd.cfg.review.lease_minutes


def _claimable(rnd: Round, user: AbstractBaseUser, now: Any) -> Any:
    decided = Review.objects.filter(
        candidate=OuterRef("pk"), reviewer=user, action__in=DECISIONS, undone_by__isnull=True
    )
    held = (
        Lease.objects.filter(candidate=OuterRef("pk"), expires_at__gt=now)
        .exclude(user=user)
        .values("candidate")
        .annotate(n=Count("*"))
        .values("n")
    )
    return (
        Candidate.objects.filter(round=rnd, in_queue=True)
        .exclude(Exists(decided))
        .annotate(held=Coalesce(Subquery(held, output_field=IntegerField()), Value(0)))
        .filter(held__lt=F("reviews_needed") - F("reviews_done"))
    )


@transaction.atomic
def queue_next(*, user: AbstractBaseUser, round: Round, skip_locked: bool = True) -> Candidate | None:
    """The item this annotator should look at now: the one they already hold, else the next free one in queue
    order (skipped items come back last). None when the queue is empty for them.

    `skip_locked=False` claims with a plain `FOR UPDATE`, waiting for whoever locked the row first: correct
    too, but annotators queue up behind each other (the baseline of `make bench`'s review benchmark)."""
    now = timezone.now()
    expires = now + timedelta(minutes=_lease_minutes(round))
    held = (
        Lease.objects.select_related("candidate__segment", "candidate__round")
        .filter(user=user, candidate__round=round, candidate__in_queue=True, expires_at__gt=now)
        .exclude(candidate__reviews__reviewer=user, candidate__reviews__action__in=DECISIONS)
        .order_by("created_at")
        .first()
    )
    if held is not None:
        Lease.objects.filter(pk=held.pk).update(expires_at=expires)
        return held.candidate
    skipped = Review.objects.filter(candidate=OuterRef("pk"), reviewer=user, action=Review.Action.SKIP)
    base = _claimable(round, user, now)
    for qs in (base.exclude(Exists(skipped)), base):
        passed: list[int] = []
        for _ in range(MAX_CLAIM_TRIES):
            candidate = (
                qs.exclude(pk__in=passed)
                .select_related("segment", "round")
                .order_by("queue_priority", "id")
                .select_for_update(skip_locked=skip_locked, of=("self",))
                .first()
            )
            if candidate is None:
                break
            # The row lock was taken after the statement's snapshot: a lease committed in between (by whoever
            # held the lock before us) is invisible to it. Check again with a fresh snapshot, under our lock.
            if not _claimable(round, user, now).filter(pk=candidate.pk).exists():
                passed.append(candidate.pk)
                continue
            Lease.objects.bulk_create(  # one INSERT … ON CONFLICT DO UPDATE (update_or_create takes four)
                [Lease(candidate=candidate, user=user, created_at=now, expires_at=expires)],
                update_conflicts=True,
                unique_fields=["candidate", "user"],
                update_fields=["created_at", "expires_at"],
            )
            return candidate
    return None


COUNT_CAP = 1000


def queue_counts(*, user: AbstractBaseUser, round: Round) -> dict[str, Any]:
    """Remaining items for the queue's header. Counted up to COUNT_CAP ("1000+"): an exact COUNT over a
    million-row queue cost 70 ms on every decision."""
    waiting = round.candidates.filter(in_queue=True).values("pk")[: COUNT_CAP + 1].count()
    mine = Review.objects.filter(
        reviewer=user, candidate__round=round, action__in=DECISIONS, undone_by__isnull=True
    ).count()
    return {"waiting": f"{COUNT_CAP}+" if waiting > COUNT_CAP else waiting, "decided_by_me": mine}


# --- deciding ---------------------------------------------------------------------------------------------


NOT_YOURS = (
    "this pair is not yours to decide now: it is not in your queue, your hold on it ran out, or you already "
    "decided on it"
)


def _refuse_unless_in_review(rnd: Round) -> None:

    if rnd.state != Round.State.REVIEW:
        raise services.NotYours(f"round {rnd.number} is not in review")


@transaction.atomic
def queue_decide(
    *,
    user: AbstractBaseUser,
    round: Round,
    candidate_id: int,
    version: int,
    action: str,
    instruction: str | None = None,
    response: str | None = None,
    reason: str = "",
    reason_text: str = "",
) -> Candidate:
    """Record a decision (accept / edit / reject) or a skip, release the lease and update the queue.

    Only on a pair of this round that is in the queue, leased to this user now (queue_next hands it out) and
    not decided by them already: anything else raises services.NotYours, with one message whatever the cause.
    Raises services.StaleVersion when the pair changed since this annotator loaded it (for pairs reviewed by
    one person; with overlap each annotator's decision is their own and disagreements go to adjudication)."""
    _refuse_unless_in_review(round)
    now = timezone.now()
    candidate = Candidate.objects.select_for_update().filter(pk=candidate_id, round=round).first()
    if candidate is None or not candidate.in_queue:
        raise services.NotYours(NOT_YOURS)
    lease = Lease.objects.filter(candidate=candidate, user=user, expires_at__gt=now).first()
    if lease is None:
        raise services.NotYours(NOT_YOURS)
    if Review.objects.filter(candidate=candidate, reviewer=user, action__in=DECISIONS, undone_by__isnull=True).exists():
        raise services.NotYours(NOT_YOURS)
    seconds = min((now - lease.created_at).total_seconds(), MAX_SECONDS_PER_ITEM)
    if action == Review.Action.SKIP:
        Review.objects.create(candidate=candidate, reviewer=user, action=action, seconds_spent=seconds)
        Lease.objects.filter(candidate=candidate, user=user).delete()
        return candidate
    if action == Review.Action.REJECT and reason and reason not in REJECT_REASONS and reason != "other":
        raise services.ReviewError(f"unknown reason {reason!r}")
    if action == Review.Action.REJECT and reason == "other" and not reason_text.strip():
        raise services.ReviewError("say why in a few words when the reason is 'other'")
    overlap = candidate.reviews_needed > 1
    candidate = services.candidate_review(
        candidate_id=candidate_id,
        reviewer=user,
        action=action,
        version=candidate.version if overlap else version,
        instruction=instruction,
        response=response,
        reason=reason,
        reason_text=reason_text,
        seconds_spent=seconds,
    )
    # The row is locked (FOR UPDATE above) until this transaction ends: count and dequeue in one UPDATE.
    candidate.reviews_done += 1
    candidate.in_queue = candidate.in_queue and candidate.reviews_done < candidate.reviews_needed
    Candidate.objects.filter(pk=candidate.pk).update(reviews_done=candidate.reviews_done, in_queue=candidate.in_queue)
    Lease.objects.filter(candidate=candidate, user=user).delete()
    return candidate


@transaction.atomic
def queue_undo(*, user: AbstractBaseUser, round: Round) -> Candidate | None:
    """Take back this annotator's last decision in the round: the pair returns to the state it had before,
    back in the queue and held by them. Refused if someone changed the pair since, and once the round has left
    review (its decisions have fed the seed)."""
    _refuse_unless_in_review(round)
    last = (
        Review.objects.filter(reviewer=user, candidate__round=round, action__in=DECISIONS, undone_by__isnull=True)
        .order_by("-created_at", "-id")
        .first()
    )
    if last is None:
        return None
    candidate = Candidate.objects.select_for_update().get(pk=last.candidate_id)
    if candidate.version != last.after.get("version", candidate.version):
        raise services.StaleVersion(f"pair {candidate.pk} was changed by someone else since your decision")
    restored = {
        "status": last.before["status"],
        "final_instruction": last.before.get("final_instruction", ""),
        "final_response": last.before.get("final_response", ""),
    }
    Candidate.objects.filter(pk=candidate.pk).update(
        **restored,
        version=F("version") + 1,
        reviews_done=F("reviews_done") - 1,
        in_queue=True,
        updated_at=timezone.now(),
    )
    Review.objects.create(
        candidate=candidate, reviewer=user, action=Review.Action.UNDO, undoes=last, before=last.after, after=restored
    )
    now = timezone.now()
    Lease.objects.update_or_create(
        candidate=candidate,
        user=user,
        defaults={"created_at": now, "expires_at": now + timedelta(minutes=_lease_minutes(round))},
    )
    candidate.refresh_from_db()
    return candidate
