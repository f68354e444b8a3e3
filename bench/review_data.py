"""The review benchmark's database and data (`bench.review`; `bench.export` loads its round with it too): its own
PostgreSQL database (`backforth_bench`, or BENCH_REVIEW_DB), a round in review with n candidates on n segments
and its queue, n seed examples, all written with COPY and text drawn from the real C4 sample's words; the bench
users; and undoing a run's decisions between phases.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from bench.common import SHARED_WEB, database_url, redis_url

BENCH_DB = os.environ.get("BENCH_REVIEW_DB", "backforth_bench")
# Its own logical Redis database on the app's server (the app uses 0, tests 15, bench.corpus / bench.export 13).
# The review pages queue no jobs; whatever would, lands here, never in the app's queues.
BENCH_REDIS_DB = int(os.environ.get("BENCH_REVIEW_REDIS_DB", "11"))
# The bench users' password (their own database only; they sign in through the login form like people do).
BENCH_PASSWORD = "bench-annotator-pass-7f3c"
# queue_build (ORM bulk_update) is used up to this many candidates; above it the same plan (queue.plan_queue) is
# written with one UPDATE … FROM a COPYed table: queue_build took 94 s for 55k queued items (each 5,000-row
# bulk_update batch is one CASE statement, ~8.6 s), so about 16 minutes for the 550k items of 1M candidates.
QUEUE_BUILD_MAX = int(os.environ.get("BENCH_REVIEW_QUEUE_BUILD_MAX", "200000"))
ROUND_NUMBER = 1
THRESHOLD = 3.0  # scores are uniform in [1, 5]: half the pairs are kept, plus the audit sample of the dropped


# --- the database ----------------------------------------------------------------------------------------------


def use_bench_database() -> None:
    """Point Django (and the servers the bench starts, which inherit the environment) at backforth_bench on the
    app's PostgreSQL server, created if missing, and at Redis database BENCH_REDIS_DB: nothing the bench does
    lands in the app's database or queues. Call before setup_django()."""
    import psycopg

    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = database_url(BENCH_DB), redis_url(BENCH_REDIS_DB)
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
            print(f"[bench] created database {BENCH_DB}")


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def table(model: Any) -> str:
    """The model's table name."""
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


def copy_rows(sql: str, rows: Iterator[tuple[Any, ...]]) -> int:
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
        cur.execute(f"TRUNCATE {', '.join(table(m) for m in tables)} RESTART IDENTITY CASCADE")
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

        copy_rows(
            f"COPY {table(Segment)} (corpus_id, text, content_hash, source_id, url, meta, char_count, created_at)"
            " FROM STDIN",
            segments(),
        )
        seen.clear()
        with connection.cursor() as cur:
            cur.execute(f"SELECT id FROM {table(Segment)} WHERE corpus_id = %s ORDER BY id", [corpus.pk])
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

        copy_rows(
            f"COPY {table(Candidate)} (round_id, segment_id, instruction, rewritten_response, score,"
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
        copy_rows("COPY bench_plan FROM STDIN", ((e.candidate_id, e.priority, e.is_audit) for e in plan))
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE {table(Candidate)} c SET in_queue = true, queue_priority = p.priority,"
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
        cur.execute(f"TRUNCATE {table(SeedExample)} RESTART IDENTITY CASCADE")
    words, now = Words(tokens, seed=3), timezone.now()

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = now - timedelta(seconds=n - i)
            yield words.question(words.rng.randint(8, 16)), words.sentences(80), "seed", "{}", "{}", 1, True, at, at

    with transaction.atomic():
        copy_rows(
            f"COPY {table(SeedExample)} (instruction, response, source, tags, provenance, version, is_active,"
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
            cur.execute(f"VACUUM ANALYZE {table(model)}")


def bench_users(n: int) -> list[Any]:
    """n annotators and one curator (the role groups come from a migration; get_or_create keeps it explicit).
    The annotators sign in with BENCH_PASSWORD through the login form; any lockout an earlier run left (django-axes
    counts failed logins) is cleared."""
    from axes.models import AccessAttempt
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    User = get_user_model()
    annotator = Group.objects.get_or_create(name="annotator")[0]
    curator = Group.objects.get_or_create(name="curator")[0]
    # One hash for all (a fixed salt, in the bench's own database): hashing costs about 0.3 s of CPU each.
    password = make_password(BENCH_PASSWORD, salt="backforthbench")
    AccessAttempt.objects.filter(username__startswith="bench-annotator-").delete()
    users = []
    for i in range(n):
        user, _ = User.objects.get_or_create(username=f"bench-annotator-{i:02d}")
        if user.password != password:
            user.password = password
            user.save(update_fields=["password"])
        user.groups.set([annotator])
        users.append(user)
    lead, _ = User.objects.get_or_create(username="bench-curator")
    lead.groups.set([curator])
    return users


def reset_queue(rnd: Any) -> None:
    """Undo every decision, skip and lease: each candidate back to its state before its first review."""
    from django.db import connection, transaction

    from annotation.models import Candidate, Lease, Review

    c, r = table(Candidate), table(Review)
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
        cur.execute(f"DELETE FROM {table(Lease)}")
    vacuum(Candidate, Review, Lease)
