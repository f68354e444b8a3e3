"""Writes on the seed set, candidates and reviews."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import AuditEvent, Candidate, Review, SeedExample, Source
from annotation.selectors import is_open_disagreement
from app.roles import ROLES
from generation.models import Round
from generation.pipeline import formats


@transaction.atomic
def seed_examples_create(
    *, rows: Iterable[dict[str, Any]], created_by: AbstractBaseUser | None = None
) -> list[SeedExample]:
    """Create seed examples from dicts with instruction, response and optional source/tags/provenance.

    All or nothing: one invalid row raises ValueError (naming its position) and nothing is written.
    """
    objs = []
    for position, row in enumerate(rows, start=1):
        instruction = (row.get("instruction") or "").strip()
        response = (row.get("response") or "").strip()
        source = row.get("source", Source.SEED)
        if not instruction or not response:
            raise ValueError(f"row {position}: instruction and response must both be non-empty")
        if source not in Source.values:
            raise ValueError(f"row {position}: source must be one of {', '.join(Source.values)}, got {source!r}")
        objs.append(
            SeedExample(
                instruction=instruction,
                response=response,
                source=source,
                tags=list(row.get("tags") or []),
                provenance=dict(row.get("provenance") or {}),
                created_by=created_by,
            )
        )
    return SeedExample.objects.bulk_create(objs)


@transaction.atomic
def user_create_with_role(*, username: str, password: str, role: str) -> AbstractBaseUser:
    """Create (or reset) a user holding exactly `role`. Admins are also Django staff superusers."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_staff = user.is_superuser = role == "admin"
    user.save()
    user.groups.set([Group.objects.get_or_create(name=role)[0]])
    return user


# The demo users' passwords of earlier releases, published in the README: a user still holding one gets a new one.
PUBLISHED_DEMO_PASSWORDS = {role: f"backforth-{role}" for role in ROLES}


def random_password(*, username: str) -> str:
    """A random password (16 URL-safe characters) that passes the project's AUTH_PASSWORD_VALIDATORS."""
    User = get_user_model()
    for _ in range(20):
        password = secrets.token_urlsafe(12)
        try:
            validate_password(password, user=User(username=username))
        except ValidationError:
            continue
        return password
    raise RuntimeError("no random password passed the password validators in 20 tries: check AUTH_PASSWORD_VALIDATORS")


@transaction.atomic
def demo_users_ensure() -> dict[str, str | None]:
    """One demo user per role (username = role). A user created now, or one still holding its published password,
    gets a random password, returned once (username -> password); an existing one keeps its own (None)."""
    User = get_user_model()
    passwords: dict[str, str | None] = {}
    for role in ROLES:
        user = User.objects.filter(username=role).first()
        if user is not None and not user.check_password(PUBLISHED_DEMO_PASSWORDS[role]):
            passwords[role] = None
            continue
        passwords[role] = random_password(username=role)
        user_create_with_role(username=role, password=passwords[role], role=role)
    return passwords


@transaction.atomic
def demo_passwords_reset() -> dict[str, str]:
    """New random passwords for every demo user (created where missing): username -> password."""
    passwords = {role: random_password(username=role) for role in ROLES}
    for role, password in passwords.items():
        user_create_with_role(username=role, password=password, role=role)
    return passwords


class StaleVersion(Exception):
    """The candidate changed since the reviewer loaded it: their decision is refused, never merged silently."""


class NotYours(Exception):
    """The pair is not this user's to decide now (not in the round's queue, not held by them, already decided
    by them, or the round is not in review). One message for every case: a refusal tells nothing about the
    pair it protects."""


class ReviewError(ValueError):
    """A review decision that cannot be applied (wrong action, missing reason, not reviewable)."""


@transaction.atomic
def candidate_review(
    *,
    candidate_id: int,
    reviewer: AbstractBaseUser,
    action: str,
    version: int,
    instruction: str | None = None,
    response: str | None = None,
    reason: str = "",
    reason_text: str = "",
    seconds_spent: float | None = None,
) -> Candidate:
    """Accept, edit or reject a candidate on the version the reviewer saw; records a Review with before → after.

    Edits keep the model's output untouched (instruction, rewritten_response) and write the human's version
    to final_instruction / final_response, so the correction itself is data (the next backward model learns it).
    """
    candidate = Candidate.objects.select_for_update().select_related("segment").get(pk=candidate_id)
    return candidate_review_locked(
        candidate,
        reviewer=reviewer,
        action=action,
        version=version,
        instruction=instruction,
        response=response,
        reason=reason,
        reason_text=reason_text,
        seconds_spent=seconds_spent,
    )


