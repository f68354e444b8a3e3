"""Export benchmarks. Run with `.venv/bin/python -m bench.export` (about 2 minutes on 2 cores once the data is there).

- export.rows_per_s  `services.export.export_dataset(rows=round_rows(rnd), fmt="messages_jsonl")` on 1,000,000
                     accepted pairs (streamed: a server-side cursor, 2,000 rows at a time) vs the naive export,
                     `json.dump(list(Candidate.objects.filter(...).values(...)))`, which holds every row in memory.
                     Rows/s, and the peak RSS growth of each; ours in Parquet too (details).

Data: the 1M-candidate round that `bench.review` loads into `backforth_bench` (waited for up to 30 minutes). Its
rows are never changed: a dedicated export round is made next to it by copying 1M of its candidates with one
`INSERT … SELECT` (status "accepted", out of the review queue), and deleted again at the end, also after an
error (and at the start, if a killed run left one behind). If the review round never appears, 1M candidates are
loaded into `backforth_bench_export` with bench.review's own COPY loader instead.

Sizes: BENCH_EXPORT_ROWS (1,000,000), BENCH_EXPORT_WAIT_S (1,800).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from bench.common import database_url, record, redis_url, setup_django
from bench.corpus import measure, rss_mib

SHARED_DB = os.environ.get("BENCH_EXPORT_DB", "backforth_bench")
OWN_DB = "backforth_bench_export"
N_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
WAIT_S = float(os.environ.get("BENCH_EXPORT_WAIT_S", "1800"))
POLL_S = 30.0
EXPORT_ROUND_NUMBER = 900_001  # far from bench.review's round 1
RSS_SAMPLE_EVERY = max(1, N_ROWS // 20)
NAIVE_FIELDS = (
    "pk",
    "instruction",
    "final_instruction",
    "rewritten_response",
    "final_response",
    "version",
    "status",
    "segment__text",
)


# --- the database -------------------------------------------------------------------------------------------------


def largest_round(db: str) -> tuple[int, int] | None:
    """(round id, candidates) of the biggest round in `db`, or None when the database or its tables are missing."""
    import psycopg

    try:
        with psycopg.connect(database_url(db), connect_timeout=10) as conn:
            if conn.execute("SELECT to_regclass('annotation_candidate')").fetchone()[0] is None:
                return None
            row = conn.execute(
                "SELECT round_id, count(*) FROM annotation_candidate WHERE round_id <> ALL("
                "  SELECT id FROM generation_round WHERE number = %s)"
                " GROUP BY round_id ORDER BY 2 DESC LIMIT 1",
                [EXPORT_ROUND_NUMBER],
            ).fetchone()
    except psycopg.OperationalError:  # no such database (yet)
        return None
    return (row[0], row[1]) if row else None


def wait_for_candidates(n: int) -> str | None:
    """The shared bench database once it holds a round of >= n candidates (polled up to WAIT_S), else None."""
    started = time.monotonic()
    while True:
        found = largest_round(SHARED_DB)
        if found and found[1] >= n:
            print(f"[bench] {SHARED_DB}: round id {found[0]} has {found[1]:,} candidates")
            return SHARED_DB
        waited = time.monotonic() - started
        if waited >= WAIT_S:
            print(f"[bench] {SHARED_DB} has no {n:,}-candidate round after {waited:.0f} s")
            return None
        print(f"[bench] waiting for {SHARED_DB} ({found[1] if found else 0:,} candidates so far, {waited:.0f} s)")
        time.sleep(POLL_S)


def load_own(n: int) -> None:
    """Fallback: n candidates in backforth_bench_export with bench.review's COPY loader (round 1 there)."""
    os.environ["BENCH_REVIEW_DB"] = OWN_DB  # read when bench.review_data is imported: import it after this
    from bench import review_data

    review_data.use_bench_database()  # sets DATABASE_URL to OWN_DB, creates it if missing
    setup_django()
    review_data.migrate()
    review_data.load_round(n, review_data.vocabulary())


def drop_export_round() -> None:
    """Delete the export round and its candidates (a leftover of an earlier run too)."""
    from django.db import connection, transaction

    from annotation.models import Candidate
    from generation.models import Round

    for rnd in Round.objects.filter(number=EXPORT_ROUND_NUMBER, metrics__bench_export=True):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"DELETE FROM {Candidate._meta.db_table} WHERE round_id = %s", [rnd.pk])
            deleted = cur.rowcount
            cur.execute(f"DELETE FROM {Round._meta.db_table} WHERE id = %s", [rnd.pk])
        print(f"[bench] deleted export round: {deleted:,} candidates in {time.perf_counter() - started:.0f} s")


def make_export_round(n: int) -> Any:
    """A round beside the biggest one, holding copies of n of its candidates marked accepted (not queued)."""
    from django.db import connection, transaction

    from annotation.models import Candidate
    from generation.models import Round

    found = largest_round(connection.settings_dict["NAME"])
    assert found is not None and found[1] >= n, found
    src = Round.objects.get(pk=found[0])
    started = time.perf_counter()
    overrides = {
        "round_id": "%s",
        "status": "%s",
        "in_queue": "false",
        "queue_priority": "0",
        "is_audit": "false",
        "reviews_done": "1",
        "updated_at": "now()",
    }
    columns = [f.column for f in Candidate._meta.concrete_fields if not f.primary_key]
    select = ", ".join(overrides.get(c, c) for c in columns)
    table = Candidate._meta.db_table
    with transaction.atomic():
        rnd = Round.objects.create(
            number=EXPORT_ROUND_NUMBER,
            state=Round.State.REVIEW,
            corpus=src.corpus,
            base_model=src.base_model,
            config=src.config,
            config_hash=src.config_hash,
            metrics={"bench_export": True, "copied_from_round": src.number},
        )
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {table} ({', '.join(columns)})"
                f" SELECT {select} FROM {table} WHERE round_id = %s ORDER BY id LIMIT %s",
                [rnd.pk, Candidate.Status.ACCEPTED, src.pk, n],
            )
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {table}")
    print(f"[bench] export round: {n:,} accepted candidates copied in {time.perf_counter() - started:.0f} s")
    return rnd


