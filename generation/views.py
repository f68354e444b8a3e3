from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from annotation.roles import ADMIN, role_required
from generation import selectors, services, stages
from generation.models import Round


@require_GET
@role_required(ADMIN)
def status(request: HttpRequest) -> HttpResponse:
    context = {"checks": selectors.system_status(), "jobs": selectors.recent_jobs()}
    template = "generation/status.html#status-panel" if request.htmx else "generation/status.html"
    return render(request, template, context)


@require_POST
@role_required(ADMIN)
def status_ping(request: HttpRequest) -> HttpResponse:
    """Send a health-check job through Redis to a worker and back into PostgreSQL."""
    job = services.job_create(stage="ping", queue_name="default")
    if not request.htmx:
        return redirect("status")
    context = {"checks": selectors.system_status(), "jobs": selectors.recent_jobs()}
    response = render(request, "generation/status.html#status-panel", context)
    return trigger_client_event(response, "job-queued", {"id": job.pk})


@require_GET
@role_required(ADMIN)
def round_list(request: HttpRequest) -> HttpResponse:
    rounds = Round.objects.select_related("corpus", "base_model").order_by("-number")
    return render(request, "generation/round_list.html", {"rounds": rounds})


def _round_context(rnd: Round) -> dict:
    return {
        "round": rnd,
        "stages": selectors.round_stages(rnd),
        "counts": selectors.round_candidate_counts(rnd),
    }


@require_GET
@role_required(ADMIN)
def round_detail(request: HttpRequest, number: int) -> HttpResponse:
    rnd = get_object_or_404(Round, number=number)
    template = "generation/round_detail.html#round-stages" if request.htmx else "generation/round_detail.html"
    return render(request, template, _round_context(rnd))


@require_POST
@role_required(ADMIN)
def round_stage_action(request: HttpRequest, number: int, stage: str, action: str) -> HttpResponse:
    rnd = get_object_or_404(Round, number=number)
    if stage not in stages.STAGES or action not in ("cancel", "retry"):
        raise Http404("no such stage action")
    n = (stages.stage_cancel if action == "cancel" else stages.stage_retry)(round=rnd, stage=stage)
    if not request.htmx:
        return redirect("round-detail", number=number)
    rnd.refresh_from_db()
    response = render(request, "generation/round_detail.html#round-stages", _round_context(rnd))
    return trigger_client_event(response, "stage-changed", {"stage": stage, "action": action, "chunks": n})
