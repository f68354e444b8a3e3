"""The model stages of a round (DESIGN.md steps 2–4): augment, curate, rewrite, one chunk per job.

A chunk runs on a backend loaded once per worker process: its rows are read in one query, ALL its requests go to the
backend in one call per pass (vLLM schedules them at once; transformers sorts them by length into batches of
`batch_size`), progress comes from the backend as requests finish, then all its results are written and its job
marked done in ONE transaction, keyed by (round, segment): a retried or re-delivered chunk never duplicates. A cancel
is seen at the next progress write and acted on once the engine call returns. Each chunk's result carries the
seconds of its phases (load, engine, write), which the end-to-end benchmark adds up. Launching, advancing and
retrying stages is services/rounds.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.db import transaction

from annotation.models import Candidate
from generation.backends.base import Backend, BackendError, Generation, GenerationParams, Progress
from generation.backends.registry import get_backend
from generation.models import Job, Round, Segment
from generation.pipeline import gates, parsing, prompts, scoring, signals
from generation.pipeline.config import RoundConfig
from generation.services.jobs import (
    CallProgress,
    JobCancelled,
    StageError,
    check_not_cancelled,
    job_round,
    job_succeed,
)

T = TypeVar("T")


@dataclass
class ChunkStats:
    items: int = 0
    errors: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # in the engine
    # backend: getting the worker's model (seconds only when it loads); load: the rows and prompts; engine: the
    # backend calls; write: the results turned into rows and written (the job's own row is marked done after).
    phases: dict[str, float] = field(default_factory=lambda: {"backend": 0.0, "load": 0.0, "engine": 0.0, "write": 0.0})
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        tokens = self.prompt_tokens + self.completion_tokens
        return {
            "items": self.items,
            "errors": self.errors,
            "truncated": self.truncated,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "completion_tokens_per_s": round(self.completion_tokens / self.seconds, 2) if self.seconds else 0.0,
            "tokens_per_s": round(tokens / self.seconds, 2) if self.seconds else 0.0,
            "phase_seconds": {k: round(v, 3) for k, v in self.phases.items()},
            **self.extra,
        }


def model_for(rnd: Round, stage: str, cfg: RoundConfig | None = None) -> str:
    """The model directory a stage of this round uses (DESIGN.md: augment with M_yx(r), curate with M_r)."""
    configured = (cfg or rnd.cfg).models.get(stage)
    if configured:
        return configured
    if stage == "augment" and rnd.backward_model is not None:
        return rnd.backward_model.path
    if stage == "curate" and rnd.curation_model is not None:
        return rnd.curation_model.path
    return rnd.base_model.path


def check_model_path(path: str, stage: str) -> None:
    if not Path(path, "config.json").is_file():
        raise StageError(f"model path {path} for stage {stage} does not exist or is not a Hugging Face model directory")


def backend_for_path(rnd: Round, stage: str, path: str, cfg: RoundConfig | None = None) -> Backend:
    """The worker's backend for `path` (loaded once, reused across chunks), as a StageError when it cannot load."""
    check_model_path(path, stage)
    try:
        cfg = cfg or rnd.cfg
        options: dict[str, Any] = {"batch_size": cfg.batch_size}
        if cfg.tensor_parallel_size != 1:  # only then: the key of the engine a worker keeps warm stays the same
            options["tensor_parallel_size"] = cfg.tensor_parallel_size
        return get_backend(cfg.backend, path, **options)
    except BackendError as exc:
        raise StageError(str(exc), permanent=exc.permanent) from exc


def _backend_for(rnd: Round, cfg: RoundConfig, stage: str) -> tuple[Backend, str]:
    path = model_for(rnd, stage, cfg)
    return backend_for_path(rnd, stage, path, cfg), path


