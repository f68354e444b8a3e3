from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from annotation import selectors as review_selectors
from app.errorlog import recent_errors
from app.pagination import paginate
from app.roles import ADMIN, CURATOR, has_role, role_required
from app.uploads import describe_limit, upload_refusal
from generation import selectors
from generation.forms import GuidelinesForm, ModelRegisterForm, RoundLaunchForm
from generation.models import Corpus, ModelVersion, Round
from generation.pipeline import formats, signals
from generation.pipeline.formats.json_io import write_json_lines
from generation.services import export
from generation.services import rounds as round_service
from generation.services.corpus import corpus_upload
from generation.services.jobs import job_create
from generation.services.rounds import (
    STAGES,
    GuidelinesRefused,
    ReviewNotOpen,
    RoundFinished,
    StageActionRefused,
    round_create,
    round_start,
    stage_cancel,
    stage_retry,
)

ROUNDS_PER_PAGE = 25
MODELS_PER_PAGE = 25
CORPORA_PER_PAGE = 25
SEGMENTS_PER_PAGE = 20
CORPUS_NAME_MAX = Corpus._meta.get_field("name").max_length


@require_GET
@role_required(ADMIN)
def status(request: HttpRequest) -> HttpResponse:
    context = {"checks": selectors.system_status(), "jobs": selectors.recent_jobs(), "errors": recent_errors()}
    template = "generation/status.html#status-panel" if request.htmx else "generation/status.html"
    return render(request, template, context)


@require_POST
@role_required(ADMIN)
def status_ping(request: HttpRequest) -> HttpResponse:
    """Send a health-check job through Redis to a worker and back into PostgreSQL."""
    job = job_create(stage="ping", queue_name="default")
    if not request.htmx:
        return redirect("status")
    context = {"checks": selectors.system_status(), "jobs": selectors.recent_jobs()}
    response = render(request, "generation/status.html#status-panel", context)
    return trigger_client_event(response, "job-queued", {"id": job.pk})


@require_GET
@role_required(ADMIN)
def round_list(request: HttpRequest) -> HttpResponse:
    page = paginate(request, selectors.rounds(), per_page=ROUNDS_PER_PAGE)
    return render(request, "generation/round_list.html", {"rounds": page, "trend": selectors.win_rate_trend()})


@require_http_methods(["GET", "POST"])
@role_required(ADMIN)
def round_launch(request: HttpRequest) -> HttpResponse:
    """The launch form: sensible defaults, the config validated (and frozen) before anything is queued."""
    form = RoundLaunchForm(request.POST or None, request.FILES or None, initial=RoundLaunchForm.initial_values())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        rnd = round_create(
            corpus=data["corpus"],
            base_model=data["base_model"],
            config=data["config"],
            created_by=request.user,
            guidelines=data["guidelines"],
        )
        round_start(round=rnd)
        messages.success(request, f"Round {rnd.number} launched (config {rnd.config_hash[:12]}).")
        return redirect("round-detail", number=rnd.number)
    return render(request, "generation/round_launch.html", {"form": form}, status=400 if form.errors else 200)


def _verdict_parts(evaluation: dict | None) -> list[list]:
    if not evaluation:
        return []
    return [["win", evaluation["wins"]], ["tie", evaluation["ties"]], ["loss", evaluation["losses"]]]


def _round_context(rnd: Round) -> dict:
    cfg = rnd.cfg
    curation = cfg.curation
    return {
        "round": rnd,
        "cfg": cfg,
        "stages": selectors.round_stages(rnd),
        "counts": selectors.round_candidate_counts(rnd),
        "review": selectors.review_progress(rnd),
        "jobs": selectors.round_jobs(rnd),
        "evaluation": rnd.metrics.get("evaluation"),
        "evaluation_parts": _verdict_parts(rnd.metrics.get("evaluation")),
        "curation": rnd.metrics.get("curation"),
        "feedback": rnd.metrics.get("feedback"),
        "scores": selectors.round_scores(rnd),
        "keep_scores": selectors.round_keep_scores(rnd),
        "keep_rule": selectors.keep_rule_text(curation),
        "gate_counts": selectors.round_gate_counts(rnd),
        "rubric_marker": curation.threshold if signals.RANK_SIGNAL[curation.keep] == "rubric" else None,
        "models": [m for m in (rnd.backward_model, rnd.forward_model) if m is not None],
        "guidelines_form": GuidelinesForm(initial={"guidelines": rnd.guidelines}),
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
    if stage not in STAGES or action not in ("cancel", "retry"):
        raise Http404("no such stage action")
    try:
        n = (stage_cancel if action == "cancel" else stage_retry)(round=rnd, stage=stage)
    except StageActionRefused as exc:
        messages.error(request, f"Not done: {exc}.")
        if request.htmx:
            return HttpResponseClientRedirect(reverse("round-detail", args=[number]))
        return redirect("round-detail", number=number)
    if not request.htmx:
        return redirect("round-detail", number=number)
    rnd.refresh_from_db()
    response = render(request, "generation/round_detail.html#round-stages", _round_context(rnd))
    return trigger_client_event(response, "stage-changed", {"stage": stage, "action": action, "chunks": n})


@require_POST
@role_required(ADMIN)
def round_guidelines(request: HttpRequest, number: int) -> HttpResponse:
    """Replace the round's guidelines (also while annotators review it; they see them on their next page load)."""
    rnd = get_object_or_404(Round, number=number)
    form = GuidelinesForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Guidelines not saved: {form.errors.as_text()}")
        return redirect("round-detail", number=number)
    try:
        round_service.round_guidelines_update(round=rnd, text=form.cleaned_data["guidelines"], user=request.user)
    except GuidelinesRefused as exc:
        messages.error(request, f"Guidelines not saved: {exc}.")
    else:
        messages.success(request, f"Guidelines of round {rnd.number} saved.")
    return redirect(f"{reverse('round-detail', args=[number])}#guidelines")


@require_POST
@role_required(ADMIN)
def round_close_review(request: HttpRequest, number: int) -> HttpResponse:
    rnd = get_object_or_404(Round, number=number)
    try:
        counts = round_service.round_close_review(round=rnd, user=request.user)
    except ReviewNotOpen as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Review closed: {counts['added_to_seed']} pairs joined the seed set, {counts['rejected']} rejected; "
            "training the forward model.",
        )
    if request.htmx:
        return HttpResponseClientRedirect(reverse("round-detail", args=[number]))
    return redirect("round-detail", number=number)


