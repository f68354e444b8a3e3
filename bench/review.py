"""Review benchmarks. Run with `.venv/bin/python -m bench.review` (about 8 minutes on 2 cores the first time at
full size, of which 2 minutes load the data; later runs reuse it and take about 6).

Everything runs on its own PostgreSQL database, `backforth_bench` (created if missing), never on `backforth`.

- review.decide_next_p95_ms  POST /review/<n>/decide/ (decide + load the next item, the htmx round trip) under 20
                             concurrent annotators on a 1M-candidate round: the queue's `FOR UPDATE SKIP LOCKED`
                             claim vs the same view with a blocking `FOR UPDATE` claim (no SKIP LOCKED). Lower is
                             better. Closed loop: each annotator posts again as soon as its answer arrives.
- review.decide_next_paced_p95_ms  the same with a 1-3 s reading pause after each item (people take 10-60 s).
- review.seed_search_p95_ms  first page (25 rows + the count) of the seed list search over 200k seed rows:
                             `annotation.selectors.seed_examples(query=…)` vs `icontains` on instruction/response.

Sizes: BENCH_REVIEW_CANDIDATES (1,000,000), BENCH_REVIEW_SEEDS (200,000), BENCH_REVIEW_ANNOTATORS (20),
BENCH_REVIEW_SECONDS (45 per phase), BENCH_REVIEW_DECISIONS (300 per annotator and phase).
`python -m bench.review queue` or `… search` runs one part.

The bench database and its data (COPY loaders, the queue, the bench users) are in review_data.py, the concurrent
annotators and what a phase measures in review_load.py; here, the measurements and their baselines.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from unittest import mock

from bench.common import record, setup_django
from bench.review_data import (
    bench_users,
    load_round,
    load_seeds,
    migrate,
    reset_queue,
    table,
    use_bench_database,
    vocabulary,
)
from bench.review_load import (
    MAX_DECISIONS,
    PHASE_SECONDS,
    Phase,
    check_reviews,
    count_queries,
    percentile,
    run_phase,
    view_annotator,
)

N_CANDIDATES = int(os.environ.get("BENCH_REVIEW_CANDIDATES", "1000000"))
N_SEEDS = int(os.environ.get("BENCH_REVIEW_SEEDS", "200000"))
N_ANNOTATORS = int(os.environ.get("BENCH_REVIEW_ANNOTATORS", "20"))
THINK_S = (float(os.environ.get("BENCH_REVIEW_THINK_MIN", "1")), float(os.environ.get("BENCH_REVIEW_THINK_MAX", "3")))
SEARCH_REPEATS = 5


# --- the queue under concurrent annotators ---------------------------------------------------------------------


def explain_next(rnd: Any, user: Any) -> list[str]:
    """EXPLAIN ANALYZE of the claim query queue_next runs (rolled back) and of queue_counts' waiting count."""
    from django.db import connection, transaction
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from annotation import queue
    from annotation.models import Candidate, Review

    skipped = Review.objects.filter(candidate=OuterRef("pk"), reviewer=user, action=Review.Action.SKIP)
    claim = (
        queue._claimable(rnd, user, timezone.now())
        .exclude(Exists(skipped))
        .order_by("queue_priority", "id")
        .select_for_update(skip_locked=True, of=("self",))[:1]
    )
    with transaction.atomic():
        plan = claim.explain(analyze=True, buffers=True)
        transaction.set_rollback(True)
    with connection.cursor() as cur:
        cur.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM {table(Candidate)} WHERE round_id = %s AND in_queue",
            [rnd.pk],
        )
        count_plan = "\n".join(r[0] for r in cur.fetchall())
    print("[bench] EXPLAIN ANALYZE next item:\n" + plan)
    print("[bench] EXPLAIN ANALYZE queue_counts waiting:\n" + count_plan)
    return [*_key_lines(plan), *_key_lines(count_plan)]