class _Chunk:
    """One chunk's run: its phase clock and its progress (one item per `per_item` finished requests)."""

    def __init__(self, job: Job, stats: ChunkStats, *, per_item: int = 1) -> None:
        self.job, self.stats = job, stats
        self.progress = CallProgress(job, total=stats.items, per_item=per_item)
        self._mark = time.monotonic()

    def lap(self, phase: str) -> None:
        """The time since the last lap was spent in `phase`."""
        now = time.monotonic()
        self.stats.phases[phase] += now - self._mark
        self._mark = now

    def engine(self, call: Callable[[Progress], T]) -> T:
        """Backend calls over the whole chunk, timed as engine work (what came before them: loading). A cancel is
        checked before they start and, if one came in while they ran (seen by a progress write), acted on as soon
        as they return."""
        check_not_cancelled(self.job)
        self.lap("load")
        try:
            out = call(self.progress)
        finally:
            self.lap("engine")
            self.stats.seconds = self.stats.phases["engine"]
        if self.progress.cancelled:
            raise JobCancelled(f"job {self.job.pk} was cancelled")
        return out

    def commit(self, write: Callable[[], object]) -> dict[str, Any]:
        """Write the chunk's results and mark its job done in one transaction (unless it was cancelled)."""
        with transaction.atomic():
            check_not_cancelled(self.job)
            write()
            self.lap("write")
            job_succeed(job=self.job, result=self.stats.as_dict())
        return self.stats.as_dict()


def _lineage(cfg: RoundConfig, rnd: Round, stage: str, model_path: str, backend: Backend) -> dict[str, Any]:
    return {
        f"{stage}_model": model_path,
        f"{stage}_backend": backend.name,
        f"{stage}_prompt": cfg.prompts.get({"augment": "backward", "curate": "curate", "rewrite": "rewrite"}[stage]),
        "config_hash": rnd.config_hash,
    }


def _chunk_candidates(job: Job) -> tuple[dict[int, Candidate], list[int]]:
    """The chunk's candidates by id, and the ids still present, in payload order."""
    candidates = {c.id: c for c in Candidate.objects.filter(id__in=job.payload["ids"]).select_related("segment")}
    return candidates, [i for i in job.payload["ids"] if i in candidates]


def run_augment(job: Job) -> dict[str, Any]:
    stats = ChunkStats()
    chunk = _Chunk(job, stats)
    rnd = job_round(job)
    cfg = rnd.cfg
    chunk.lap("load")
    backend, model_path = _backend_for(rnd, cfg, "augment")
    chunk.lap("backend")
    segments = {s.id: s for s in Segment.objects.filter(id__in=job.payload["ids"]).only("id", "text")}
    ids = [i for i in job.payload["ids"] if i in segments]
    stats.items = chunk.progress.total = len(ids)
    params = GenerationParams(
        max_new_tokens=cfg.generation.augment_max_new_tokens,
        temperature=cfg.generation.temperature,
        seed=cfg.seed,
        repetition_penalty=cfg.generation.repetition_penalty,
    )
    texts = [prompts.truncate(parsing.clean_text(segments[sid].text), cfg.max_segment_chars) for sid in ids]
    convs = [prompts.backward_messages(t) for t, _ in texts]
    outputs = chunk.engine(
        lambda progress: backend.generate(convs, params, assistant_prefix=prompts.BACKWARD_PREFIX, progress=progress)
    )
    base_lineage = _lineage(cfg, rnd, "augment", model_path, backend)
    rows: list[Candidate] = []
    for sid, (text, cut), out in zip(ids, texts, outputs, strict=True):
        stats.prompt_tokens += out.prompt_tokens
        stats.completion_tokens += out.completion_tokens
        stats.truncated += cut
        instruction = parsing.parse_instruction(out.text)
        lineage = {**base_lineage, "segment_chars": len(segments[sid].text)}
        if cut:
            lineage["truncated_to"] = len(text)
        if parsing.instruction_was_cut(out.text, out.finished):
            lineage["augment_cut"] = True
        if instruction is None:
            stats.errors += 1
        rows.append(
            Candidate(
                round=rnd,
                segment_id=sid,
                instruction=instruction or "",
                status=Candidate.Status.AUGMENTED if instruction else Candidate.Status.ERROR,
                error="" if instruction else f"unparseable instruction from the model: {out.text[:300]!r}",
                lineage=lineage,
            )
        )
    return chunk.commit(
        lambda: Candidate.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["round", "segment"],
            update_fields=["instruction", "status", "error", "lineage", "updated_at"],
        )
    )


