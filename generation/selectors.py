"""Reads for generation pages: system status, jobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_rq
from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from annotation.models import Candidate, SeedExample
from app.binning import Bins, sql_bins, sql_range
from app.env import redact_url
from generation.backends.devices import WORKER_GPUS_FIELD
from generation.models import QUEUES, Corpus, Job, ModelVersion, Round, Segment
from generation.pipeline import evaluation, gates, signals
from generation.pipeline.signals import CurationConfig


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


def _database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("select current_setting('server_version'), current_database()")
            version, name = cursor.fetchone()
        return Check("PostgreSQL", True, f"PostgreSQL {version}, database {name}")
    except Exception as exc:  # the page must render whatever is down
        return Check("PostgreSQL", False, f"unreachable: {exc}")


def _redis_checks() -> list[Check]:
    try:
        conn = django_rq.get_connection("default")
        info = conn.info("server")
    except Exception as exc:
        return [Check("Redis", False, f"unreachable: {exc}"), Check("Workers", False, "Redis is down")]
    checks = [Check("Redis", True, f"Redis {info.get('redis_version', '?')} at {redact_url(settings.REDIS_URL)}")]
    workers = Worker.all(connection=conn)
    rows = [
        {
            "name": w.name,
            "host": w.hostname or "",
            "gpus": _gpus_of(conn, w),
            "queues": ", ".join(w.queue_names()),
            "state": w.get_state(),
            "last_heartbeat": w.last_heartbeat,
            "current_job": w.get_current_job_id() or "",
        }
        for w in sorted(workers, key=lambda w: w.name)
    ]
    covered = {q for w in workers for q in w.queue_names()}
    missing = [q for q in QUEUES if q not in covered]
    detail = f"{len(workers)} alive" + (f"; no worker listens on {', '.join(missing)}" if missing else "")
    checks.append(Check("Workers", bool(workers) and not missing, detail, {"workers": rows}))
    queues = []
    for name in QUEUES:
        q = django_rq.get_queue(name)
        queues.append(
            {
                "name": name,
                "queued": q.count,
                "started": StartedJobRegistry(queue=q).count,
                "failed": FailedJobRegistry(queue=q).count,
            }
        )
    checks.append(
        Check("Queues", True, ", ".join(f"{q['name']}: {q['queued']} queued" for q in queues), {"queues": queues})
    )
    return checks


def _gpus_of(conn: Any, worker: Worker) -> str | None:
    """The GPUs a worker registered ("0,1"; "" for a CPU worker), None when it did not say (not ours)."""
    raw = conn.hget(worker.key, WORKER_GPUS_FIELD)
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


def worker_gpu_counts(queue: str = "gpu") -> list[int]:
    """How many GPUs each live worker on `queue` owns, as it registered them (workers that did not are left
    out); empty when none runs or Redis cannot be reached."""
    try:
        conn = django_rq.get_connection("default")
        workers = Worker.all(connection=conn, queue=django_rq.get_queue(queue))
        listed = [_gpus_of(conn, w) for w in workers]
    except Exception:  # a launch must not fail because Redis is down: the worker checks again
        return []
    return [len([g for g in gpus.split(",") if g]) for gpus in listed if gpus is not None]


def _model_check() -> Check:
    path = Path(settings.DEFAULT_MODEL)
    has_weights = any(path.glob("*.safetensors")) if path.is_dir() else False
    if path.is_dir() and (path / "config.json").is_file() and has_weights:
        size = sum(p.stat().st_size for p in path.glob("*.safetensors"))
        return Check("Default model", True, f"{path} ({size / 2**20:.0f} MiB of weights)")
    return Check("Default model", False, f"{path} is missing: run `python manage.py prepare_model`")


def system_status() -> list[Check]:
    checks = [_database_check(), *_redis_checks(), _model_check()]
    return checks


def recent_jobs(*, limit: int = 10) -> list[Job]:
    """The newest jobs, each with its result's plain fields as (key, value) pairs: a template looping over
    `result.items` gets the key "items" of a stage's result, not the dict's method."""
    jobs = list(Job.objects.select_related("round").order_by("-id")[:limit])
    for job in jobs:
        result = job.result if isinstance(job.result, dict) else {}
        job.result_fields = [(k, v) for k, v in result.items() if not isinstance(v, dict | list)]
    return jobs


HOME_CORPORA = 20
TREND_ROUNDS = 200


def overview_counts() -> dict[str, Any]:
    """Numbers for the home page."""
    seed = dict(SeedExample.objects.filter(is_active=True).values_list("source").annotate(n=Count("id")).order_by())
    return {
        "seed_by_source": seed,
        "seed_total": sum(seed.values()),
        "corpora": list(corpora()[:HOME_CORPORA]),
        "corpora_total": Corpus.objects.count(),
        "rounds": Round.objects.count(),
        "candidates": Candidate.objects.count(),
        "models": ModelVersion.objects.count(),
    }


def _stage_state(rnd: Round, stage: str, order: tuple[str, ...], progress: dict[str, Any]) -> str:
    """done / current / pending / skipped / failed, for the round's timeline."""
    chunks = progress["chunks"]
    if chunks.get("failed"):
        return "failed"
    if rnd.state == stage:
        return "current"
    if rnd.state == Round.State.CLOSED or (rnd.state in order and order.index(rnd.state) > order.index(stage)):
        if stage == Round.State.REVIEW:
            return "done" if rnd.cfg.review.mode == "human" else "skipped"
        return "done" if progress["launched"] else "skipped"
    if progress["launched"] and chunks.get("done", 0) == sum(chunks.values()):
        return "done"
    return "pending"


