from __future__ import annotations

import functools
import hashlib
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import queue, selectors, services
from annotation.diff import word_diff
from annotation.forms import AdjudicateForm, DecisionForm, SeedExampleForm, SeedImportForm
from annotation.models import Candidate, SeedExample, Source
from app.pagination import paginate
from app.params import MAX_INT, parse_id, parse_ids, safe_next
from app.roles import ADMIN, ANNOTATOR, CURATOR, has_role, role_required
from app.uploads import upload_refusal
from generation.models import Round
from generation.pipeline import formats


def _seed_filters(request: HttpRequest) -> dict[str, Any]:
    g = request.GET
    number = g.get("round", "")
    return {
        "q": g.get("q", "").strip(),
        "source": g.get("source", ""),
        "tag": g.get("tag", ""),
        "round": parse_id(number, maximum=MAX_INT),
        "author": g.get("author", ""),
        "active": g.get("active", "1") != "0",
    }


@require_GET
@role_required(CURATOR)
def seed_list(request: HttpRequest) -> HttpResponse:
    f = _seed_filters(request)
    examples = selectors.seed_examples(
        source=f["source"] or None,
        query=f["q"] or None,
        tag=f["tag"] or None,
        round_number=f["round"],
        author=f["author"] or None,
        active=f["active"],
    )
    page = Paginator(examples, 25).get_page(request.GET.get("page"))
    query_string = request.GET.copy()
    query_string.pop("page", None)
    context = {
        "page": page,
        **f,
        "sources": Source.choices,
        "facets": selectors.seed_facets(),
        "query_string": query_string.urlencode(),
        "formats_out": formats.FORMATS_OUT,
        "formats_in": formats.FORMATS_UPLOAD,
        "map_targets": ("instruction", "response", "input"),
        "bulk_actions": services.BULK_ACTIONS,
    }
    template = "annotation/seed_list.html#seed-table" if request.htmx else "annotation/seed_list.html"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@role_required(CURATOR)
