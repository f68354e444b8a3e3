"""Seed set, candidates and reviews: the human side of Backforth."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from generation.pipeline import gates


class Source(models.TextChoices):
    """Where a training pair came from; used as the system-prompt tag when fine-tuning (Humpback)."""

    SEED = "seed", "seed (human-written)"
    WEB = "web", "web (backtranslated, reviewed)"
    SAFETY = "safety", "safety"


class SeedExampleManager(models.Manager["SeedExample"]):
    def get_queryset(self) -> models.QuerySet[SeedExample]:
        # `search` (a tsvector about as large as the text) is for WHERE and ORDER BY, never needed on an instance.
        return super().get_queryset().defer("search")


class SeedExample(models.Model):
    """A human-written or human-approved (instruction, response) pair of the seed set S_r."""

    instruction = models.TextField()
    response = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SEED)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    # How it got here: {"kind": "import", "file": …, "line": …} | {"kind": "candidate", …} | {"kind": "demo"}
    provenance = models.JSONField(default=dict, blank=True)
    candidate = models.ForeignKey(
        "annotation.Candidate", null=True, blank=True, on_delete=models.SET_NULL, related_name="seed_examples"
    )
    version = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Full-text document, computed and stored by PostgreSQL (instruction weighted above response): search and
    # ranking read it instead of running to_tsvector on every matching row.
    search = models.GeneratedField(
        expression=SearchVector("instruction", weight="A", config="english")
        + SearchVector("response", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = SeedExampleManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(instruction="") & ~Q(response=""), name="seedexample_not_empty"),
        ]
        indexes = [
            models.Index(fields=["source", "is_active"], name="seed_source_active"),
            GinIndex(fields=["search"], name="seed_search"),
        ]

    def __str__(self) -> str:
        return self.instruction[:80]

    @property
    def is_safety(self) -> bool:
        return self.source == Source.SAFETY


class Candidate(models.Model):
    """A generated pair (x̂, y → ŷ) for one segment in one round, and what humans decided about it."""

    class Status(models.TextChoices):
        AUGMENTED = "augmented", "augmented (instruction written)"
        KEPT = "kept", "kept by curation"
        DROPPED = "dropped", "dropped by curation"
        ACCEPTED = "accepted", "accepted"
        EDITED = "edited", "edited"
        REJECTED = "rejected", "rejected"
        ERROR = "error", "error"

    REVIEWED = (Status.ACCEPTED, Status.EDITED, Status.REJECTED)

    round = models.ForeignKey("generation.Round", on_delete=models.CASCADE, related_name="candidates")
    segment = models.ForeignKey("generation.Segment", on_delete=models.PROTECT, related_name="candidates")
    # x̂ from the backward model. The original text y is segment.text (immutable, so not copied here).
    instruction = models.TextField(blank=True)
    # ŷ from the rewrite model (back-and-forth); empty until the rewrite stage ran.
    rewritten_response = models.TextField(blank=True)
    # Curation: expected value over P("1"…"5"), the distribution itself, optional rationale + parsed score.
    score = models.FloatField(null=True, blank=True)
    score_distribution = ArrayField(models.FloatField(), size=5, null=True, blank=True)
    rationale = models.TextField(blank=True)
    parsed_score = models.PositiveSmallIntegerField(null=True, blank=True)
    # Every curation signal by name (pipeline/signals.py: rubric, agreement, ifd, and the two losses), from the
    # curation model recorded in lineage; keep_score is the one the round's keep rule ranks by.
    signals = models.JSONField(default=dict, blank=True, db_default={})
    keep_score = models.FloatField(null=True, blank=True)
    # Why an output gate dropped this pair before review (pipeline/gates.py REASONS), empty when none did.
    gate = models.CharField(max_length=32, blank=True, default="", db_default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AUGMENTED)
    # The model's keep decision, kept after review changes the status: curation precision/recall are
    # measured against the human decisions.
    kept_by_curation = models.BooleanField(null=True, blank=True)
    # After review: what goes into the seed set (may differ from the model's output when edited).
    final_instruction = models.TextField(blank=True)
    final_response = models.TextField(blank=True)
    # Which models, prompt versions and config hash produced each field.
    lineage = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Optimistic concurrency for edits: every write bumps it; a write on a stale version is refused.
    version = models.PositiveIntegerField(default=1)
    # The review queue (annotation/queue.py): which pairs wait for people, in which order, and how many
    # distinct annotators each needs (overlap > 1 measures agreement).
    in_queue = models.BooleanField(default=False, db_default=False)
    queue_priority = models.FloatField(default=0.0, db_default=0.0)
    is_audit = models.BooleanField(default=False, db_default=False, help_text="Drawn at random for the audit sample")
    reviews_needed = models.PositiveSmallIntegerField(default=1, db_default=1)
    reviews_done = models.PositiveSmallIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["round", "segment"], name="candidate_unique_round_segment"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=1.0, score__lte=5.0), name="candidate_score_range"
            ),
            models.CheckConstraint(
                condition=Q(parsed_score__isnull=True) | Q(parsed_score__gte=1, parsed_score__lte=5),
                name="candidate_parsed_score_range",
            ),
        ]
        indexes = [
            models.Index(fields=["round", "status"], name="candidate_round_status"),
            # The queue's "next item" scan: only rows still waiting, in priority order.
            models.Index(fields=["round", "queue_priority", "id"], name="candidate_queue", condition=Q(in_queue=True)),
        ]

    def __str__(self) -> str:
        return f"Candidate {self.pk} (round {self.round_id}, {self.status})"

    @property
    def is_reviewable(self) -> bool:
        # Dropped pairs are reviewable too: the audit sample measures curation precision on both sides.
        return self.status in (self.Status.KEPT, self.Status.DROPPED)

    @property
    def gate_label(self) -> str:
        return gates.REASONS.get(self.gate, self.gate)

    @property
    def response(self) -> str:
        """The response a reviewer judges: the rewrite when there is one, else the original text."""
        return self.rewritten_response or self.segment.text


class Review(models.Model):
    """One human decision on a candidate, with the before → after of what changed. Append-only."""

    class Action(models.TextChoices):
        ACCEPT = "accept", "accept"
        EDIT = "edit", "edit"
        REJECT = "reject", "reject"
        SKIP = "skip", "skip"
        UNDO = "undo", "undo"

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    action = models.CharField(max_length=16, choices=Action.choices)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=64, blank=True)
    reason_text = models.TextField(blank=True)
    seconds_spent = models.FloatField(null=True, blank=True)
    # An undo points at the decision it took back.
    undoes = models.OneToOneField("self", null=True, blank=True, on_delete=models.CASCADE, related_name="undone_by")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(seconds_spent__isnull=True) | Q(seconds_spent__gte=0), name="review_seconds_nonneg"
            ),
        ]
        indexes = [models.Index(fields=["reviewer", "created_at"], name="review_reviewer_at")]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.action} candidate {self.candidate_id}"


class Lease(models.Model):
    """An item of the review queue held by one annotator until it expires (or they decide)."""

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="leases")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leases")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["candidate", "user"], name="lease_unique_candidate_user")]
        indexes = [models.Index(fields=["user", "expires_at"], name="lease_user_expires")]

    def __str__(self) -> str:
        return f"{self.user} holds candidate {self.candidate_id} until {self.expires_at:%H:%M:%S}"


class AuditEvent(models.Model):
    """Every change a person makes outside the review decisions (which are Reviews): who, when, before → after."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.user} {self.action} {self.object_type} {self.object_id}"