def stage_progress(*, round: Round, stage: str) -> dict[str, Any]:
    """Done/total items over the stage's chunks, items/s and ETA (for the UI and the CLI)."""
    jobs = list(round.jobs.filter(stage=stage))
    done = sum(j.progress_done for j in jobs)
    total = sum(j.progress_total for j in jobs)
    started = [j.started_at for j in jobs if j.started_at]
    finished = [j.finished_at for j in jobs if j.finished_at]
    # A finished stage's rate is over its own run time, not over the time since it started.
    end = max(finished) if jobs and all(j.is_finished for j in jobs) and finished else timezone.now()
    elapsed = (end - min(started)).total_seconds() if started else 0.0
    rate = done / elapsed if elapsed > 0 and done else 0.0
    by_status: dict[str, int] = {}
    for j in jobs:
        by_status[j.status] = by_status.get(j.status, 0) + 1
    return {
        "done": done,
        "total": total,
        "items_per_s": rate,
        "eta_s": (total - done) / rate if rate else None,
        "chunks": by_status,
        "launched": bool(jobs),
    }


def round_stages(rnd: Round) -> list[dict[str, Any]]:
    """Every stage of the round (the timeline): state, progress, chunk states and the errors of failed chunks."""

    order = rnd.cfg.round_stages()
    rows = []
    for stage in order:
        progress = stage_progress(round=rnd, stage=stage)
        failed = list(rnd.jobs.filter(stage=stage, status=Job.Status.FAILED).order_by("chunk")[:5])
        rows.append(
            {
                "name": stage,
                "label": Round.State(stage).label,
                "is_review": stage == Round.State.REVIEW,
                "is_training": stage.startswith("train_"),
                "state": _stage_state(rnd, stage, order, progress),
                "current": rnd.state == stage,
                **progress,
                "percent": round(100 * progress["done"] / progress["total"]) if progress["total"] else 0,
                "failed_jobs": failed,
                "can_cancel": progress["chunks"].get("queued", 0) + progress["chunks"].get("running", 0) > 0,
                "can_retry": progress["chunks"].get("failed", 0) + progress["chunks"].get("cancelled", 0) > 0,
            }
        )
    return rows


