from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from annotation import queue, selectors, services
from annotation.diff import word_diff
from annotation.forms import DecisionForm
from annotation.models import Candidate, Source
from annotation.roles import ANNOTATOR, CURATOR, role_required
from generation.models import Round
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


# --- the review queue -----------------------------------------------------------------------------------------


def _review_round(number: int) -> Round:
    return get_object_or_404(Round, number=number)


def _item_context(request: HttpRequest, rnd: Round, candidate: Candidate | None, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "round": rnd,
        "candidate": candidate,
        "reasons": queue.REJECT_REASONS,
        "counts": queue.queue_counts(user=request.user, round=rnd),
        **extra,
    }
    if candidate is not None:
        original = candidate.segment.text
        context["diff"] = word_diff(original, candidate.rewritten_response) if candidate.rewritten_response else None
        context["distribution"] = list(
            zip(range(1, 6), [round(100 * p) for p in (candidate.score_distribution or [0] * 5)], strict=True)
        )
    return context


def _render_item(request: HttpRequest, rnd: Round, candidate: Candidate | None, status: int = 200, **extra: Any):
    template = "annotation/review.html#review-item" if request.htmx else "annotation/review.html"
    return render(request, template, _item_context(request, rnd, candidate, **extra), status=status)


@require_GET
@role_required(ANNOTATOR)
def review_rounds(request: HttpRequest) -> HttpResponse:
    return render(request, "annotation/review_rounds.html", {"rounds": selectors.rounds_in_review()})


@require_GET
@role_required(ANNOTATOR)
def review_queue(request: HttpRequest, number: int) -> HttpResponse:
    rnd = _review_round(number)
    candidate = queue.queue_next(user=request.user, round=rnd)
    return _render_item(request, rnd, candidate)


@require_POST
@role_required(ANNOTATOR)
def review_decide(request: HttpRequest, number: int) -> HttpResponse:
    """Decide on the item in focus and answer with the next one (one round trip, no page load)."""
    rnd = _review_round(number)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _render_item(
            request, rnd, queue.queue_next(user=request.user, round=rnd), status=400, error=form.error_text()
        )
    data = form.cleaned_data
    try:
        queue.queue_decide(
            user=request.user,
            candidate_id=data["candidate_id"],
            version=data["version"],
            action=data["action"],
            instruction=data["instruction"] if data["action"] == "edit" else None,
            response=data["response"] if data["action"] == "edit" else None,
            reason=data["reason"],
            reason_text=data["reason_text"],
        )
    except services.StaleVersion as exc:
        current = Candidate.objects.select_related("segment", "round").filter(pk=data["candidate_id"]).first()
        return _render_item(
            request, rnd, current, status=409, error=f"Not saved: {exc}. Here is the pair as it is now."
        )
    except services.ReviewError as exc:
        current = Candidate.objects.select_related("segment", "round").get(pk=data["candidate_id"])
        return _render_item(request, rnd, current, status=400, error=str(exc))
    done = {"accept": "Accepted", "edit": "Saved your edit", "reject": "Rejected", "skip": "Skipped"}[data["action"]]
    return _render_item(request, rnd, queue.queue_next(user=request.user, round=rnd), notice=f"{done}. U undoes it.")


@require_POST
@role_required(ANNOTATOR)
def review_undo(request: HttpRequest, number: int) -> HttpResponse:
    rnd = _review_round(number)
    try:
        candidate = queue.queue_undo(user=request.user, round=rnd)
    except services.StaleVersion as exc:
        return _render_item(request, rnd, queue.queue_next(user=request.user, round=rnd), status=409, error=str(exc))
    if candidate is None:
        return _render_item(request, rnd, queue.queue_next(user=request.user, round=rnd), error="Nothing to undo.")
    return _render_item(request, rnd, candidate, notice="Undone: the pair is back as it was.")
