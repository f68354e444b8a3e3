"""The review queue: which pairs wait for people, who holds which, and the decisions on them.

Assignment holds under concurrency: the next item is claimed with `SELECT … FOR UPDATE SKIP LOCKED` on the
candidate row and a Lease row (unique per candidate and annotator) that expires; an item needing N distinct
annotators (overlap) is handed to at most N people at once, never twice to the same person.

Why one module of ~480 lines: building the queue, claiming, deciding, skipping and undoing take the same locks in
the same order (candidate row, then lease) in hand-tuned SQL; kept side by side, the lock order and the statement
budget of decide + next (tests/annotation/test_queue.py) can be read and checked in one place.
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
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation import services
from annotation.models import Candidate, Lease, Review
from generation.models import Round, Segment

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
#
# The statements of the annotators' hot path (claim, lease, the decision's locked read, the header counts) are SQL
# written once here, not querysets built on every request: building and compiling their subqueries through the
# ORM cost more CPU than the rest of a decision (`make bench`, review.decide_next_p95_ms). Named parameters:
# %(round)s, %(user)s, %(now)s and, per statement, the pair's %(id)s.

_CANDIDATE = Candidate._meta.db_table
_SEGMENT = Segment._meta.db_table
_REVIEW = Review._meta.db_table
_LEASE = Lease._meta.db_table
_DECISIONS_SQL = "(" + ", ".join(f"'{action.value}'" for action in DECISIONS) + ")"

# This user's standing decision (not undone) on candidate c.
_DECIDED_SQL = f"""EXISTS (
    SELECT 1 FROM {_REVIEW} r WHERE r.candidate_id = c.id AND r.reviewer_id = %(user)s
       AND r.action IN {_DECISIONS_SQL} AND NOT EXISTS (SELECT 1 FROM {_REVIEW} u WHERE u.undoes_id = r.id))"""

# Candidate c can be handed to this user now: in the round's queue, not decided by them, and held (live leases)
# by fewer other people than it still needs.
_CLAIMABLE_SQL = f"""c.round_id = %(round)s AND c.in_queue AND NOT {_DECIDED_SQL}
   AND (SELECT COUNT(*) FROM {_LEASE} l WHERE l.candidate_id = c.id AND l.expires_at > %(now)s
          AND l.user_id <> %(user)s) < c.reviews_needed - c.reviews_done"""

_NOT_SKIPPED_SQL = f"""AND NOT EXISTS (
    SELECT 1 FROM {_REVIEW} k WHERE k.candidate_id = c.id AND k.reviewer_id = %(user)s AND k.action = 'skip')"""

# The candidate's columns and the two of its segment the page shows (text, url), read with it.
_COLUMNS_SQL = "c.*, s.text AS segment_text, s.url AS segment_url"
_FROM_SQL = f"FROM {_CANDIDATE} c JOIN {_SEGMENT} s ON s.id = c.segment_id"


def claim_sql(*, skipped_last: bool, skip_locked: bool = True) -> str:
    """The claim: the first claimable candidate in queue order, locked (%(passed)s: ids passed over already).
    `skipped_last`: leave out the ones this user skipped (they come back when nothing else is left)."""
    return f"""SELECT {_COLUMNS_SQL} {_FROM_SQL}
         WHERE {_CLAIMABLE_SQL} {_NOT_SKIPPED_SQL if skipped_last else ""} AND c.id <> ALL(%(passed)s::bigint[])
         ORDER BY c.queue_priority, c.id LIMIT 1 FOR UPDATE OF c{" SKIP LOCKED" if skip_locked else ""}"""


# The lease, written only if the pair is still claimable: in READ COMMITTED this statement reads a fresh snapshot,
# so it sees a lease committed after the claim's snapshot (by whoever held the row lock before us).
_LEASE_SQL = f"""INSERT INTO {_LEASE} (candidate_id, user_id, created_at, expires_at)
    SELECT c.id, %(user)s, %(now)s, %(expires)s FROM {_CANDIDATE} c WHERE c.id = %(id)s AND {_CLAIMABLE_SQL}
    ON CONFLICT (candidate_id, user_id)
    DO UPDATE SET created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    RETURNING id"""

COUNT_CAP = 1000
# The header's counts: items waiting in the round, counted up to COUNT_CAP + 1 (an exact COUNT over a million-row
# queue cost 70 ms on every decision), and this user's standing decisions in it.
_WAITING_SQL = f"""SELECT COUNT(*) FROM (
    SELECT 1 FROM {_CANDIDATE} w WHERE w.round_id = %(round)s AND w.in_queue LIMIT {COUNT_CAP + 1}) w"""
_MINE_SQL = f"""SELECT COUNT(*) FROM {_REVIEW} m JOIN {_CANDIDATE} mc ON mc.id = m.candidate_id
    WHERE m.reviewer_id = %(user)s AND mc.round_id = %(round)s AND m.action IN {_DECISIONS_SQL}
      AND NOT EXISTS (SELECT 1 FROM {_REVIEW} u WHERE u.undoes_id = m.id)"""

# The decision's read: the pair locked, with its segment, whether this user decided it already, whether they hold
# another pair of the round, and the header counts before the decision.
_DECIDE_SQL = f"""SELECT {_COLUMNS_SQL},
        {_DECIDED_SQL} AS decided_by_them,
        EXISTS (SELECT 1 FROM {_LEASE} l JOIN {_CANDIDATE} o ON o.id = l.candidate_id
                 WHERE l.user_id = %(user)s AND l.expires_at > %(now)s AND l.candidate_id <> c.id
                   AND o.round_id = %(round)s AND o.in_queue) AS holds_another,
        ({_WAITING_SQL}) AS n_waiting,
        ({_MINE_SQL}) AS n_mine
    {_FROM_SQL}
    WHERE c.id = %(id)s AND c.round_id = %(round)s AND c.in_queue
    FOR UPDATE OF c"""


def _lease_minutes(rnd: Round) -> int:
    return rnd.cfg.review.lease_minutes


def _one(sql: str, params: dict[str, Any], rnd: Round) -> Candidate | None:
    """The candidate the statement reads (its extra columns as attributes), with its segment's text and url."""
    candidate = next(iter(Candidate.objects.raw(sql, params)), None)
    if candidate is not None:
        candidate.segment = Segment.from_db(
            candidate._state.db,
            ["id", "text", "url"],
            [candidate.segment_id, candidate.segment_text, candidate.segment_url],
        )
        candidate.round = rnd
    return candidate