def _key_lines(plan: str) -> list[str]:
    lines = [line.strip() for line in plan.splitlines()]
    scans = [line.lstrip("-> ") for line in lines if "Scan" in line][:1]
    return [lines[0], *scans, *(line for line in lines if line.startswith("Execution Time"))]


def bench_queue(rnd: Any, users: list[Any]) -> None:
    """Ours (SKIP LOCKED) vs the blocking claim, through the views and through the functions."""
    from functools import partial

    from annotation import queue

    # The baseline: the same queue_next with a plain `FOR UPDATE` claim that waits for whoever locked the row
    # (same order, same checks, so it assigns correctly; only the claim differs). Bound before any patching.
    blocking_next = partial(queue.queue_next, skip_locked=False)

    def phase(name: str, worker: Callable[..., None], next_item: Callable[..., Any]) -> Phase:
        reset_queue(rnd)
        with mock.patch.object(queue, "queue_next", next_item):
            result = run_phase(name, rnd, users, worker)
            check_reviews(result)
            if worker is view_annotator:
                count_queries(result, rnd, users[0])
        print(f"[bench] {name}: {result.summary()}")
        return result

    explain_fresh = explain_next(rnd, users[0])
    ours = phase("views, SKIP LOCKED", view_annotator, queue.queue_next)
    explain_after = explain_next(rnd, users[0])  # the index front now holds the run's decided rows
    base = phase("views, blocking FOR UPDATE", view_annotator, blocking_next)
    paced = partial(view_annotator, think=THINK_S)
    p_ours = phase("views, SKIP LOCKED, paced", paced, queue.queue_next)
    p_base = phase("views, blocking FOR UPDATE, paced", paced, blocking_next)
    reset_queue(rnd)
    s, b = ours.summary(), base.summary()
    record(
        "review.decide_next_p95_ms",
        value=s["p95"],
        unit=f"ms (p95, decide + load next, {len(users)} concurrent annotators, {rnd.candidates.count():,} "
        "candidates; lower is better)",
        baseline=b["p95"],
        better="lower",
        path="views",
        p50=s["p50"],
        p99=s["p99"],
        decisions=s["decisions"],
        decisions_per_s=s["per_s"],
        duplicates=ours.duplicates,
        statuses=s["statuses"],
        queries_per_request=ours.queries_per_request,
        slowest_queries=ours.slowest_queries,
        baseline_summary=b,
        baseline_queries_per_request=base.queries_per_request,
        queue_items=rnd.metrics.get("queued"),
        queue_build=rnd.metrics.get("queue_build"),
        queue_build_s=rnd.metrics.get("queue_build_s"),
        load_s=rnd.metrics.get("load_s"),
        explain_next_fresh=explain_fresh,
        explain_next_after_run=explain_after,
        phase_seconds=PHASE_SECONDS,
        max_decisions_per_annotator=MAX_DECISIONS,
        note="closed loop: every annotator posts its next decision the moment the previous answer arrives, so 20 "
        "threads of one Python process share the GIL and 2 cores; review.decide_next_paced_p95_ms is the same "
        "with a reading pause",
    )
    ps, pb = p_ours.summary(), p_base.summary()
    record(
        "review.decide_next_paced_p95_ms",
        value=ps["p95"],
        unit=f"ms (p95, decide + load next, {len(users)} concurrent annotators pausing {THINK_S[0]:g}-{THINK_S[1]:g} s "
        f"per item, {rnd.candidates.count():,} candidates; lower is better)",
        baseline=pb["p95"],
        better="lower",
        path="views",
        p50=ps["p50"],
        p99=ps["p99"],
        decisions=ps["decisions"],
        decisions_per_s=ps["per_s"],
        duplicates=p_ours.duplicates,
        statuses=ps["statuses"],
        baseline_summary=pb,
        think_seconds=list(THINK_S),
        note="people take 10-60 s per pair; a 1-3 s pause is still 5-10x faster than that",
    )


# --- seed list search -----------------------------------------------------------------------------------------


