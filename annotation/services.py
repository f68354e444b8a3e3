"""Writes on the seed set, candidates and reviews."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from annotation.models import Candidate, Review, SeedExample, Source
from annotation.roles import ROLES


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


class StaleVersion(Exception):
    """The candidate changed since the reviewer loaded it: their decision is refused, never merged silently."""


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
    if candidate.version != version:
        raise StaleVersion(
            f"candidate {candidate_id} was changed by someone else (version {candidate.version}, you saw {version})"
        )
    if not candidate.is_reviewable and candidate.status not in Candidate.REVIEWED:
        raise ReviewError(f"candidate {candidate_id} is {candidate.status}: it cannot be reviewed")
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
    candidate.save(update_fields=["status", "final_instruction", "final_response", "version", "updated_at"])
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
