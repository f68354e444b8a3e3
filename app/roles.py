"""Roles are Django groups (created by a data migration), ranked: annotator < curator < admin.

A higher role can do everything a lower one can; superusers are admins. Every view checks the role on the
server with `role_required`; the navigation only mirrors it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

ANNOTATOR = "annotator"
CURATOR = "curator"
ADMIN = "admin"
ROLES: tuple[str, ...] = (ANNOTATOR, CURATOR, ADMIN)
_RANK = {name: rank for rank, name in enumerate(ROLES)}


def user_role(user: Any) -> str | None:
    """The highest role the user holds, or None (anonymous, or no group)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_backforth_role", False)
    if cached is not False:
        return cached
    loaded = getattr(user, "group_names", None)  # RoleBackend read them with the user
    names = set(loaded if loaded is not None else user.groups.values_list("name", flat=True))
    held = [r for r in ROLES if r in names]
    role = max(held, key=_RANK.__getitem__) if held else None
    user._backforth_role = role
    return role


class RoleBackend(ModelBackend):
    """Django's ModelBackend, except that the user of each request is read with its group names in the same
    query (`group_names`, which user_role reads): one query fewer on every page a role guards. The statement is
    SQL written once (a queryset with an ArraySubquery cost more to build than to run, on every request)."""

    @functools.cached_property
    def user_sql(self) -> str:
        User = get_user_model()
        membership = User.groups.through._meta
        member, group = (membership.get_field(name).column for name in (User._meta.model_name, "group"))
        return (
            f"SELECT u.*, ARRAY(SELECT g.name FROM {Group._meta.db_table} g"
            f" JOIN {membership.db_table} m ON m.{group} = g.id WHERE m.{member} = u.{User._meta.pk.column})"
            f" AS group_names FROM {User._meta.db_table} u WHERE u.{User._meta.pk.column} = %s"
        )

    def get_user(self, user_id: Any) -> Any:
        user = next(iter(get_user_model()._default_manager.raw(self.user_sql, [user_id])), None)
        return user if user is not None and self.user_can_authenticate(user) else None


def has_role(user: Any, role: str) -> bool:
    held = user_role(user)
    return held is not None and _RANK[held] >= _RANK[role]


def role_required(role: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Login required, then at least `role`; anything less is a 403."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page is for the {role} role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def roles_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the user's role and one flag per role, for the navigation."""
    user = getattr(request, "user", None)
    role = user_role(user) if user is not None else None
    return {
        "user_role": role,
        "is_annotator": role is not None and has_role(user, ANNOTATOR),
        "is_curator": role is not None and has_role(user, CURATOR),
        "is_admin_role": role is not None and has_role(user, ADMIN),
    }
