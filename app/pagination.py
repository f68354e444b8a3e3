"""One way to page a list: `paginate` (a bad or out-of-range ?page= gives the first or last page, never an error)
and the `templates/_pagination.html` links, which keep the request's other query parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


def paginate(request: HttpRequest, items: QuerySet[Any] | Sequence[Any], *, per_page: int = 25) -> Page:
    """The page of `items` that ?page= asks for (an ordered queryset: only that page's rows are read)."""
    return Paginator(items, per_page).get_page(request.GET.get("page"))