def candidate_review_locked(
    candidate: Candidate,
    *,
    reviewer: AbstractBaseUser,
    action: str,
    version: int,
    instruction: str | None = None,
    response: str | None = None,
    reason: str = "",
    reason_text: str = "",
    seconds_spent: float | None = None,
    also_save: tuple[str, ...] = (),
) -> Candidate:
    """candidate_review on a candidate the caller has already locked (`SELECT … FOR UPDATE`, with its segment)
    in the transaction it runs in: one UPDATE of the candidate and one INSERT of the Review. `also_save` names
    more fields the caller changed on `candidate`, written by the same UPDATE (the review queue's counters)."""
    if candidate.version != version:
        raise StaleVersion(
            f"candidate {candidate.pk} was changed by someone else (version {candidate.version}, you saw {version})"
        )
    if not candidate.is_reviewable and candidate.status not in Candidate.REVIEWED:
        raise ReviewError(f"candidate {candidate.pk} is {candidate.status}: it cannot be reviewed")
    before = {
        "status": candidate.status,
        "instruction": candidate.final_instruction or candidate.instruction,
        "response": candidate.final_response or candidate.response,
        "final_instruction": candidate.final_instruction,
        "final_response": candidate.final_response,
        "version": candidate.version,
    }
    if action == Review.Action.ACCEPT:
        candidate.status = Candidate.Status.ACCEPTED
        candidate.final_instruction, candidate.final_response = before["instruction"], before["response"]
    elif action == Review.Action.EDIT:
        new_instruction = (instruction if instruction is not None else before["instruction"]).strip()
        new_response = (response if response is not None else before["response"]).strip()
        if not new_instruction or not new_response:
            raise ReviewError("an edited pair needs a non-empty instruction and response")
        candidate.status = Candidate.Status.EDITED
        candidate.final_instruction, candidate.final_response = new_instruction, new_response
    elif action == Review.Action.REJECT:
        if not reason:
            raise ReviewError("a rejection needs a reason")
        candidate.status = Candidate.Status.REJECTED
    else:
        raise ReviewError(f"unknown action {action!r}; expected accept, edit or reject")
    candidate.version += 1
    candidate.save(update_fields=["status", "final_instruction", "final_response", "version", "updated_at", *also_save])
    Review.objects.create(
        candidate=candidate,
        reviewer=reviewer,
        action=action,
        before=before,
        after={
            "status": candidate.status,
            "instruction": candidate.final_instruction,
            "response": candidate.final_response,
            "final_instruction": candidate.final_instruction,
            "final_response": candidate.final_response,
            "version": candidate.version,
        },
        reason=reason,
        reason_text=reason_text,
        seconds_spent=seconds_spent,
    )
    return candidate


# --- curators: the seed and safety sets --------------------------------------------------------------------

SEED_FIELDS = ("instruction", "response", "source", "tags", "is_active")


def _snapshot(example: SeedExample) -> dict[str, Any]:
    return {f: getattr(example, f) for f in SEED_FIELDS} | {"version": example.version}


def audit(*, user: AbstractBaseUser | None, action: str, obj: Any, before: dict, after: dict) -> AuditEvent:
    return AuditEvent.objects.create(
        user=user,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        before=before,
        after=after,
    )


@transaction.atomic
def seed_example_save(
    *, user: AbstractBaseUser, example: SeedExample | None = None, version: int | None = None, **fields: Any
) -> SeedExample:
    """Create or edit a seed example; every change bumps its version and is audited (who, when, before → after).
    An edit made on a stale version is refused (StaleVersion), never merged silently."""
    if example is None:
        example = SeedExample.objects.create(created_by=user, provenance={"kind": "manual"}, **fields)
        audit(user=user, action="seed.create", obj=example, before={}, after=_snapshot(example))
        return example
    locked = SeedExample.objects.select_for_update().get(pk=example.pk)
    if version is not None and locked.version != version:
        raise StaleVersion(f"seed example {locked.pk} was changed by someone else (now version {locked.version})")
    before = _snapshot(locked)
    for key, value in fields.items():
        if key not in SEED_FIELDS:
            raise ValueError(f"unknown field {key!r}")
        setattr(locked, key, value)
    if _snapshot(locked) | {"version": before["version"]} == before:
        return locked  # nothing changed: no new version
    locked.version += 1
    locked.full_clean(exclude=["candidate", "created_by"])
    locked.save()
    audit(user=user, action="seed.edit", obj=locked, before=before, after=_snapshot(locked))
    return locked


BULK_ACTIONS = ("promote_seed", "promote_safety", "deactivate", "activate", "add_tag")