def search_words(tokens: list[str], k: int = 10) -> list[str]:
    """k words from common to rare (log-spaced frequency ranks), none an English stop word."""
    from django.db import connection

    counts = Counter(t for t in tokens if t.isalpha() and len(t) >= 4)
    ranked = [w for w, _ in counts.most_common()]
    with connection.cursor() as cur:
        cur.execute("SELECT w FROM unnest(%s::text[]) w WHERE to_tsvector('english', w) <> ''", [ranked[:20000]])
        content = {r[0] for r in cur.fetchall()}
    ranked = [w for w in ranked if w in content]
    positions = sorted({min(len(ranked) - 1, round(10 ** (1 + 3 * i / (k - 1)))) for i in range(k)})
    return [ranked[p] for p in positions]


def first_page(qs: Any) -> tuple[int, int]:
    """What the seed list view does: Paginator(…, 25), page 1, its count and rows."""
    from django.core.paginator import Paginator

    page = Paginator(qs, 25).get_page(1)
    return page.paginator.count, len(list(page.object_list))


def bench_search(tokens: list[str]) -> None:
    from django.db.models import Q

    from annotation import selectors
    from annotation.models import SeedExample

    def icontains(word: str) -> Any:
        return (
            SeedExample.objects.filter(is_active=True)
            .select_related("created_by")
            .filter(Q(instruction__icontains=word) | Q(response__icontains=word))
            .order_by("-created_at", "-id")
        )

    words = search_words(tokens)
    sql = str(selectors.seed_examples(query=words[0]).query)
    kind = "full-text" if "@@" in sql else "icontains" if "LIKE" in sql.upper() else "other"
    timings: dict[str, list[float]] = {"ours": [], "baseline": []}
    per_word: dict[str, dict[str, Any]] = {}
    for word in words:
        row: dict[str, Any] = {}
        for name, make in (("ours", lambda w: selectors.seed_examples(query=w)), ("baseline", icontains)):
            first_page(make(word))  # warm
            took = []
            for _ in range(SEARCH_REPEATS):
                t0 = time.perf_counter()
                matches, _ = first_page(make(word))
                took.append(time.perf_counter() - t0)
            timings[name].extend(took)
            row[name] = {"matches": matches, "p50_ms": round(percentile([t * 1000 for t in took], 0.5), 1)}
        per_word[word] = row
        print(f"[bench] search {word!r}: {row}")
    ours_ms = [t * 1000 for t in timings["ours"]]
    base_ms = [t * 1000 for t in timings["baseline"]]
    record(
        "review.seed_search_p95_ms",
        value=percentile(ours_ms, 0.95),
        unit=f"ms (p95, seed list search first page + count, {SeedExample.objects.count():,} seed rows; "
        "lower is better)",
        baseline=percentile(base_ms, 0.95),
        better="lower",
        selector=kind,
        baseline_query="icontains on instruction or response, newest first",
        p50=round(percentile(ours_ms, 0.5), 2),
        baseline_p50=round(percentile(base_ms, 0.5), 2),
        words=per_word,
        repeats_per_word=SEARCH_REPEATS,
    )


def main() -> None:
    wanted = set(sys.argv[1:]) or {"queue", "search"}
    use_bench_database()
    setup_django()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    started = time.perf_counter()
    migrate()
    tokens = vocabulary()
    if "queue" in wanted:
        rnd = load_round(N_CANDIDATES, tokens)
        users = bench_users(N_ANNOTATORS)
        loaded = time.perf_counter()
        bench_queue(rnd, users)
        print(f"[bench] queue: load {loaded - started:.0f} s, measure {time.perf_counter() - loaded:.0f} s")
    if "search" in wanted:
        t0 = time.perf_counter()
        load_seeds(N_SEEDS, tokens)
        t1 = time.perf_counter()
        bench_search(tokens)
        print(f"[bench] search: load {t1 - t0:.0f} s, measure {time.perf_counter() - t1:.0f} s")
    print(f"[bench] total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
