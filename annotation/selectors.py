"""Reads for annotation pages."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import Aggregate, Avg, Count, F, FloatField, Func, Q, QuerySet, Sum

from annotation.agreement import interpret_kappa, pairwise_agreement, round_agreement
from annotation.models import AuditEvent, Candidate, Review, SeedExample
from generation.models import Round


def seed_examples(
    *,
    source: str | None = None,
    query: str | None = None,
    tag: str | None = None,
    round_number: int | None = None,
    author: str | None = None,
    active: bool = True,
) -> QuerySet[SeedExample]:
    """The seed set, filtered; `query` is PostgreSQL full-text search (web-search syntax: words, "phrases",
    -exclusions), ranked. When no word matches, a substring match is used instead (markup, code, parts of words)."""
    qs = SeedExample.objects.filter(is_active=active).select_related("created_by", "candidate__round")
    if source:
        qs = qs.filter(source=source)
    if tag:
        qs = qs.filter(tags__contains=[tag])
    if round_number:
        qs = qs.filter(candidate__round__number=round_number)
    if author:
        qs = qs.filter(created_by__username=author)
    if not query:
        return qs.order_by("-created_at", "-id")
    words = SearchQuery(query, search_type="websearch", config="english")
    ranked = qs.filter(search=words)  # the stored, GIN-indexed `search` column
    if ranked.exists():
        return ranked.annotate(rank=SearchRank(F("search"), words)).order_by("-rank", "-id")
    return qs.filter(Q(instruction__icontains=query) | Q(response__icontains=query)).order_by("-created_at", "-id")


def seed_history(example: SeedExample) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(object_type="annotation.seedexample", object_id=str(example.pk))
        .select_related("user")
        .order_by("-created_at", "-id")
    )


def seed_facets() -> dict[str, list]:
    """Values for the seed list's filters."""
    tags = SeedExample.objects.filter(is_active=True).annotate(tag=Func(F("tags"), function="unnest"))
    return {
        "tags": sorted(set(tags.values_list("tag", flat=True).distinct()[:200])),
        "authors": list(
            get_user_model()
            .objects.filter(pk__in=SeedExample.objects.values("created_by"))
            .order_by("username")
            .values_list("username", flat=True)
        ),
        "rounds": sorted(
            set(SeedExample.objects.exclude(candidate=None).values_list("candidate__round__number", flat=True))
        ),
    }


def rounds_in_review(limit: int = 100) -> list[Any]:
    """Rounds in review (the newest `limit`; a handful at a time in practice), with how much is left."""

    return list(
        Round.objects.filter(state=Round.State.REVIEW)
        .annotate(
            waiting=Count("candidates", filter=Q(candidates__in_queue=True)),
            reviewed=Count("candidates", filter=Q(candidates__status__in=Candidate.REVIEWED)),
        )
        .select_related("corpus")
        .order_by("-number")[:limit]
    )


def audit_events() -> QuerySet[AuditEvent]:
    return AuditEvent.objects.select_related("user").order_by("-created_at", "-id")


def _decisions_by_item(round_id: int | None = None) -> dict[int, dict[str, str]]:
    """{candidate id: {annotator: accept|reject}} over decisions still standing (edits count as accept)."""
    reviews = Review.objects.filter(action__in=["accept", "edit", "reject"], undone_by__isnull=True)
    if round_id is not None:
        reviews = reviews.filter(candidate__round_id=round_id)
    out: dict[int, dict[str, str]] = {}
    for cid, name, action in reviews.values_list("candidate_id", "reviewer__username", "action").order_by("id"):
        out.setdefault(cid, {})[name] = "reject" if action == "reject" else "accept"
    return out


def disagreements(limit: int = 100) -> list[dict[str, Any]]:
    """Pairs whose annotators disagreed and that no curator has settled yet."""
    by_item = _decisions_by_item()
    ids = round_agreement(by_item)["disagreements"]
    settled = set(
        AuditEvent.objects.filter(action="candidate.adjudicate", object_id__in=[str(i) for i in ids]).values_list(
            "object_id", flat=True
        )
    )
    open_ids = [i for i in ids if str(i) not in settled][:limit]
    # Only rounds still in review: a closed round's pairs have fed the seed already.
    candidates = Candidate.objects.filter(pk__in=open_ids, round__state="review").select_related("segment", "round")
    return [{"candidate": c, "votes": sorted(by_item[c.pk].items())} for c in candidates]


def is_open_disagreement(candidate: Candidate) -> bool:
    """True when annotators disagree on this pair (overlap), its round is still in review and no curator has
    settled it yet: the only pairs a curator may adjudicate."""
    if candidate.round.state != Round.State.REVIEW:
        return False
    labels = {
        "reject" if action == "reject" else "accept"
        for action in Review.objects.filter(
            candidate=candidate, action__in=["accept", "edit", "reject"], undone_by__isnull=True
        ).values_list("action", flat=True)
    }
    settled = AuditEvent.objects.filter(action="candidate.adjudicate", object_id=str(candidate.pk)).exists()
    return len(labels) > 1 and not settled


REASONS = 20  # the dashboard's most frequent reject reasons


