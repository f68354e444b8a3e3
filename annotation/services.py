"""Writes on the seed set, candidates and reviews."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from annotation.models import SeedExample, Source
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