def run_curate(job: Job) -> dict[str, Any]:
    """Every pair gets the rubric score, the likelihood signals and its gate verdict; the keep rule is applied
    once the whole stage is scored (stage_advance)."""
    stats = ChunkStats(extra={"parsed_scores": 0, "unparseable_scores": 0, "gated": 0})
    rnd = job_round(job)
    cfg = rnd.cfg
    rationale = cfg.curation.rationale
    # Requests per pair: the rubric score, two likelihoods, and the rationale when asked for.
    chunk = _Chunk(job, stats, per_item=SIGNAL_REQUESTS + rationale)
    chunk.lap("load")
    backend, model_path = _backend_for(rnd, cfg, "curate")
    chunk.lap("backend")
    candidates, ids = _chunk_candidates(job)
    stats.items = chunk.progress.total = len(ids)
    pairs = []
    for cid in ids:
        c = candidates[cid]
        response = c.rewritten_response or c.segment.text
        text, cut = prompts.truncate(parsing.clean_text(response), cfg.max_segment_chars)
        stats.truncated += cut
        pairs.append((c.instruction, text))
    params = GenerationParams(max_new_tokens=cfg.generation.rationale_max_new_tokens)

    def score(progress: Progress) -> tuple[list[tuple[list[float], dict[str, Any]]], list[Generation] | None]:
        scored = pair_signals(backend, pairs, progress=progress)
        if not rationale:
            return scored, None
        convs = [prompts.curate_messages(x, y, rationale=True) for x, y in pairs]
        return scored, backend.generate(convs, params, progress=progress)

    scored, outputs = chunk.engine(score)
    base_lineage = {
        **_lineage(cfg, rnd, "curate", model_path, backend),
        "signals_prompt": prompts.LIKELIHOOD_VERSION,
    }
    for n, cid in enumerate(ids):
        c = candidates[cid]
        dist, c.signals = scored[n]
        c.score_distribution = dist
        c.score = scoring.expected_score(dist)
        c.keep_score = signals.keep_score(c.signals, cfg.curation)
        c.gate = c.gate or candidate_gate(c) or ""
        stats.extra["gated"] += bool(c.gate)
        c.lineage = {**c.lineage, **base_lineage, "curate_option_mass": c.signals.pop("option_mass")}
        if outputs is not None:
            out = outputs[n]
            stats.completion_tokens += out.completion_tokens
            c.parsed_score = parsing.parse_score(out.text)
            c.rationale = parsing.parse_rationale(out.text)
            stats.extra["parsed_scores" if c.parsed_score else "unparseable_scores"] += 1

    fields = ["score", "score_distribution", "parsed_score", "rationale", "signals", "keep_score", "gate", "lineage"]
    return chunk.commit(lambda: Candidate.objects.bulk_update([candidates[i] for i in ids], fields))


LIKELIHOOD_MAX_TOKENS = 512
# The requests `pair_signals` sends per pair: one rubric score, two likelihoods.
SIGNAL_REQUESTS = 3


def pair_signals(
    backend: Backend, pairs: list[tuple[str, str]], *, progress: Progress | None = None
) -> list[tuple[list[float], dict[str, Any]]]:
    """Every curation signal of each (instruction, response) on the curation model: the rubric's option
    distribution, and {"rubric", "agreement", "ifd", the two losses, "option_mass"}. Two backend calls for all the
    pairs (the rubric prompts share their 189-token head, which vLLM's prefix cache computes once). The curate stage
    and `manage.py score_pairs` both score through here."""
    probs = backend.score(
        [prompts.curate_messages(x, y) for x, y in pairs],
        prompts.SCORE_OPTIONS,
        assistant_prefix=prompts.SCORE_PREFIX,
        progress=progress,
    )
    likelihoods = pair_likelihoods(backend, pairs, progress=progress)
    out = []
    for p, lk in zip(probs, likelihoods, strict=True):
        dist = scoring.normalize(p)
        rubric = round(scoring.expected_score(dist), 6)
        out.append((dist, {"rubric": rubric, **lk, "option_mass": round(sum(p), 4)}))
    return out