def round_jobs(rnd: Round, *, limit: int = 50) -> list[Job]:
    """The round's job log, newest activity first, each with a one-line summary of its result."""
    jobs = list(rnd.jobs.order_by("-started_at", "-id")[:limit])
    for job in jobs:
        job.summary = job_summary(job.stage, job.result or {})
    return jobs


def job_summary(stage: str, result: dict[str, Any]) -> str:
    """What a finished job did, in a line (a template reading result.items would get the dict's method)."""
    parts: list[str] = []
    if result.get("final_loss") is not None:
        parts.append(f"loss {result['final_loss']} · {result.get('steps')} steps · {result.get('seconds')} s")
    elif stage == "evaluate" and result.get("n") is not None:
        parts.append(f"{result['n']} prompts judged")
        forward = (result.get("heldout") or {}).get("forward") or {}
        if forward.get("n"):
            parts.append(f"held-out NLL Δ {forward['delta']['nll']:+.3f} on {forward['n']} pairs")
    elif "items" in result:
        rate = result.get("completion_tokens_per_s")
        parts.append(f"{result['items']} items" + (f" · {rate} tok/s" if rate else f" · {result.get('seconds')} s"))
        if result.get("errors"):
            parts.append(f"{result['errors']} errors")
        if result.get("gated"):
            parts.append(f"{result['gated']} gated")
    return " · ".join(parts)


def review_progress(rnd: Round) -> dict[str, int]:
    counts = round_candidate_counts(rnd)
    reviewed = sum(counts.get(s, 0) for s in Candidate.REVIEWED)
    pending = counts.get(Candidate.Status.KEPT, 0)
    return {"reviewed": reviewed, "pending_kept": pending, "total": reviewed + pending}


#: The rubric's expected score (1–5) histogram of the round and dashboard pages.
RUBRIC_BINS, RUBRIC_LO, RUBRIC_HI = 16, 1.0, 5.0
KEEP_SCORE_BINS = 16


def round_scores(rnd: Round) -> Bins | None:
    """The rubric scores' histogram counts (binned by PostgreSQL), or None when no pair has a score."""
    return sql_bins(rnd.candidates.all(), "score", bins=RUBRIC_BINS, lo=RUBRIC_LO, hi=RUBRIC_HI)


def round_gate_counts(rnd: Round) -> list[dict[str, Any]]:
    """How many pairs each output gate dropped before review, most first, with the reason in words."""
    rows = rnd.candidates.exclude(gate="").values_list("gate").annotate(n=Count("id")).order_by("-n", "gate")
    return [{"reason": r, "label": gates.REASONS.get(r, r), "n": n} for r, n in rows]


def round_keep_scores(rnd: Round) -> dict[str, Any] | None:
    """The keep rule's scores for the histogram: counts binned by PostgreSQL over a range that holds them, the
    signal's name and the cut."""
    cur = rnd.cfg.curation
    signal = signals.RANK_SIGNAL[cur.keep]
    if signal == "rubric":
        return None  # the rubric histogram is drawn already
    found = sql_range(rnd.candidates.all(), "keep_score")
    if found is None:
        return None
    lo, hi = found
    pad = (hi - lo) * 0.05 or 0.5
    lo, hi = round(lo - pad, 3), round(hi + pad, 3)
    return {
        "bins": sql_bins(rnd.candidates.all(), "keep_score", bins=KEEP_SCORE_BINS, lo=lo, hi=hi),
        "label": signals.LABELS[signal],
        "lo": lo,
        "hi": hi,
        "marker": cur.threshold,
    }


