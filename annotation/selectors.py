"""Reads for annotation pages."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from annotation.models import Candidate, SeedExample


def seed_examples(*, source: str | None = None, query: str | None = None) -> QuerySet[SeedExample]:
    qs = SeedExample.objects.filter(is_active=True).select_related("created_by")
    if source:
        qs = qs.filter(source=source)
    if query:
        qs = qs.filter(Q(instruction__icontains=query) | Q(response__icontains=query))
    return qs.order_by("-created_at", "-id")


def rounds_in_review() -> list[Any]:
    """Rounds whose queue has work, with how much is left."""
    from generation.models import Round

    return list(
        Round.objects.filter(state=Round.State.REVIEW)
        .annotate(
            waiting=Count("candidates", filter=Q(candidates__in_queue=True)),
            reviewed=Count("candidates", filter=Q(candidates__status__in=Candidate.REVIEWED)),
        )
        .select_related("corpus")
        .order_by("-number")
    )