# --- the exports ------------------------------------------------------------------------------------------------


def sampled(rows: Iterator[dict[str, Any]], samples: list[tuple[int, float]]) -> Iterator[dict[str, Any]]:
    """Pass rows through, noting (rows so far, RSS MiB) every RSS_SAMPLE_EVERY rows."""
    for i, row in enumerate(rows, 1):
        if i % RSS_SAMPLE_EVERY == 0:
            samples.append((i, round(rss_mib()["VmRSS"], 1)))
        yield row


def export_ours(rnd: Any, fmt: str, out: Path) -> dict[str, Any]:
    from generation.services.export import export_dataset, round_about, round_rows

    samples: list[tuple[int, float]] = []
    manifest, seconds, mem = measure(
        lambda: export_dataset(rows=sampled(round_rows(rnd), samples), fmt=fmt, out=out, about=round_about(rnd))
    )
    size = out.stat().st_size
    out.unlink()
    Path(f"{out}.manifest.json").unlink()
    last_streamed = samples[-1][1] if samples else mem["rss_before"]
    return {
        "rows": manifest["count"],
        "seconds": round(seconds, 2),
        "rows_per_s": round(manifest["count"] / seconds, 1),
        "rss_mib": {
            **mem,
            # while rows stream (the manifest's [id, version] list grows with them) vs after the last row
            # (`json.dumps(manifest, indent=1)` of every id at once)
            "growth_while_streaming": round(last_streamed - mem["rss_before"], 1),
            "spike_after_last_row": round(mem["peak"] - last_streamed, 1),
        },
        "rss_samples": samples,
        "file_mib": round(size / 2**20, 1),
    }


def export_naive(rnd: Any, out: Path) -> dict[str, Any]:
    """Everything in one list, then one json.dump (the same fields round_rows reads)."""
    from annotation.models import Candidate

    def run() -> int:
        statuses = [Candidate.Status.ACCEPTED, Candidate.Status.EDITED]
        rows = list(Candidate.objects.filter(round=rnd, status__in=statuses).order_by("pk").values(*NAIVE_FIELDS))
        with out.open("w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False)
        return len(rows)

    n, seconds, mem = measure(run)
    size = out.stat().st_size
    out.unlink()
    return {
        "rows": n,
        "seconds": round(seconds, 2),
        "rows_per_s": round(n / seconds, 1),
        "rss_mib": mem,
        "file_mib": round(size / 2**20, 1),
    }


def bench_export(rnd: Any, db: str) -> None:
    import pyarrow.parquet  # noqa: F401 - imported before measuring, as in a running app

    from generation.services.export import round_rows

    list(islice(round_rows(rnd), 10))  # warm: the query path and the connection
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        # The naive export last: the heap it leaves behind would inflate the RSS of whatever ran after it.
        ours = export_ours(rnd, "messages_jsonl", Path(tmp, "ours.jsonl"))
        print(f"[bench] ours messages_jsonl: {ours}")
        parquet = export_ours(rnd, "parquet", Path(tmp, "ours.parquet"))
        print(f"[bench] ours parquet: {parquet}")
        naive = export_naive(rnd, Path(tmp, "naive.json"))
        print(f"[bench] naive json.dump: {naive}")
    (r0, m0), (r1, m1) = ours["rss_samples"][0], ours["rss_samples"][-1]
    record(
        "export.rows_per_s",
        value=ours["rows_per_s"],
        unit="rows/s (1M accepted pairs from PostgreSQL to a file)",
        baseline=naive["rows_per_s"],
        rows=ours["rows"],
        format="messages_jsonl",
        peak_rss_mib={"ours": ours["rss_mib"]["growth"], "naive": naive["rss_mib"]["growth"]},
        ours_rss_growth_per_100k_rows_mib=round((m1 - m0) / max(1, r1 - r0) * 100_000, 2),
        ours=ours,
        naive=naive,
        parquet=parquet,
        baseline_contains="json.dump(list(Candidate.objects.filter(round=…, status__in=[accepted, edited])"
        ".order_by('pk').values(<the 8 fields round_rows reads>)), f): raw rows, no messages/system prompt, "
        "no manifest",
        database=db,
        data=f"{ours['rows']:,} accepted copies of bench.review's candidates (instruction ~58 chars, response = "
        "the ~300-char segment text), in a round made for this run and deleted after it",
    )


def main() -> None:
    started = time.perf_counter()
    os.environ["REDIS_URL"] = redis_url(13)  # export never queues jobs; a Redis DB that is not the app's all the same
    db = wait_for_candidates(N_ROWS)
    if db is None:
        load_own(N_ROWS)
        db = OWN_DB
    else:
        os.environ["DATABASE_URL"] = database_url(db)
        setup_django()
    drop_export_round()
    try:
        t = time.perf_counter()
        rnd = make_export_round(N_ROWS)
        prepared = time.perf_counter() - t
        bench_export(rnd, db)
    finally:
        drop_export_round()
    print(f"[bench] prepare {prepared:.0f} s, total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
