"""Reads for annotation pages."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from annotation.models import SeedExample


def seed_examples(*, source: str | None = None, query: str | None = None) -> QuerySet[SeedExample]:
    qs = SeedExample.objects.filter(is_active=True).select_related("created_by")
    if source:
        qs = qs.filter(source=source)
    if query:
        qs = qs.filter(Q(instruction__icontains=query) | Q(response__icontains=query))
    return qs.order_by("-created_at", "-id")