@transaction.atomic
def seed_bulk(*, user: AbstractBaseUser, ids: list[int], action: str, value: str = "") -> int:
    """Apply one action to many seed examples (each change audited). Returns how many changed."""
    if action not in BULK_ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}")
    if action == "add_tag" and not value.strip():
        raise ValueError("give the tag to add")
    changed = 0
    for example in SeedExample.objects.select_for_update().filter(pk__in=ids).order_by("pk"):
        fields: dict[str, Any] = {
            "promote_seed": {"source": Source.SEED},
            "promote_safety": {"source": Source.SAFETY},
            "deactivate": {"is_active": False},
            "activate": {"is_active": True},
            "add_tag": {"tags": sorted({*example.tags, value.strip()[:64]})},
        }[action]
        before = example.version
        example = seed_example_save(user=user, example=example, **fields)
        changed += example.version != before
    return changed


@transaction.atomic
def seed_import(
    *,
    user: AbstractBaseUser | None,
    name: str,
    data: bytes | None = None,
    path: Path | None = None,
    fmt: str | None = None,
    source: str = "seed",
    turns: str = "first",
    mapping: dict[str, str] | None = None,
) -> tuple[str, list[SeedExample]]:
    """Import a whole file (an upload's `data`, or a file or `datasets` directory at `path`) or nothing: every bad
    line or row is reported (formats.FormatError) and nothing is written. `turns` and `mapping`: see formats."""
    options: dict[str, Any] = {"default_source": source, "turns": turns, "mapping": mapping}
    if path is not None:
        fmt, rows = formats.parse_path(path, fmt, **options)
    else:
        fmt, rows = formats.parse_bytes(name, data or b"", fmt, **options)
    for row in rows:
        row["provenance"] = {"kind": "import", "file": name, **row["provenance"]}
    created = seed_examples_create(rows=rows, created_by=user)
    AuditEvent.objects.create(
        user=user,
        action="seed.import",
        object_type="annotation.seedexample",
        object_id=f"{created[0].pk}-{created[-1].pk}" if created else "",
        after={"file": name, "format": fmt, "count": len(created)},
    )
    return fmt, created


@transaction.atomic
def candidate_adjudicate(*, user: AbstractBaseUser, candidate: Candidate, decision: str) -> Candidate:
    """A curator settles a pair annotators disagreed on: the final status is theirs, recorded in the audit."""
    if decision not in ("accept", "reject"):
        raise ReviewError("adjudicate with accept or reject")
    locked = Candidate.objects.select_for_update().select_related("segment", "round").get(pk=candidate.pk)
    if not is_open_disagreement(locked):
        raise NotYours(f"pair {locked.pk} has no open disagreement (settled already, or its round left review)")
    before = {"status": locked.status}
    if decision == "accept":
        locked.status = (
            Candidate.Status.EDITED if locked.final_instruction != locked.instruction else Candidate.Status.ACCEPTED
        )
        locked.final_instruction = locked.final_instruction or locked.instruction
        locked.final_response = locked.final_response or locked.response
    else:
        locked.status = Candidate.Status.REJECTED
    locked.version += 1
    locked.save(update_fields=["status", "final_instruction", "final_response", "version", "updated_at"])
    audit(user=user, action="candidate.adjudicate", obj=locked, before=before, after={"status": locked.status})
    return locked


def seed_feedback(*, round: Round, user: AbstractBaseUser | None = None) -> dict[str, int]:
    """A round's review feeds the seed set (DESIGN.md step 6): accepted and edited pairs join it tagged `web`, with
    the candidate as provenance, once (a pair already in the seed is not added again); rejections stay on their
    candidates with their reasons. Returns the counts of added, rejected and unreviewed pairs."""
    reviewed = round.candidates.filter(status__in=[Candidate.Status.ACCEPTED, Candidate.Status.EDITED])
    already = set(SeedExample.objects.filter(candidate__round=round).values_list("candidate_id", flat=True))
    new = [
        SeedExample(
            instruction=c.final_instruction or c.instruction,
            response=c.final_response or c.response,
            source=Source.WEB,
            provenance={"kind": "candidate", "round": round.number, "candidate": c.pk, "status": c.status},
            candidate=c,
            created_by=user,
        )
        for c in reviewed.select_related("segment")
        if c.pk not in already
    ]
    SeedExample.objects.bulk_create(new)
    return {
        "added_to_seed": len(new),
        "rejected": round.candidates.filter(status=Candidate.Status.REJECTED).count(),
        "unreviewed": round.candidates.filter(status__in=[Candidate.Status.KEPT, Candidate.Status.DROPPED]).count(),
    }