def seed_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create (pk None) or edit a seed example; the page shows its history (who, when, before → after)."""
    example = get_object_or_404(SeedExample, pk=pk) if pk else None
    form = SeedExampleForm(request.POST or None, instance=example)
    if request.method == "POST" and form.is_valid():
        fields = {k: form.cleaned_data[k] for k in ("instruction", "response", "source", "tags")}
        try:
            saved = services.seed_example_save(
                user=request.user, example=example, version=form.cleaned_data.get("version"), **fields
            )
        except services.StaleVersion as exc:
            form.add_error(None, f"{exc}. Reload to see their change; yours was not saved.")
            status = 409
        else:
            messages.success(request, f"Saved seed example {saved.pk} (version {saved.version}).")
            return redirect("seed-edit", pk=saved.pk)
    else:
        status = 400 if form.errors else 200
    history = selectors.seed_history(example) if example else []
    return render(
        request, "annotation/seed_edit.html", {"form": form, "example": example, "history": history}, status=status
    )


@require_POST
@role_required(CURATOR)
def seed_bulk(request: HttpRequest) -> HttpResponse:
    ids = parse_ids(request.POST.getlist("ids"))
    action = request.POST.get("action", "")
    try:
        n = services.seed_bulk(user=request.user, ids=ids, action=action, value=request.POST.get("value", ""))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{action.replace('_', ' ')}: {n} of {len(ids)} examples changed.")
    return HttpResponseRedirect(safe_next(request, request.POST.get("next"), reverse("seed-list")))


@require_POST
@role_required(CURATOR)
def seed_import(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    refusal = upload_refusal(request, [upload] if upload else [], megabytes=settings.BACKFORTH_MAX_SEED_UPLOAD_MB)
    if refusal is None and upload is None:
        refusal = "Choose a file to import."
    if refusal is not None:
        messages.error(request, refusal)
        return redirect("seed-list")
    form = SeedImportForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{upload.name}: nothing was imported. {form.error_text()}")
        return redirect("seed-list")
    try:
        fmt, created = services.seed_import(
            user=request.user,
            name=upload.name,
            data=upload.read(),  # at most BACKFORTH_MAX_SEED_UPLOAD_MB, checked above
            fmt=form.cleaned_data["format"] or None,
            source=form.cleaned_data["source"] or "seed",
            turns="all" if form.cleaned_data["all_turns"] else "first",
            mapping=form.mapping(),
        )
    except ValueError as exc:  # formats.FormatError included: every bad line or row
        messages.error(request, f"{upload.name}: nothing was imported. {exc}")
    else:
        messages.success(request, f"Imported {len(created)} examples from {upload.name} ({fmt}).")
    return redirect("seed-list")


@require_GET
@role_required(CURATOR)
def seed_export(request: HttpRequest) -> StreamingHttpResponse:
    fmt = request.GET.get("format", "messages_jsonl")
    if fmt not in formats.FORMATS_OUT:
        raise Http404("unknown export format")
    f = _seed_filters(request)
    rows = (
        selectors.seed_examples(source=f["source"] or None, tag=f["tag"] or None, active=True)
        .order_by("pk")
        .values("id", "instruction", "response", "source", "tags", "version")
        .iterator(chunk_size=2000)
    )
    ext = "json" if fmt == "alpaca_json" else "jsonl"
    response = StreamingHttpResponse(formats.export_rows(rows, fmt), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="seed-{fmt}.{ext}"'
    return response


@require_GET
@role_required(CURATOR)
def audit_log(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.audit_events(), 50).get_page(request.GET.get("page"))
    return render(request, "annotation/audit.html", {"page": page})


@require_http_methods(["GET", "POST"])
@role_required(CURATOR)
def adjudicate(request: HttpRequest) -> HttpResponse:
    """Pairs annotators disagreed on (overlap), for a curator to settle."""
    if request.method == "POST":
        form = AdjudicateForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest(f"Bad adjudication: {form.errors.as_text()}", content_type="text/plain")
        candidate = get_object_or_404(Candidate, pk=form.cleaned_data["candidate_id"])
        decision = form.cleaned_data["decision"]
        try:
            services.candidate_adjudicate(user=request.user, candidate=candidate, decision=decision)
        except services.NotYours as exc:
            messages.error(request, f"Not saved: {exc}.")
        else:
            messages.success(request, f"Pair {candidate.pk} settled: {decision}.")
        return redirect("adjudicate")
    return render(request, "annotation/adjudicate.html", {"items": selectors.disagreements()})


# --- the review queue -----------------------------------------------------------------------------------------


def _review_round(number: int) -> Round:
    return get_object_or_404(Round, number=number)


@functools.cache
def _reason_options() -> str:
    """The reject reasons' <option>s: the same for every item, so rendered once per process, not per item."""
    return render_to_string("annotation/review.html#reason-options", {"reasons": queue.REJECT_REASONS})


