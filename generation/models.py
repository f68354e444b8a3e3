"""Corpus, rounds, jobs and model versions: the machine side of Backforth.

The database is the source of truth for all work; Redis/RQ only carries job ids (see generation/services/jobs.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from generation.pipeline.config import RoundConfig


class Corpus(models.Model):
    """A named collection of cleaned web-text segments (the unlabelled y's of the papers)."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # Where the text came from (files, sizes) and what cleaning did to it (per-filter drop counts).
    sources = models.JSONField(default=list, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "corpora"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Segment(models.Model):
    """One self-contained passage of a corpus. Immutable once written: candidates point at it."""

    corpus = models.ForeignKey(Corpus, on_delete=models.CASCADE, related_name="segments")
    text = models.TextField()
    # sha256 of the normalised text: exact duplicates inside one corpus are refused by the database.
    content_hash = models.CharField(max_length=64)
    source_id = models.CharField(max_length=500, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    char_count = models.PositiveIntegerField(default=0)
    # MinHash signature (128 little-endian uint32, generation.corpus.dedup.signature) of segments that
    # ingestion indexed for near-duplicate search; null for segments added otherwise.
    minhash = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["corpus", "content_hash"], name="segment_unique_hash_per_corpus"),
            models.CheckConstraint(condition=~Q(text=""), name="segment_text_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.corpus_id}:{self.source_id or self.pk}"


class SegmentBand(models.Model):
    """One MinHash LSH band key of a segment. Ingestion looks a batch's band keys up here instead of holding
    an LSH index in memory, so its memory does not grow with the corpus, and a later import into the same
    corpus is deduplicated against the earlier ones."""

    corpus = models.ForeignKey(Corpus, on_delete=models.CASCADE, related_name="+", db_index=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="bands")
    key = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["corpus", "key"], name="segmentband_corpus_key")]


class ModelVersion(models.Model):
    """A model on disk that Backforth can load: the base, and every backward/forward model it trains."""

    class Role(models.TextChoices):
        BASE = "base", "base"
        BACKWARD = "backward", "backward (response → instruction)"
        FORWARD = "forward", "forward (instruction → response)"
        JUDGE = "judge", "judge"

    name = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=Role.choices)
    path = models.CharField(max_length=1000, help_text="Local Hugging Face model directory")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    round = models.ForeignKey(
        "generation.Round", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    # Training data snapshot hash, hyperparameters, loss curve, evaluation results.
    metrics = models.JSONField(default=dict, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    data_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["role", "path"], name="modelversion_unique_role_path")]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"


class Round(models.Model):
    """One iteration of the loop (DESIGN.md "The round"), a state machine persisted here."""

    GUIDELINES_MAX_CHARS = 50_000

    class State(models.TextChoices):
        DRAFT = "draft", "draft"
        TRAIN_BACKWARD = "train_backward", "train backward model"
        AUGMENT = "augment", "augment"
        CURATE = "curate", "curate"
        REWRITE = "rewrite", "rewrite"
        REVIEW = "review", "review"
        TRAIN_FORWARD = "train_forward", "train forward model"
        EVALUATE = "evaluate", "evaluate"
        CLOSED = "closed", "closed"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    number = models.PositiveIntegerField(unique=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    corpus = models.ForeignKey(Corpus, on_delete=models.PROTECT, related_name="rounds")
    # Frozen at launch: models, prompts (with versions), thresholds, sample size, stage order, backend.
    config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64, blank=True)
    # The seed set S_r this round starts from: ids and versions of the SeedExamples, and their hash.
    seed_snapshot = models.JSONField(default=dict, blank=True)
    base_model = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    backward_model = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    curation_model = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    forward_model = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # What annotators should do (markdown, shown sanitised on the review screen). Set at launch and editable while
    # the round runs (edits are in the audit log), so it is not part of the frozen config or its hash.
    guidelines = models.TextField(blank=True, default="", db_default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"Round {self.number}"

    @property
    def is_active(self) -> bool:
        return self.state not in {self.State.DRAFT, self.State.CLOSED, self.State.FAILED, self.State.CANCELLED}

    @property
    def cfg(self) -> RoundConfig:
        """The frozen config, typed (pipeline/config.py); keys a round predates read as what applied then. Read
        from `config` at each access (under 0.1 ms), so it can never be stale."""
        return RoundConfig.from_dict(self.config)


#: The RQ queues: `gpu` for model work (one worker per accelerator), `default` for imports and health checks.
QUEUES = ("gpu", "default")


class Job(models.Model):
    """One unit of queued work (a chunk of a stage, an import, a health check).

    A worker claims the row with a conditional UPDATE before doing anything, so a job delivered twice
    (retry, re-enqueue after a Redis flush) runs once.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    stage = models.CharField(max_length=32)
    chunk = models.PositiveIntegerField(default=0)
    queue = models.CharField(max_length=32, default="default")
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    rq_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    permanent = models.BooleanField(default=False, help_text="The error will not go away by retrying")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One row per chunk of a round's stage (jobs outside rounds have round NULL: not constrained).
            models.UniqueConstraint(fields=["round", "stage", "chunk"], name="job_unique_round_stage_chunk"),
            models.CheckConstraint(
                condition=Q(progress_done__lte=models.F("progress_total")) | Q(progress_total=0),
                name="job_progress_within_total",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat")]

    def __str__(self) -> str:
        where = f"round {self.round.number} " if self.round is not None else ""
        return f"{where}{self.stage}#{self.chunk} ({self.status})"

    @property
    def progress_fraction(self) -> float:
        return self.progress_done / self.progress_total if self.progress_total else 0.0

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED}
