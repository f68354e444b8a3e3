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
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from unittest import mock

from bench.common import SHARED_WEB, record, setup_django

BENCH_DB = os.environ.get("BENCH_REVIEW_DB", "backforth_bench")
PG = "postgres://backforth:backforth@127.0.0.1:5432"
N_CANDIDATES = int(os.environ.get("BENCH_REVIEW_CANDIDATES", "1000000"))
N_SEEDS = int(os.environ.get("BENCH_REVIEW_SEEDS", "200000"))
N_ANNOTATORS = int(os.environ.get("BENCH_REVIEW_ANNOTATORS", "20"))
PHASE_SECONDS = float(os.environ.get("BENCH_REVIEW_SECONDS", "45"))
MAX_DECISIONS = int(os.environ.get("BENCH_REVIEW_DECISIONS", "300"))
THINK_S = (float(os.environ.get("BENCH_REVIEW_THINK_MIN", "1")), float(os.environ.get("BENCH_REVIEW_THINK_MAX", "3")))
# queue_build (ORM bulk_update) is used up to this many candidates; above it the same plan (queue.plan_queue) is
# written with one UPDATE … FROM a COPYed table: queue_build took 94 s for 55k queued items (each 5,000-row
# bulk_update batch is one CASE statement, ~8.6 s), so about 16 minutes for the 550k items of 1M candidates.
QUEUE_BUILD_MAX = int(os.environ.get("BENCH_REVIEW_QUEUE_BUILD_MAX", "200000"))
ROUND_NUMBER = 1
THRESHOLD = 3.0  # scores are uniform in [1, 5]: half the pairs are kept, plus the audit sample of the dropped
SEARCH_REPEATS = 5
HX = {"HX-Request": "true"}
_FIELD = re.compile(r'name="(candidate_id|version)" value="(\d+)"')


# --- the database ----------------------------------------------------------------------------------------------


def use_bench_database() -> None:
    """Point Django at backforth_bench (created if missing) and migrate it. Call before setup_django()."""
    import psycopg

    os.environ["DATABASE_URL"] = f"{PG}/{BENCH_DB}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
            print(f"[bench] created database {BENCH_DB}")


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _table(model: Any) -> str:
    return model._meta.db_table


# --- data ------------------------------------------------------------------------------------------------------


def vocabulary() -> list[str]:
    """Lower-cased word tokens of the real C4 sample, repeats kept: sampling from it follows English frequencies."""
    path = SHARED_WEB / "c4_en_sample_1000.json.gz"
    if not path.is_file():
        raise SystemExit(f"need {path} for realistic words")
    tokens: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            tokens.extend(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]{0,20}", json.loads(line)["text"]))
    return tokens


class Words:
    """Random text drawn word by word from a real token stream (deterministic for a seed)."""

    def __init__(self, tokens: list[str], seed: int) -> None:
        self.tokens = tokens
        self.rng = random.Random(seed)

    def sentences(self, n_words: int) -> str:
        words = self.rng.choices(self.tokens, k=n_words)
        out, i = [], 0
        while i < len(words):
            step = self.rng.randint(7, 16)
            out.append(" ".join(words[i : i + step]).capitalize() + ".")
            i += step
        return " ".join(out)

    def question(self, n_words: int) -> str:
        return " ".join(self.rng.choices(self.tokens, k=n_words)).capitalize() + "?"


def score_distribution(rng: random.Random) -> tuple[list[float], float]:
    """P("1"…"5") peaked around a random centre, and its expected value (the score curation stores)."""
    centre = rng.uniform(1, 5)
    weights = [math.exp(-((k - centre) ** 2) / 0.6) for k in range(1, 6)]
    total = sum(weights)
    probs = [w / total for w in weights]
    return probs, min(5.0, max(1.0, sum(k * p for k, p in zip(range(1, 6), probs, strict=True))))