def pair_likelihoods(
    backend: Backend, pairs: list[tuple[str, str]], *, progress: Progress | None = None
) -> list[dict[str, float | None]]:
    """agreement, IFD and both losses for each (instruction, response): log p(y | x̂) and log p(y) in one
    batched call of 2·n sequences on the curation model."""
    n = len(pairs)
    contexts = [prompts.likelihood_messages(x) for x, _ in pairs] + [prompts.likelihood_messages("")] * n
    responses = [y for _, y in pairs] * 2
    ll = backend.loglik(contexts, responses, max_completion_tokens=LIKELIHOOD_MAX_TOKENS, progress=progress)
    return [signals.likelihood_signals(ll[i], ll[n + i]) for i in range(n)]


def candidate_gate(c: Candidate) -> str | None:
    """The gate verdict on what models wrote for this pair: the instruction, and the rewrite if there is one
    (the web text itself was cleaned at ingestion and is not model output)."""
    rewritten = bool(c.rewritten_response)
    return gates.gate_reason(
        gates.GateInput(
            instruction=c.instruction,
            response=c.rewritten_response if rewritten else c.segment.text,
            instruction_cut=bool(c.lineage.get("augment_cut")),
            response_cut=bool(c.lineage.get("rewrite_cut")),
            check_response=rewritten,
            source=c.segment.text,
        )
    )


def run_rewrite(job: Job) -> dict[str, Any]:
    stats = ChunkStats(extra={"gated": 0})
    chunk = _Chunk(job, stats)
    rnd = job_round(job)
    cfg = rnd.cfg
    chunk.lap("load")
    backend, model_path = _backend_for(rnd, cfg, "rewrite")
    chunk.lap("backend")
    candidates, ids = _chunk_candidates(job)
    stats.items = chunk.progress.total = len(ids)
    params = GenerationParams(
        max_new_tokens=cfg.generation.rewrite_max_new_tokens,
        temperature=cfg.generation.temperature,
        seed=cfg.seed,
        stop=(prompts.REWRITE_CLOSE,),
        repetition_penalty=cfg.generation.repetition_penalty,
    )
    convs = []
    for cid in ids:
        c = candidates[cid]
        text, cut = prompts.truncate(parsing.clean_text(c.segment.text), cfg.max_segment_chars)
        stats.truncated += cut
        convs.append(prompts.rewrite_messages(c.instruction, text))
    outputs = chunk.engine(
        lambda progress: backend.generate(convs, params, assistant_prefix=prompts.REWRITE_PREFIX, progress=progress)
    )
    base_lineage = _lineage(cfg, rnd, "rewrite", model_path, backend)
    for cid, out in zip(ids, outputs, strict=True):
        c = candidates[cid]
        stats.prompt_tokens += out.prompt_tokens
        stats.completion_tokens += out.completion_tokens
        rewritten = parsing.parse_rewrite(out.text, prefix=prompts.REWRITE_PREFIX)
        c.rewritten_response = rewritten or ""
        c.lineage = {**c.lineage, **base_lineage}
        if not out.finished:
            c.lineage["rewrite_cut"] = True
        if rewritten is None:
            stats.errors += 1
            c.lineage["rewrite_error"] = f"unparseable rewrite: {out.text[:300]!r}"
        elif not c.gate and (reason := candidate_gate(c)):
            # A degenerate rewrite of a kept pair never reaches review as kept (filter→rewrite); in
            # rewrite→filter the curate stage finds the gate and keeps it out of the keep rule.
            c.gate = reason
            stats.extra["gated"] += 1
            if c.status == Candidate.Status.KEPT:  # kept_by_curation stays: the keep rule did keep it
                c.status = Candidate.Status.DROPPED

    fields = ["rewritten_response", "lineage", "gate", "status"]
    return chunk.commit(lambda: Candidate.objects.bulk_update([candidates[i] for i in ids], fields))
