"""Shared fixtures. Everything here is real: PostgreSQL (pytest-django's test database), Redis (its own
logical database, 15 by default, so a running demo worker never sees test jobs) and RQ workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def redis_conn() -> Iterator:
    """The tests' Redis database, emptied before and after the test."""
    assert settings.TESTING, "refusing to flush a Redis database outside a test run"
    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


def worker_env() -> dict[str, str]:
    """The environment of a worker process that works on the test database, test Redis and test model dir."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "app.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # works without a .env too (a fresh clone running pytest)
        "BACKFORTH_TRAINED_MODELS_DIR": str(settings.TRAINED_MODELS_DIR),
        "BACKFORTH_LOG_DIR": str(settings.LOG_DIR),  # its errors go to the test run's log, not var/log
    }
    env.pop("PYTEST_VERSION", None)  # the worker is not a test process: it uses the URLs given here
    return env


def worker_process(*queues: str) -> subprocess.Popen:
    """A long-running (not burst) worker, for tests that kill it."""
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            *(queues or ("gpu",)),
            "--worker-class",
            "generation.worker.BackforthWorker",
        ],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def burst_worker(transactional_db, redis_conn) -> Callable[..., subprocess.CompletedProcess]:
    """Run a real RQ worker in its own process, on the test database and test Redis, until the queues are empty."""

    def run(*queues: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = worker_env()
        cmd = [
            sys.executable,
            "manage.py",
            "rqworker",
            "--burst",
            "--worker-class",
            "generation.worker.BackforthWorker",
            *(queues or ("gpu", "default")),
        ]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=True)

    return run


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not here (tests on real data need ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The embedded model, prepared once (make test prepares it before the suite)."""
    from generation.backends.embedded import convert_embedded_model, is_model_dir

    path = Path(settings.EMBEDDED_MODEL_DIR)
    if not is_model_dir(path):
        convert_embedded_model(path)
    return path


@pytest.fixture(scope="session")
def web_passages() -> list[str]:
    """Real web text: passages of the C4 sample in ../shared/data (or the demo corpus when it is absent)."""
    import gzip
    import json

    from generation.corpus.text import split_passages

    c4 = SHARED_DATA / "web" / "c4_en_sample_1000.json.gz"
    if c4.is_file():
        with gzip.open(c4, "rt", encoding="utf-8") as f:
            docs = [json.loads(line)["text"] for _, line in zip(range(60), f, strict=False)]
    else:
        from pydoc_data.topics import topics

        docs = list(topics.values())[:20]
    return [p for d in docs for p in split_passages(d, min_chars=300, max_chars=1500)]