def _copy(sql: str, rows: Iterator[tuple[Any, ...]]) -> int:
    """COPY rows through Django's own psycopg connection (inside the caller's transaction)."""
    from django.db import connection

    connection.ensure_connection()
    n = 0
    with connection.connection.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def load_round(n: int, tokens: list[str]) -> Any:
    """The bench round in review with n candidates on n segments, queued, reused when already loaded."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import Candidate, Lease, Review
    from generation.corpus.text import content_hash
    from generation.models import Corpus, ModelVersion, Round, Segment
    from generation.pipeline import config as round_config

    rnd = Round.objects.filter(number=ROUND_NUMBER).first()
    if rnd is not None and rnd.metrics.get("bench_candidates") == n and rnd.candidates.count() == n:
        print(f"[bench] reusing round {ROUND_NUMBER}: {n:,} candidates")
        return rnd
    started = time.perf_counter()
    tables = [Lease, Review, Candidate, Segment, Round, Corpus, ModelVersion]
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(_table(m) for m in tables)} RESTART IDENTITY CASCADE")
    config = round_config.validate({"curation": {"threshold": THRESHOLD}, "sample_size": n})
    now = timezone.now()
    with transaction.atomic():
        corpus = Corpus.objects.create(name="bench review")
        base = ModelVersion.objects.create(name="bench", role=ModelVersion.Role.BASE, path="/models/bench")
        rnd = Round.objects.create(
            number=ROUND_NUMBER, state=Round.State.REVIEW, corpus=corpus, config=config, base_model=base
        )
        words, seen = Words(tokens, seed=1), set()

        def segments() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                while True:
                    text = words.sentences(52)  # ~300 characters
                    digest = content_hash(text)
                    if digest not in seen:
                        break
                seen.add(digest)
                yield corpus.pk, text, digest, f"bench-{i}", "", "{}", len(text), now

        _copy(
            f"COPY {_table(Segment)} (corpus_id, text, content_hash, source_id, url, meta, char_count, created_at)"
            " FROM STDIN",
            segments(),
        )
        seen.clear()
        with connection.cursor() as cur:
            cur.execute(f"SELECT id FROM {_table(Segment)} WHERE corpus_id = %s ORDER BY id", [corpus.pk])
            segment_ids = [r[0] for r in cur.fetchall()]
        print(f"[bench] {n:,} segments in {time.perf_counter() - started:.0f} s")
        rng = random.Random(2)

        def candidates() -> Iterator[tuple[Any, ...]]:
            for segment_id in segment_ids:
                probs, score = score_distribution(rng)
                kept = score >= THRESHOLD
                dist = "{" + ",".join(f"{p:.4f}" for p in probs) + "}"
                instruction = words.question(rng.randint(6, 14))
                status = "kept" if kept else "dropped"
                yield (
                    rnd.pk,
                    segment_id,
                    instruction,
                    "",
                    score,
                    dist,
                    "",
                    None,
                    status,
                    kept,
                    "",
                    "",
                    "{}",
                    "",
                    1,
                    now,
                    now,
                )

        _copy(
            f"COPY {_table(Candidate)} (round_id, segment_id, instruction, rewritten_response, score,"
            " score_distribution, rationale, parsed_score, status, kept_by_curation, final_instruction,"
            " final_response, lineage, error, version, created_at, updated_at) FROM STDIN",
            candidates(),
        )
    print(f"[bench] {n:,} candidates in {time.perf_counter() - started:.0f} s")
    build_started = time.perf_counter()
    queued, how = build_queue(rnd)
    rnd.metrics = {
        "bench_candidates": n,
        "queued": queued,
        "queue_build": how,
        "queue_build_s": round(time.perf_counter() - build_started, 1),
        "load_s": round(time.perf_counter() - started, 1),
    }
    rnd.save(update_fields=["metrics"])
    vacuum(Segment, Candidate)
    print(f"[bench] queue: {queued:,} items ({how}, {rnd.metrics['queue_build_s']} s)")
    return rnd


def build_queue(rnd: Any) -> tuple[int, str]:
    """queue.queue_build up to QUEUE_BUILD_MAX candidates; above, the same plan in one UPDATE (its bulk_update
    runs 5,000-row CASE statements, quadratic per batch, and holds every Candidate in memory)."""
    from django.db import connection, transaction

    from annotation import queue
    from annotation.models import Candidate

    n = rnd.candidates.count()
    if n <= QUEUE_BUILD_MAX:
        return queue.queue_build(round=rnd), "queue_build"
    cfg = rnd.cfg
    rows = rnd.candidates.filter(status__in=[Candidate.Status.KEPT, Candidate.Status.DROPPED]).exclude(score=None)
    scored = [
        (cid, score, status == Candidate.Status.KEPT)
        for cid, score, status in rows.values_list("id", "score", "status")
    ]
    plan = queue.plan_queue(
        scored,
        threshold=cfg.curation.threshold,
        audit_fraction=cfg.review.audit_fraction,
        seed=cfg.seed,
    )
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("CREATE TEMP TABLE bench_plan (id bigint, priority float8, audit bool) ON COMMIT DROP")
        _copy("COPY bench_plan FROM STDIN", ((e.candidate_id, e.priority, e.is_audit) for e in plan))
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE {_table(Candidate)} c SET in_queue = true, queue_priority = p.priority,"
                " is_audit = p.audit, reviews_needed = %s FROM bench_plan p WHERE c.id = p.id",
                [cfg.review.overlap],
            )
    return len(plan), "plan_queue + UPDATE FROM (queue_build too slow at this size)"


def load_seeds(n: int, tokens: list[str]) -> None:
    """n active seed examples (instruction ~12 words, response ~80 words), reused when already loaded."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import SeedExample

    if SeedExample.objects.count() == n:
        print(f"[bench] reusing {n:,} seed examples")
        return
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {_table(SeedExample)} RESTART IDENTITY CASCADE")
    words, now = Words(tokens, seed=3), timezone.now()

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = now - timedelta(seconds=n - i)
            yield words.question(words.rng.randint(8, 16)), words.sentences(80), "seed", "{}", "{}", 1, True, at, at

    with transaction.atomic():
        _copy(
            f"COPY {_table(SeedExample)} (instruction, response, source, tags, provenance, version, is_active,"
            " created_at, updated_at) FROM STDIN",
            rows(),
        )
    vacuum(SeedExample)
    print(f"[bench] {n:,} seed examples in {time.perf_counter() - started:.0f} s")