@transaction.atomic
def queue_next(*, user: AbstractBaseUser, round: Round, skip_locked: bool = True) -> Candidate | None:
    """The item this annotator should look at now: the one they already hold, else the next free one in queue
    order (skipped items come back last). None when the queue is empty for them.

    `skip_locked=False` claims with a plain `FOR UPDATE`, waiting for whoever locked the row first: correct
    too, but annotators queue up behind each other (the baseline of `make bench`'s review benchmark)."""
    return _next(user, round, skip_locked=skip_locked)


def _next(user: AbstractBaseUser, rnd: Round, *, may_hold: bool = True, skip_locked: bool = True) -> Candidate | None:
    """queue_next inside the caller's transaction: the hold looked up (skipped when the caller knows there is
    none, `may_hold=False`) and renewed, else a claim (_claim). Each item comes with its segment."""
    now = timezone.now()
    expires = now + timedelta(minutes=_lease_minutes(rnd))
    if may_hold:
        held = (
            Lease.objects.select_related("candidate__segment")
            .filter(user=user, candidate__round=rnd, candidate__in_queue=True, expires_at__gt=now)
            .exclude(candidate__reviews__reviewer=user, candidate__reviews__action__in=DECISIONS)
            .order_by("created_at")
            .first()
        )
        if held is not None:
            Lease.objects.filter(pk=held.pk).update(expires_at=expires)
            held.candidate.round = rnd
            return held.candidate
    return _claim(user, rnd, now, expires, skip_locked=skip_locked)


def _claim(user: AbstractBaseUser, rnd: Round, now: Any, expires: Any, *, skip_locked: bool = True) -> Candidate | None:
    """The next free item in queue order, claimed (row lock) and leased: two statements, unless someone took it
    between the two (then the next one)."""
    params: dict[str, Any] = {"round": rnd.pk, "user": user.pk, "now": now, "expires": expires}
    for skipped_last in (True, False):
        sql = claim_sql(skipped_last=skipped_last, skip_locked=skip_locked)
        passed: list[int] = []
        for _ in range(MAX_CLAIM_TRIES):
            candidate = _one(sql, params | {"passed": passed}, rnd)
            if candidate is None:
                break
            with connection.cursor() as cursor:
                cursor.execute(_LEASE_SQL, params | {"id": candidate.pk})
                leased = cursor.fetchone() is not None
            if leased:
                return candidate
            passed.append(candidate.pk)
    return None


def _counts(waiting: int, mine: int) -> dict[str, Any]:
    return {"waiting": f"{COUNT_CAP}+" if waiting > COUNT_CAP else waiting, "decided_by_me": mine}