def keep_rule_text(curation: CurationConfig) -> str:
    """The keep rule in words, for the round's header."""
    rule = curation.keep
    signal = signals.RANK_SIGNAL[rule]
    parts = []
    if curation.top_k:
        parts.append(f"keep the top {curation.top_k} by {signal}")
    elif curation.threshold is not None:
        parts.append(f"keep {signal} ≥ {curation.threshold:g}")
    floor = curation.min_agreement
    if floor is None and rule == "agreement_rubric":
        floor = 0.0
    if floor is not None:
        parts.append(f"agreement ≥ {floor:g}")
    band = curation.ifd_band
    if band:
        lo = "" if band[0] is None else f"{band[0]:g} ≤ "
        hi = "" if band[1] is None else f" < {band[1]:g}"
        parts.append(f"{lo}IFD{hi}")
    return ", ".join(parts) or "keep every ungated pair"


def win_rate_trend() -> list[list[float]]:
    """(round number, win rate %) of the newest evaluated rounds (at most TREND_ROUNDS), for the trend chart; only
    the two numbers are read from each round's metrics."""
    rows = (
        Round.objects.filter(metrics__evaluation__n__gt=0)
        .order_by("-number")
        .values_list("number", "metrics__evaluation__win_rate_ties_half")[:TREND_ROUNDS]
    )
    return [[number, round(100 * rate, 1)] for number, rate in reversed(rows) if rate is not None]


def rounds() -> QuerySet[Round]:
    """Every round, newest first (the rounds list pages it)."""
    return Round.objects.select_related("corpus", "base_model", "forward_model").order_by("-number")


def model_registry() -> QuerySet[ModelVersion]:
    """Every model, newest first (the registry pages it; `model_rows` prepares a page for the template)."""
    return ModelVersion.objects.select_related("parent", "round").order_by("-created_at", "-id")


def model_rows(models: Iterable[ModelVersion]) -> list[ModelVersion]:
    """Models with their loss values and held-out comparison at hand for the registry's table."""
    models = list(models)
    for m in models:
        # Held-out NLL against the model it replaces: forward models in their evaluation, backward ones apart.
        m.heldout = ((m.metrics.get("evaluation") or {}).get("heldout") or {}).get("forward") or m.metrics.get(
            "heldout"
        )
    return models


def round_candidate_counts(rnd: Round) -> dict[str, int]:
    return dict(rnd.candidates.values_list("status").annotate(n=Count("id")).order_by())


def corpora() -> QuerySet[Corpus]:
    """Every corpus with its segment count, by name (the corpus list pages it)."""
    return Corpus.objects.annotate(n_segments=Count("segments")).order_by("name", "id")


def launchable_corpora() -> QuerySet[Corpus]:
    """Corpora a round can sample from: those with segments (a legacy empty corpus is left out)."""
    return Corpus.objects.filter(Exists(Segment.objects.filter(corpus=OuterRef("pk"))))


def corpus_imports(*, limit: int = 10) -> list[Job]:
    """Uploads still importing, and those refused in the last day, for the corpus list (their corpus appears only
    once the import succeeds)."""
    recent_failure = Q(status=Job.Status.FAILED, created_at__gte=timezone.now() - timedelta(days=1))
    pending = Q(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    return list(Job.objects.filter(pending | recent_failure, stage="ingest").order_by("-id")[:limit])


def curation_quality(rnd: Round) -> dict[str, Any]:
    """The model's keep decision and score against the human decisions on the same pairs, and each curation
    signal's AUC for telling accepted (and edited) pairs from rejected ones."""
    rows = list(
        rnd.candidates.filter(status__in=Candidate.REVIEWED, kept_by_curation__isnull=False, score__isnull=False)
        .values_list("score", "kept_by_curation", "status", "signals", "keep_score")
        .order_by("pk")
    )
    accepted = [r[2] != Candidate.Status.REJECTED for r in rows]
    keep_scores = [r[4] if r[4] is not None else r[0] for r in rows]
    agreement = evaluation.curation_agreement(keep_scores, [r[1] for r in rows], accepted)
    # Pairs curated before the likelihood signals existed still have their rubric score in `score`.
    rows_signals = [{"rubric": r[0], **(r[3] or {})} for r in rows]
    return {**agreement, "signal_auc": signals.signal_aucs(rows_signals, accepted)}
