"""Review benchmarks. Run with `.venv/bin/python -m bench.review` (about 10 minutes on 2 cores the first time at
full size, of which 2 minutes load the data; within one `make bench`, bench.export reuses it, and the run drops it
at the end unless BENCH_KEEP=1).

Everything runs on its own PostgreSQL database, `backforth_bench` (created if missing, dropped at the end of `make
bench`), and its own Redis database (11), never on the app's. The queue is measured as users reach it: the real
gunicorn server (`gunicorn -c app/gunicorn_conf.py app.wsgi`, the settings scripts/serve.sh runs production with) on
the bench database, driven over HTTP by 20 annotators who sign in through the login form, load the queue page, then
decide with the htmx POST review.js sends and read the next item from its answer (bench/review_http.py).

- review.decide_next_p95_ms  POST /review/<n>/decide/ (decide + the next item's partial in the answer: what an
                             annotator waits for after a key) under 20 concurrent annotators on a 1M-candidate
                             round: the queue's `FOR UPDATE SKIP LOCKED` claim vs the same server with a blocking
                             `FOR UPDATE` claim (bench/review_blocking_wsgi.py). Lower is better. Closed loop:
                             each annotator posts again as soon as its answer arrives (the server's capacity; its
                             decisions/s beside the baseline's). Also: a sweep of serving settings (worker class,
                             processes × threads), closed loop, what scripts/serve.sh's choice rests on.
- review.decide_next_paced_p95_ms  the same with a 1-3 s reading pause after each item (people take 10-60 s):
                             the wait an annotator feels.
- review.seed_search_p95_ms  first page (25 rows + the count) of the seed list search over 200k seed rows:
                             `annotation.selectors.seed_examples(query=…)` vs `icontains` on instruction/response.

Sizes: BENCH_REVIEW_CANDIDATES (1,000,000), BENCH_REVIEW_SEEDS (200,000), BENCH_REVIEW_ANNOTATORS (20),
BENCH_REVIEW_SECONDS (40 per phase), BENCH_REVIEW_DECISIONS (300 per annotator and phase),
BENCH_REVIEW_SWEEP (the serving settings tried, `class:processes x threads`, comma-separated; empty: none) and
BENCH_REVIEW_SWEEP_SECONDS (15 per setting). `python -m bench.review queue` or `… search` runs one part.

The bench database and its data (COPY loaders, the queue, the bench users) are in review_data.py, the server and
the annotators' browsers in review_http.py, the concurrent harness and what a phase measures in review_load.py;
here, the measurements and their baselines.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from functools import partial
from typing import Any

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
from bench.review_http import Server, collect_static, cpu_used, http_annotator
from bench.review_load import (
    MAX_DECISIONS,
    PHASE_SECONDS,
    Phase,
    check_reviews,
    count_queries,
    percentile,
    run_phase,
)

N_CANDIDATES = int(os.environ.get("BENCH_REVIEW_CANDIDATES", "1000000"))
N_SEEDS = int(os.environ.get("BENCH_REVIEW_SEEDS", "200000"))
N_ANNOTATORS = int(os.environ.get("BENCH_REVIEW_ANNOTATORS", "20"))
THINK_S = (float(os.environ.get("BENCH_REVIEW_THINK_MIN", "1")), float(os.environ.get("BENCH_REVIEW_THINK_MAX", "3")))
SWEEP = os.environ.get("BENCH_REVIEW_SWEEP", "sync:3x1,gthread:4x1")
SWEEP_SECONDS = float(os.environ.get("BENCH_REVIEW_SWEEP_SECONDS", "15"))
SEARCH_REPEATS = 5
BLOCKING_APP = "bench.review_blocking_wsgi"


# --- the queue under concurrent annotators ---------------------------------------------------------------------


def explain_next(rnd: Any, user: Any) -> list[str]:
    """EXPLAIN ANALYZE of the claim queue_next runs (rolled back) and of the header's capped waiting count."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation import queue
    from annotation.models import Candidate

    params = {"round": rnd.pk, "user": user.pk, "now": timezone.now(), "passed": []}
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + queue.claim_sql(skipped_last=True), params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        transaction.set_rollback(True)
    with connection.cursor() as cur:
        cur.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM (SELECT 1 FROM {table(Candidate)} WHERE round_id = %s"
            f" AND in_queue LIMIT {queue.COUNT_CAP + 1}) w",
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


def sweep_settings(spec: str) -> list[dict[str, Any]]:
    """`sync:3x1,gthread:2x4` -> gunicorn overrides [{worker_class, workers, threads}, …]."""
    out = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        kind, _, size = item.partition(":")
        workers, _, threads = size.partition("x")
        out.append({"worker_class": kind, "workers": int(workers), "threads": int(threads or 1)})
    return out


def label(serve: dict[str, Any]) -> str:
    return f"{serve['worker_class']}:{serve['workers']}x{serve['threads']}"


def http_phase(
    name: str,
    rnd: Any,
    users: list[Any],
    *,
    app: str = "app.wsgi",
    overrides: dict[str, Any] | None = None,
    think: tuple[float, float] | None = None,
    seconds: float = PHASE_SECONDS,
    queries: bool = False,
) -> Phase:
    """The queue reset, a fresh server, every annotator signed in and on its first item, then `seconds` of
    decisions; afterwards no candidate decided twice, and (`queries`) one more round trip's queries counted."""
    reset_queue(rnd)
    with Server(app, overrides) as server:
        started: list[dict[str, Any]] = []
        annotator = partial(http_annotator, port=server.port, think=think, seconds=seconds)
        result = run_phase(name, rnd, users, annotator, on_start=lambda: started.append(server.cpu()))
        if started:
            result.cpu = cpu_used(started[0], server.cpu())
    result.serve = server.settings
    check_reviews(result)
    if queries:
        count_queries(result, rnd, users[0])
    print(f"[bench] {name}: {result.summary()}")
    return result


def bench_queue(rnd: Any, users: list[Any]) -> None:
    """Over HTTP through gunicorn: ours (SKIP LOCKED) vs the blocking claim, closed loop and paced; then a sweep of
    serving settings, closed loop."""
    explain_fresh = explain_next(rnd, users[0])
    ours = http_phase("http, SKIP LOCKED", rnd, users, queries=True)
    explain_after = explain_next(rnd, users[0])  # the index front now holds the run's decided rows
    base = http_phase("http, blocking FOR UPDATE", rnd, users, app=BLOCKING_APP)
    p_ours = http_phase("http, SKIP LOCKED, paced", rnd, users, think=THINK_S)
    p_base = http_phase("http, blocking FOR UPDATE, paced", rnd, users, app=BLOCKING_APP, think=THINK_S)
    sweep = {}
    for overrides in sweep_settings(SWEEP):
        tried = http_phase(
            f"http, SKIP LOCKED, {label(overrides)}", rnd, users, overrides=overrides, seconds=SWEEP_SECONDS
        )
        t = tried.summary()
        sweep[label(overrides)] = {k: t[k] for k in ("p50", "p95", "p99", "per_s", "decisions", "errors")}
    reset_queue(rnd)
    s, b = ours.summary(), base.summary()
    serving = f"gunicorn {label(ours.serve)}"
    record(
        "review.decide_next_p95_ms",
        value=s["p95"],
        unit=f"ms (p95 over HTTP, decide + the next item in its answer, {len(users)} concurrent annotators, closed "
        f"loop, {rnd.candidates.count():,} candidates, {serving}; lower is better)",
        baseline=b["p95"],
        better="lower",
        path="http",
        serve=ours.serve,
        p50=s["p50"],
        p99=s["p99"],
        decisions=s["decisions"],
        decisions_per_s=s["per_s"],
        baseline_decisions_per_s=b["per_s"],
        duplicates=ours.duplicates,
        baseline_duplicates=base.duplicates,
        statuses=s["statuses"],
        errors=s["errors"],
        answer_bytes_mean=s["answer_bytes_mean"],
        queries_per_request=ours.queries_per_request,
        queries=ours.queries,
        slowest_queries=ours.slowest_queries,
        baseline_summary=b,
        serve_sweep=sweep,
        serve_sweep_seconds=SWEEP_SECONDS,
        queue_items=rnd.metrics.get("queued"),
        queue_build=rnd.metrics.get("queue_build"),
        queue_build_s=rnd.metrics.get("queue_build_s"),
        load_s=rnd.metrics.get("load_s"),
        explain_next_fresh=explain_fresh,
        explain_next_after_run=explain_after,
        phase_seconds=PHASE_SECONDS,
        max_decisions_per_annotator=MAX_DECISIONS,
        note="closed loop: every annotator posts its next decision the moment the previous answer arrives, so the "
        "p95 is mostly waiting in line for the server (about annotators / decisions per second): it measures "
        "capacity. The annotators' 20 threads run on the same 2 cores as the server and PostgreSQL. "
        "review.decide_next_paced_p95_ms is the wait with a reading pause",
    )
    ps, pb = p_ours.summary(), p_base.summary()
    record(
        "review.decide_next_paced_p95_ms",
        value=ps["p95"],
        unit=f"ms (p95 over HTTP, decide + the next item in its answer, {len(users)} concurrent annotators pausing "
        f"{THINK_S[0]:g}-{THINK_S[1]:g} s per item, {rnd.candidates.count():,} candidates, {serving}; lower is "
        "better)",
        baseline=pb["p95"],
        better="lower",
        path="http",
        serve=p_ours.serve,
        p50=ps["p50"],
        p99=ps["p99"],
        decisions=ps["decisions"],
        decisions_per_s=ps["per_s"],
        baseline_decisions_per_s=pb["per_s"],
        duplicates=p_ours.duplicates,
        baseline_duplicates=p_base.duplicates,
        statuses=ps["statuses"],
        errors=ps["errors"],
        answer_bytes_mean=ps["answer_bytes_mean"],
        baseline_summary=pb,
        think_seconds=list(THINK_S),
        note="people take 10-60 s per pair; a 1-3 s pause is still 5-10x faster than that. The answer to the "
        "decision carries the next item (one round trip after a key)",
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
    if "queue" in wanted:
        collect_static()
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
