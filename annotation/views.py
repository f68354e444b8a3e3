from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.models import Source
from annotation.roles import CURATOR, role_required
from generation.selectors import overview_counts


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "annotation/home.html", {"counts": overview_counts()})


@require_GET
@role_required(CURATOR)
def seed_list(request: HttpRequest) -> HttpResponse:
    source = request.GET.get("source", "")
    query = request.GET.get("q", "").strip()
    examples = selectors.seed_examples(source=source or None, query=query or None)
    page = Paginator(examples, 25).get_page(request.GET.get("page"))
    context = {"page": page, "source": source, "q": query, "sources": Source.choices}
    template = "annotation/seed_list.html#seed-table" if request.htmx else "annotation/seed_list.html"
    return render(request, template, context)
