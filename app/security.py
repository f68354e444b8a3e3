"""Small hooks for the security packages (django-axes)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

AXES_USERNAME_MAX = 150  # Django's own username max_length; axes' column holds 255


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """The username a login attempt named, as axes records it: from the credentials, else the form, cut to
    Django's username length (a 5,000-character username is a failed login, not a database error)."""
    source = credentials if credentials else getattr(request, "POST", {})
    username = source.get("username") if source else None
    return username[:AXES_USERNAME_MAX] if isinstance(username, str) else username