def vacuum(*models: Any) -> None:
    """VACUUM ANALYZE (outside any transaction): fresh statistics and a clean visibility map for each phase."""
    from django.db import connection

    with connection.cursor() as cur:
        for model in models:
            cur.execute(f"VACUUM ANALYZE {_table(model)}")


def bench_users(n: int) -> list[Any]:
    """n annotators and one curator (the role groups come from a migration; get_or_create keeps it explicit)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    annotator = Group.objects.get_or_create(name="annotator")[0]
    curator = Group.objects.get_or_create(name="curator")[0]
    users = []
    for i in range(n):
        user, created = User.objects.get_or_create(username=f"bench-annotator-{i:02d}")
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.set([annotator])
        users.append(user)
    lead, _ = User.objects.get_or_create(username="bench-curator")
    lead.groups.set([curator])
    return users


def reset_queue(rnd: Any) -> None:
    """Undo every decision, skip and lease: each candidate back to its state before its first review."""
    from django.db import connection, transaction

    from annotation.models import Candidate, Lease, Review

    c, r = _table(Candidate), _table(Review)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"UPDATE {c} c SET status = f.before->>'status', version = (f.before->>'version')::int,"
            " final_instruction = '', final_response = '', reviews_done = 0, in_queue = true"
            f" FROM (SELECT DISTINCT ON (candidate_id) candidate_id, before FROM {r}"
            "       WHERE action IN ('accept', 'edit', 'reject') ORDER BY candidate_id, id) f"
            " WHERE c.id = f.candidate_id AND c.round_id = %s",
            [rnd.pk],
        )
        cur.execute(f"DELETE FROM {r}")
        cur.execute(f"DELETE FROM {_table(Lease)}")
    vacuum(Candidate, Review, Lease)


# --- concurrent annotators ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one run of N concurrent annotators measured."""

    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    duplicates: int = 0
    reviews: int = 0
    queries_per_request: int = 0
    slowest_queries: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] += 1

    def summary(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "p50": round(percentile(ms, 0.50), 2),
            "p95": round(percentile(ms, 0.95), 2),
            "p99": round(percentile(ms, 0.99), 2),
            "decisions": len(ms),
            "per_s": round(len(ms) / self.seconds, 1) if self.seconds else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": len(self.errors),
            "duplicates": self.duplicates,
            "reviews_written": self.reviews,
        }


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _fields(html: str) -> tuple[int, int] | None:
    found = dict(_FIELD.findall(html))
    return (int(found["candidate_id"]), int(found["version"])) if "candidate_id" in found else None