def queue_counts(*, user: AbstractBaseUser, round: Round) -> dict[str, Any]:
    """Remaining items for the queue's header ("1000+" above COUNT_CAP) and this user's decisions, one statement."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ({_WAITING_SQL}), ({_MINE_SQL})", {"round": round.pk, "user": user.pk})
        waiting, mine = cursor.fetchone()
    return _counts(waiting, mine)


# --- deciding ---------------------------------------------------------------------------------------------


NOT_YOURS = (
    "this pair is not yours to decide now: it is not in your queue, your hold on it ran out, or you already "
    "decided on it"
)


def _refuse_unless_in_review(rnd: Round) -> None:

    if rnd.state != Round.State.REVIEW:
        raise services.NotYours(f"round {rnd.number} is not in review")


@dataclass(frozen=True)
class Answer:
    """What a decision answers with: the decided pair, the next one (None: nothing left) and the header counts."""

    decided: Candidate
    next: Candidate | None
    counts: dict[str, Any]


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
    decided, _, _ = _decide(
        user,
        round,
        candidate_id,
        version,
        action,
        instruction=instruction,
        response=response,
        reason=reason,
        reason_text=reason_text,
    )
    return decided


@transaction.atomic
def queue_decide_next(
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
) -> Answer:
    """queue_decide, then queue_next and the header counts, in one transaction (one commit): the answer to a
    decision carries the next pair, so an annotator waits for one round trip after a key. Refused exactly as
    queue_decide refuses (nothing is written then, and nothing claimed).

    Eight statements in all, and BEGIN and COMMIT: the pair locked (with whether this user decided it already,
    whether they hold another pair, and the counts), the lease released, the pair updated, the Review written;
    the next pair claimed and leased (or, if they hold another, that one looked up and its hold renewed)."""
    decided, counts, holds_another = _decide(
        user,
        round,
        candidate_id,
        version,
        action,
        instruction=instruction,
        response=response,
        reason=reason,
        reason_text=reason_text,
    )
    return Answer(decided, _next(user, round, may_hold=holds_another), counts)


def _decide(
    user: AbstractBaseUser,
    rnd: Round,
    candidate_id: int,
    version: int,
    action: str,
    *,
    instruction: str | None,
    response: str | None,
    reason: str,
    reason_text: str,
) -> tuple[Candidate, dict[str, Any], bool]:
    """queue_decide inside the caller's transaction: the decided pair, the header counts after the decision
    (read with the pair, before it, then counted forward) and whether this user holds another pair of the round.
    Four statements for a decision (the row locked with the checks and counts, the lease released, the pair
    updated with its queue counters, the Review inserted), three for a skip."""
    _refuse_unless_in_review(rnd)
    now = timezone.now()
    candidate = _one(_DECIDE_SQL, {"id": candidate_id, "round": rnd.pk, "user": user.pk, "now": now}, rnd)
    if candidate is None or candidate.decided_by_them:
        raise services.NotYours(NOT_YOURS)
    # After the row lock, in a statement of its own (a fresh snapshot): the same pair posted twice at once waits
    # here for the first post, then finds the hold gone. Any refusal below rolls the release back.
    held_since = _release_lease(candidate.pk, user, now)
    if held_since is None:
        raise services.NotYours(NOT_YOURS)
    seconds = min((now - held_since).total_seconds(), MAX_SECONDS_PER_ITEM)
    waiting, mine = candidate.n_waiting, candidate.n_mine
    if action == Review.Action.SKIP:
        Review.objects.create(candidate=candidate, reviewer=user, action=action, seconds_spent=seconds)
        return candidate, _counts(waiting, mine), candidate.holds_another
    if action == Review.Action.REJECT and reason and reason not in REJECT_REASONS and reason != "other":
        raise services.ReviewError(f"unknown reason {reason!r}")
    if action == Review.Action.REJECT and reason == "other" and not reason_text.strip():
        raise services.ReviewError("say why in a few words when the reason is 'other'")
    overlap = candidate.reviews_needed > 1
    # The row is locked (FOR UPDATE above) until this transaction ends: count and dequeue in the decision's UPDATE.
    candidate.reviews_done += 1
    candidate.in_queue = candidate.reviews_done < candidate.reviews_needed
    decided = services.candidate_review_locked(
        candidate,
        reviewer=user,
        action=action,
        version=candidate.version if overlap else version,
        instruction=instruction,
        response=response,
        reason=reason,
        reason_text=reason_text,
        seconds_spent=seconds,
        also_save=("reviews_done", "in_queue"),
    )
    if not decided.in_queue and waiting <= COUNT_CAP:
        waiting -= 1
    return decided, _counts(waiting, mine + 1), candidate.holds_another


def _release_lease(candidate_id: int, user: AbstractBaseUser, now: Any) -> Any:
    """Delete this user's live lease on the pair; when it began (None when they held none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Lease._meta.db_table} WHERE candidate_id = %s AND user_id = %s AND expires_at > %s"
            " RETURNING created_at",
            [candidate_id, user.pk, now],
        )
        row = cursor.fetchone()
    return row[0] if row else None


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