@require_POST
@role_required(ADMIN)
def round_cancel(request: HttpRequest, number: int) -> HttpResponse:
    rnd = get_object_or_404(Round, number=number)
    try:
        n = round_service.round_cancel(round=rnd)
    except RoundFinished as exc:
        messages.error(request, f"Not cancelled: {exc}.")
    else:
        messages.info(request, f"Round {rnd.number} cancelled ({n} unfinished jobs stopped).")
    return redirect("round-detail", number=number)


@require_http_methods(["GET", "POST"])
@role_required(ADMIN)
def model_list(request: HttpRequest) -> HttpResponse:
    """The model registry: every base, backward, forward and judge model, with lineage and metrics."""
    form = ModelRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        model, created = ModelVersion.objects.get_or_create(
            role=form.cleaned_data["role"], path=form.cleaned_data["path"], defaults={"name": form.cleaned_data["name"]}
        )
        messages.success(request, f"{model.name} {'registered' if created else 'was already registered'}.")
        return redirect("model-list")
    page = paginate(request, selectors.model_registry(), per_page=MODELS_PER_PAGE)
    page.object_list = selectors.model_rows(page.object_list)
    return render(
        request,
        "generation/model_list.html",
        {"models": page, "form": form},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@role_required(CURATOR)
def corpus_list(request: HttpRequest) -> HttpResponse:
    """The corpora; admins upload files here (imported by a job on the `default` queue, which creates the corpus
    only when the import succeeds)."""
    if request.method == "POST":
        if not has_role(request.user, ADMIN):
            return HttpResponse("Only admins import corpora.", status=403)
        name, uploads = request.POST.get("name", "").strip(), request.FILES.getlist("files")
        refusal = upload_refusal(request, uploads, megabytes=settings.BACKFORTH_MAX_UPLOAD_MB)
        if refusal is None and (not name or not uploads):
            refusal = "Give the corpus a name and choose at least one file."
        if refusal is None and len(name) > CORPUS_NAME_MAX:
            refusal = f"The corpus name is longer than {CORPUS_NAME_MAX} characters."
        if refusal is not None:
            messages.error(request, refusal)
            return _corpus_list_page(request, status=400)
        job = corpus_upload(name=name, uploads=uploads, user=request.user)
        messages.success(request, f"Importing {len(uploads)} file(s) into {name} (job {job.pk}); see System status.")
        return redirect("corpus-list")
    return _corpus_list_page(request)


def _corpus_list_page(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    context = {
        "corpora": paginate(request, selectors.corpora(), per_page=CORPORA_PER_PAGE),
        "imports": selectors.corpus_imports(),
        "max_upload": describe_limit(settings.BACKFORTH_MAX_UPLOAD_MB),
    }
    return render(request, "generation/corpus_list.html", context, status=status)


@require_GET
@role_required(CURATOR)
def corpus_detail(request: HttpRequest, pk: int) -> HttpResponse:
    corpus = get_object_or_404(Corpus, pk=pk)
    imports = corpus.stats.get("imports", [])
    segments = paginate(request, corpus.segments.order_by("-id"), per_page=SEGMENTS_PER_PAGE)
    return render(
        request,
        "generation/corpus_detail.html",
        {"corpus": corpus, "imports": imports, "segments": segments},
    )


@require_GET
@role_required(CURATOR)
def round_dashboard(request: HttpRequest, number: int) -> HttpResponse:
    """A round's review as a curator sees it: the people's side (annotation) beside the model's."""
    rnd = get_object_or_404(Round, number=number)
    context = {
        "round": rnd,
        **review_selectors.review_summary(rnd),
        "scores": selectors.round_scores(rnd),
        "curation": selectors.curation_quality(rnd),
    }
    return render(request, "annotation/dashboard.html", context)


@require_GET
@role_required(CURATOR)
def round_export(request: HttpRequest, number: int) -> StreamingHttpResponse:
    """Download a round's accepted and edited pairs, or its decisions as DPO pairs / KTO rows, streamed as JSON
    (Parquet, `datasets` directories and the manifest: `manage.py export`)."""
    rnd = get_object_or_404(Round, number=number)
    fmt = request.GET.get("format", "messages_jsonl")
    if fmt not in ("messages_jsonl", "alpaca_json", "dpo_jsonl", "kto_jsonl"):
        raise Http404("unknown download format")
    kind = export.preference_kind(fmt)
    if kind:
        chunks = write_json_lines(export.preference_rows(rnd, kind))
    else:
        chunks = formats.export_rows(
            export.round_rows(rnd, include_unreviewed=request.GET.get("unreviewed") == "1"), fmt
        )
    response = StreamingHttpResponse(chunks, content_type="application/json")
    ext = "json" if fmt == "alpaca_json" else "jsonl"
    response["Content-Disposition"] = f'attachment; filename="round-{rnd.number}-{fmt}.{ext}"'
    return response
