from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from annotation.roles import ADMIN, role_required
from generation import selectors, services


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