def _item_context(
    request: HttpRequest, rnd: Round, candidate: Candidate | None, counts: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "round": rnd,
        "candidate": candidate,
        "reason_options": _reason_options(),
        "decide_url": reverse("review-decide", args=[rnd.number]),
        "undo_url": reverse("review-undo", args=[rnd.number]),
        "counts": counts if counts is not None else queue.queue_counts(user=request.user, round=rnd),
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
    if request.htmx:  # the item alone: the guidelines panel around it stays as the page loaded it
        context = _item_context(request, rnd, candidate, **extra)
        return render(request, "annotation/review.html#review-item", context, status=status)
    # The guidelines panel opens by itself the first time a browser meets this version of them (review.js).
    extra["guidelines_version"] = hashlib.sha256(rnd.guidelines.encode()).hexdigest()[:16] if rnd.guidelines else ""
    return render(request, "annotation/review.html", _item_context(request, rnd, candidate, **extra), status=status)


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
    """Decide on the item in focus and answer with the next one: one round trip, no page load, one transaction
    (queue.queue_decide_next); the answer is the item's partial alone."""
    rnd = _review_round(number)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _render_item(
            request, rnd, queue.queue_next(user=request.user, round=rnd), status=400, error=form.error_text()
        )
    data = form.cleaned_data
    try:
        answer = queue.queue_decide_next(
            user=request.user,
            round=rnd,
            candidate_id=data["candidate_id"],
            version=data["version"],
            action=data["action"],
            instruction=data["instruction"] if data["action"] == "edit" else None,
            response=data["response"] if data["action"] == "edit" else None,
            reason=data["reason"],
            reason_text=data["reason_text"],
        )
    except (services.StaleVersion, services.NotYours, services.ReviewError) as exc:
        # Whatever was refused, the page shows this annotator's own current item (the one they hold, as it is
        # now), never the pair they named: a refusal shows nothing of a pair that is not theirs.
        status = 400 if isinstance(exc, services.ReviewError) else 409
        error = str(exc) if status == 400 else f"Not saved: {exc}."
        return _render_item(request, rnd, queue.queue_next(user=request.user, round=rnd), status=status, error=error)
    done = {"accept": "Accepted", "edit": "Saved your edit", "reject": "Rejected", "skip": "Skipped"}[data["action"]]
    return _render_item(request, rnd, answer.next, counts=answer.counts, notice=f"{done}. U undoes it.")


@require_POST
@role_required(ANNOTATOR)
def review_undo(request: HttpRequest, number: int) -> HttpResponse:
    rnd = _review_round(number)
    try:
        candidate = queue.queue_undo(user=request.user, round=rnd)
    except (services.StaleVersion, services.NotYours) as exc:
        return _render_item(request, rnd, queue.queue_next(user=request.user, round=rnd), status=409, error=str(exc))
    if candidate is None:
        return _render_item(request, rnd, queue.queue_next(user=request.user, round=rnd), error="Nothing to undo.")
    return _render_item(request, rnd, candidate, notice="Undone: the pair is back as it was.")


# --- an annotator's own page, and a pair read-only ---------------------------------------------------------

HISTORY_PER_PAGE = 25


def _annotator_context(request: HttpRequest, person: Any) -> dict[str, Any]:
    admin = has_role(request.user, ADMIN)
    return {
        "person": person,
        "is_me": person.pk == request.user.pk,
        **selectors.annotator_stats(person),
        "agreement": selectors.annotator_agreement(person, reveal_names=admin),
        "page": paginate(request, selectors.annotator_history(person), per_page=HISTORY_PER_PAGE),
    }


@require_GET
@role_required(ANNOTATOR)
def annotator_me(request: HttpRequest) -> HttpResponse:
    """The signed-in annotator's decisions, pace, agreement with others and history."""
    return render(request, "annotation/annotator.html", _annotator_context(request, request.user))


@require_GET
@role_required(ANNOTATOR)
def annotator_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Anyone's page, for admins; an annotator may open only their own (403 for anyone else's)."""
    if pk != request.user.pk and not has_role(request.user, ADMIN):
        raise PermissionDenied("Only admins see other people's review pages.")
    person = get_object_or_404(get_user_model(), pk=pk)
    return render(request, "annotation/annotator.html", _annotator_context(request, person))


@require_GET
@role_required(ANNOTATOR)
def review_item(request: HttpRequest, pk: int) -> HttpResponse:
    """One pair, read-only, as a history entry links to it. An annotator sees only pairs they reviewed, and only
    their own reviews of it (404 for any other pair: its existence is not confirmed); curators see every review."""
    candidate = get_object_or_404(Candidate.objects.select_related("round", "segment"), pk=pk)
    curator = has_role(request.user, CURATOR)
    if not selectors.may_see_item(request.user, candidate, curator=curator):
        raise Http404("no such pair among yours")
    reviews = candidate.reviews.select_related("reviewer").order_by("created_at", "id")
    if not curator:
        reviews = reviews.filter(reviewer=request.user)
    return render(
        request,
        "annotation/review_item.html",
        {"candidate": candidate, "round": candidate.round, "reviews": list(reviews), "curator": curator},
    )