def _decision(i: int, candidate_id: int, version: int) -> dict[str, Any]:
    """Accept, and reject as unsafe every 5th."""
    if i % 5 == 4:
        return {"candidate_id": candidate_id, "version": version, "action": "reject", "reason": "unsafe"}
    return {"candidate_id": candidate_id, "version": version, "action": "accept"}


def _view_annotator(
    user: Any,
    rnd: Any,
    start: threading.Barrier,
    phase: Phase,
    clock: list[float],
    think: tuple[float, float] | None = None,
) -> None:
    """One annotator through the views: GET the queue once, then POST decide (htmx) and read the next item;
    with `think`, a pause drawn uniformly from that range (seconds) after each item, as a person reading it."""
    from django.test import Client

    pause = random.Random(user.pk)
    client = Client()
    client.force_login(user)
    item = _fields(client.get(f"/review/{rnd.number}/", headers=HX).content.decode())
    start.wait()
    for i in range(MAX_DECISIONS):
        if item is None or time.perf_counter() - clock[0] > PHASE_SECONDS:
            break
        t0 = time.perf_counter()
        response = client.post(f"/review/{rnd.number}/decide/", _decision(i, *item), headers=HX)
        phase.add(time.perf_counter() - t0, response.status_code)
        item = _fields(response.content.decode())
        if think:
            time.sleep(pause.uniform(*think))


def run_phase(name: str, rnd: Any, users: list[Any], worker: Callable[..., None]) -> Phase:
    """All annotators at once (a barrier after their first item), each on its own thread and DB connection."""
    from django.db import connection

    phase = Phase(name)
    clock: list[float] = []
    start = threading.Barrier(len(users), action=lambda: clock.append(time.perf_counter()))

    def body(user: Any) -> None:
        try:
            worker(user, rnd, start, phase, clock)
        except Exception as exc:  # reported; the phase goes on
            phase.errors.append(f"{user.username}: {exc!r}")
            start.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(u,), name=u.username) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - clock[0] if clock else 0.0
    if phase.errors:
        print(f"[bench] {name}: {len(phase.errors)} errors, first: {phase.errors[0]}")
    return phase


def check_reviews(phase: Phase) -> None:
    """No candidate may carry two decisions (accept / edit / reject) from one run."""
    from django.db.models import Count

    from annotation import queue
    from annotation.models import Review

    decided = Review.objects.filter(action__in=queue.DECISIONS)
    phase.reviews = decided.count()
    phase.duplicates = decided.values("candidate").annotate(n=Count("*")).filter(n__gt=1).count()
    print(f"[bench] {phase.name}: {phase.reviews:,} decisions written, {phase.duplicates} candidates decided twice")


def count_queries(phase: Phase, rnd: Any, user: Any) -> None:
    """Queries of one more decide + next round trip, alone (after the run)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    item = _fields(client.get(f"/review/{rnd.number}/", headers=HX).content.decode())
    if item is None:
        return
    with CaptureQueriesContext(connection) as ctx:
        client.post(f"/review/{rnd.number}/decide/", _decision(0, *item), headers=HX)
    phase.queries_per_request = len(ctx.captured_queries)
    slow = sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:3]
    phase.slowest_queries = [f"{float(q['time']) * 1000:.1f} ms: {q['sql'][:160]}" for q in slow]


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
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM {_table(Candidate)} WHERE round_id = %s AND in_queue",
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
            if worker is _view_annotator:
                count_queries(result, rnd, users[0])
        print(f"[bench] {name}: {result.summary()}")
        return result

    explain_fresh = explain_next(rnd, users[0])
    ours = phase("views, SKIP LOCKED", _view_annotator, queue.queue_next)
    explain_after = explain_next(rnd, users[0])  # the index front now holds the run's decided rows
    base = phase("views, blocking FOR UPDATE", _view_annotator, blocking_next)
    paced = partial(_view_annotator, think=THINK_S)
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