def review_summary(rnd: Round) -> dict[str, Any]:
    """What a curator wants to see about a round's human review, as numbers and chart data (the round page's
    dashboard adds the model's side: generation.views.round_dashboard)."""
    counts = dict(rnd.candidates.values_list("status").annotate(n=Count("id")).order_by())
    accepted = counts.get("accepted", 0) + counts.get("edited", 0)
    decided = accepted + counts.get("rejected", 0)
    reviews = Review.objects.filter(
        candidate__round=rnd, action__in=["accept", "edit", "reject"], undone_by__isnull=True
    )
    annotators = list(
        reviews.values("reviewer", "reviewer__username")
        .annotate(
            decisions=Count("id"),
            accepts=Count("id", filter=Q(action__in=["accept", "edit"])),
            edits=Count("id", filter=Q(action="edit")),
            seconds=Sum("seconds_spent"),
            mean_seconds=Avg("seconds_spent"),
        )
        .order_by("-decisions")
    )
    for a in annotators:
        a["per_hour"] = round(3600 * a["decisions"] / a["seconds"], 1) if a["seconds"] else None
    agreement = round_agreement(_decisions_by_item(rnd.pk))
    reasons = list(
        reviews.filter(action="reject").values("reason").annotate(n=Count("id")).order_by("-n", "reason")[:REASONS]
    )
    return {
        "counts": counts,
        "status_parts": [[k, v] for k, v in sorted(counts.items())],
        "acceptance_rate": accepted / decided if decided else None,
        "decided": decided,
        "annotators": annotators,
        "agreement": agreement,
        "kappa_label": interpret_kappa(agreement["fleiss_kappa"]),
        "reasons": reasons,
    }


# --- one annotator's own page ------------------------------------------------------------------------------

DECISIONS = ("accept", "edit", "reject")
STANDING = Q(action__in=DECISIONS, undone_by__isnull=True)  # a decision not taken back


class Percentile(Aggregate):
    """PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY x)`: the f-quantile, interpolated between the two
    nearest values (numpy's default), computed where the rows are."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"a percentile is a fraction in [0, 1], got {fraction}")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def _times(filter: Q | None = None) -> dict[str, Any]:
    """Seconds per decided item (Review.seconds_spent: from when the pair was handed out to the decision)."""
    timed = STANDING & Q(seconds_spent__isnull=False) & (filter or Q())
    return {
        "timed": Count("id", filter=timed),
        "median_s": Percentile("seconds_spent", 0.5, filter=timed),
        "p90_s": Percentile("seconds_spent", 0.9, filter=timed),
    }


def annotator_stats(user: Any) -> dict[str, Any]:
    """What `user` did as an annotator: decisions still standing by action, skips and undos, seconds per item
    (median and 90th percentile) overall and per round, newest round first. Two queries."""
    counts = {
        "accept": Count("id", filter=STANDING & Q(action="accept")),
        "edit": Count("id", filter=STANDING & Q(action="edit")),
        "reject": Count("id", filter=STANDING & Q(action="reject")),
        "skip": Count("id", filter=Q(action="skip")),
        "undo": Count("id", filter=Q(action="undo")),
    }
    mine = Review.objects.filter(reviewer=user)
    rounds = list(
        mine.values(number=F("candidate__round__number"))
        .annotate(**counts, **_times())
        .order_by("-candidate__round__number")
    )
    totals = mine.aggregate(**counts, **_times())
    for row in (*rounds, totals):
        row["decisions"] = row["accept"] + row["edit"] + row["reject"]
    return {"totals": totals, "rounds": rounds}


def annotator_agreement(user: Any, *, reveal_names: bool) -> dict[str, Any]:
    """How often `user` decided like the others on the pairs more than one person decided (edits count as accept),
    with each colleague: shared pairs, share agreed, Cohen's kappa (annotation/agreement.py). Colleagues are named
    only when `reveal_names` (an admin looking); otherwise they are "colleague 1", "colleague 2" … in order."""
    my_items = Review.objects.filter(STANDING, reviewer=user).values("candidate_id")
    rows = (
        Review.objects.filter(STANDING, candidate_id__in=my_items)
        .values_list("candidate_id", "reviewer_id", "action")
        .order_by("id")
    )
    by_item: dict[int, dict[str, str]] = {}
    for cid, reviewer_id, action in rows:
        by_item.setdefault(cid, {})[str(reviewer_id)] = "reject" if action == "reject" else "accept"
    shared = {cid: labels for cid, labels in by_item.items() if len(labels) > 1}
    me = str(user.pk)
    pairs = [p for p in pairwise_agreement(shared) if me in (p["a"], p["b"])]
    pairs.sort(key=lambda p: (-p["items"], int(p["b"] if p["a"] == me else p["a"])))
    names = (
        dict(
            get_user_model()
            .objects.filter(pk__in=[int(p["b"] if p["a"] == me else p["a"]) for p in pairs])
            .values_list("pk", "username")
        )
        if reveal_names
        else {}
    )
    colleagues = []
    for position, p in enumerate(pairs, start=1):
        other = int(p["b"] if p["a"] == me else p["a"])
        colleagues.append(
            {
                "name": names.get(other, f"colleague {position}"),
                "pk": other if reveal_names else None,
                "items": p["items"],
                "agreement": p["agreement"],
                "kappa": p["kappa"],
                "kappa_label": interpret_kappa(p["kappa"]),
            }
        )
    comparisons = sum(len(labels) - 1 for labels in shared.values())
    agreeing = sum(
        1 for labels in shared.values() for who, label in labels.items() if who != me and label == labels[me]
    )
    return {
        "items_with_overlap": len(shared),
        "comparisons": comparisons,
        "agreement": agreeing / comparisons if comparisons else None,
        "colleagues": colleagues,
    }


def annotator_history(user: Any) -> QuerySet[Review]:
    """Every review action of `user`, newest first, with its pair and round (for a paginated list)."""
    return (
        Review.objects.filter(reviewer=user)
        .select_related("candidate__round", "undone_by")
        .defer("candidate__rewritten_response", "candidate__rationale", "candidate__final_response")
        .order_by("-created_at", "-id")
    )


def may_see_item(user: Any, candidate: Candidate, *, curator: bool) -> bool:
    """A pair read-only: curators and admins see any; an annotator only one they reviewed (skips included)."""
    return curator or Review.objects.filter(candidate=candidate, reviewer=user).exists()
