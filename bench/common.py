"""Shared helpers for `make bench`: real data, results file, timing, a benchmark's own database and Redis DB."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SHARED_WEB = ROOT.parent / "shared" / "data" / "web"


WORKER_LOG = ROOT / "var" / "log" / "bench-worker.log"


def start_worker(queue: str = "gpu") -> subprocess.Popen:
    """A BackforthWorker in its own process group, so `stop_worker` takes the vLLM engine it spawns with it. It gets
    this process's DATABASE_URL and REDIS_URL (a benchmark's own, under `own_database`) and logs to WORKER_LOG."""
    WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    print(f"[bench] worker on {_redacted(env.get('DATABASE_URL', '(app database)'))}, log {WORKER_LOG}")
    with WORKER_LOG.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", queue, "--worker-class", "generation.worker.BackforthWorker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM to the worker's whole group, SIGKILL to what is left after `grace_s`. Killing only the worker
    left its vLLM engine behind, holding ~7 GB until the machine ran out for the next engine (a kill is safe:
    the database is the source of truth)."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            return
        try:
            worker.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # the worker is gone; take any engine left in its group
            os.killpg(worker.pid, signal.SIGKILL)
        return


def _redacted(url: str) -> str:
    from app.env import redact_url

    return redact_url(url)


def _service_urls() -> tuple[str, str]:
    """The app's DATABASE_URL and REDIS_URL, from the environment or .env (as settings.py reads them)."""
    from app.env import load_dotenv

    load_dotenv(ROOT / ".env")
    return (
        os.environ.get("DATABASE_URL", "postgres://backforth:backforth@127.0.0.1:5432/backforth"),
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )


def database_url(name: str) -> str:
    """The URL of database `name` on the app's PostgreSQL server, with the app's credentials."""
    db = urlsplit(_service_urls()[0])
    return urlunsplit((db.scheme, db.netloc, f"/{name}", db.query, ""))


def redis_url(db: int) -> str:
    """The URL of Redis DB `db` on the app's Redis server, with the app's password."""
    rd = urlsplit(_service_urls()[1])
    return urlunsplit((rd.scheme, rd.netloc, f"/{db}", rd.query, ""))


@contextlib.contextmanager
def own_database(name: str, *, redis_db: int) -> Iterator[str]:
    """Run a benchmark on a PostgreSQL database and a Redis DB of its own, so it never touches the app's rounds,
    rows or queues: `name` is created (dropped first if a killed run left it) on the app's server with the app's
    credentials and migrated, Redis DB `redis_db` flushed; DATABASE_URL and REDIS_URL point at them for this process
    and every worker `start_worker` starts. On the way out the database is dropped and the Redis DB flushed. Enter
    it before setup_django(); yields the database URL."""
    import psycopg
    import redis

    app_db, app_redis = _service_urls()
    db = urlsplit(app_db)
    own_db = urlunsplit((db.scheme, db.netloc, f"/{name}", db.query, ""))
    admin = urlunsplit((db.scheme, db.netloc, "/postgres", db.query, ""))
    rd = urlsplit(app_redis)
    if rd.path.strip("/") == str(redis_db):
        raise SystemExit(f"the benchmark's Redis DB {redis_db} is the app's own ({_redacted(app_redis)})")
    own_redis = urlunsplit((rd.scheme, rd.netloc, f"/{redis_db}", rd.query, ""))

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL")}
    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(own_redis).flushdb()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = own_db, own_redis
    print(f"[bench] own database {name} and Redis DB {redis_db} (dropped and flushed afterwards)")
    try:
        yield own_db
    finally:
        with contextlib.suppress(Exception):  # Django may not have been set up
            from django.db import connections

            connections.close_all()
        drop()
        redis.Redis.from_url(own_redis).flushdb()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def migrate() -> None:
    """Apply the migrations to the database Django points at (a benchmark's own, after own_database)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()


def web_segments(n: int, *, min_chars: int = 600, max_chars: int = 3000) -> list[str]:
    """n real web passages (Humpback-sized, 600–3,000 chars) from ../shared/data/web, C4 first then DCLM."""
    from generation.corpus.text import split_passages

    out: list[str] = []
    sources = [SHARED_WEB / "c4_en_sample_1000.json.gz", SHARED_WEB / "dclm_cc_text_499.jsonl"]
    for path in sources:
        if not path.is_file():
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                out.extend(split_passages(json.loads(line)["text"], min_chars=min_chars, max_chars=max_chars))
                if len(out) >= n:
                    return out[:n]
    if len(out) < n:
        raise SystemExit(f"need {n} web passages from {SHARED_WEB}, found {len(out)}")
    return out


def record(name: str, *, value: float, unit: str, baseline: float, **details: Any) -> dict[str, Any]:
    """Merge one result into bench/results.json ({"area.name": {"value", "unit", "baseline", "ratio"}})."""
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[name] = {
        "value": round(value, 4),
        "unit": unit,
        "baseline": round(baseline, 4),
        "ratio": round(value / baseline, 4) if baseline else None,
        **details,
    }
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {results[name]}")
    return results[name]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


KEPT_DATABASES = ("backforth_bench", "backforth_bench_export")  # bench.review's 1M rows, reused by bench.export
KEPT_REDIS_DBS = (11, 12, 13)


def cleanup() -> None:
    """The end of `make bench`: drop the databases the review and export benchmarks share within a run and flush the
    benchmarks' Redis DBs, so a run leaves nothing behind on the app's servers (BENCH_KEEP=1 keeps them)."""
    import psycopg
    import redis

    if os.environ.get("BENCH_KEEP") == "1":
        print(f"[bench] BENCH_KEEP=1: keeping {', '.join(KEPT_DATABASES)}")
        return
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        for name in KEPT_DATABASES:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for db in KEPT_REDIS_DBS:
        if urlsplit(_service_urls()[1]).path.strip("/") != str(db):
            redis.Redis.from_url(redis_url(db)).flushdb()
    print(f"[bench] dropped {', '.join(KEPT_DATABASES)}; flushed Redis DBs {KEPT_REDIS_DBS}")


if __name__ == "__main__" and sys.argv[1:] == ["cleanup"]:
    cleanup()
