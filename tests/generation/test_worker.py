"""Two real RQ workers (generation.worker.BackforthWorker, as scripts/serve.sh starts one per GPU) on one round, on
the real test database and Redis, with the fake backend for speed: both take chunks of the same stage, and no chunk
runs twice, even when every chunk is delivered twice (as a reconcile after a Redis hiccup may)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

import django_rq
import pytest
from django.urls import reverse
from rq import Worker
from rq.job import Job as RQJob
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from generation.models import Job, ModelVersion, Round
from generation.services.corpus import corpus_add_passages
from generation.services.jobs import enqueue_job
from generation.services.rounds import round_create, stage_launch
from tests.conftest import ROOT, worker_env
from tests.factories import CorpusFactory, UserFactory

HOST = socket.gethostname()
PASSAGES = [
    "Honeybees tell each other where flowers are with a waggle dance.",
    "Volcanic soil is rich in minerals, so farmers grow coffee on old slopes.",
    "Roman aqueducts carried water across valleys on stone arches.",
    "Glaciers carve deep valleys as they move slowly downhill.",
    "Lighthouses guide ships along dangerous coasts at night.",
    "Owls hunt at night on silent feathers and sharp hearing.",
    "Octopuses change colour in a fraction of a second to hide.",
    "Sourdough bread rises thanks to wild yeast and lactic bacteria.",
]


@pytest.fixture
def two_workers(tmp_path, transactional_db, redis_conn) -> Iterator[list[str]]:
    """Two long-running workers on queues gpu and default, named as serve.sh names them, both idle (blocked on
    Redis) before the test enqueues anything, so the first two jobs go one to each."""
    names = [f"backforth-{HOST}-cpu{i}-{os.getpid()}" for i in range(2)]
    # No maintenance (reconcile) while the test runs: the test decides what is delivered, and when.
    env = {**worker_env(), "BACKFORTH_RECONCILE_INTERVAL": "3600", "BACKFORTH_ALLOW_FAKE_BACKEND": "1"}
    procs = []
    for name in names:
        log = (tmp_path / f"{name}.log").open("w")
        cmd = [sys.executable, "manage.py", "rqworker", "gpu", "default"]
        cmd += ["--worker-class", "generation.worker.BackforthWorker", "--name", name]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        wait_for(
            lambda: sorted(w.name for w in Worker.all(connection=redis_conn) if w.get_state() == "idle") == names,
            90,
            "both workers idle",
        )
        yield names
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def rq_outcomes(conn) -> Counter[tuple[int, str]]:
    """(Job row id, what run_job returned) for every RQ delivery that ran: "done", or "skipped" when the row was
    already taken."""
    out: Counter[tuple[int, str]] = Counter()
    for name in ("gpu", "default"):
        registry = FinishedJobRegistry(queue=django_rq.get_queue(name))
        for rq_id in registry.get_job_ids():
            rq_job = RQJob.fetch(rq_id, connection=conn, serializer=JSONSerializer)
            out[(rq_job.args[0], rq_job.return_value())] += 1
    return out


def test_two_workers_share_the_chunks_of_a_stage_and_none_runs_twice(two_workers, redis_conn, tmp_path, client):
    model = tmp_path / "fake-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    corpus = CorpusFactory()
    corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in PASSAGES])
    base = ModelVersion.objects.create(role="base", path=str(model), name="fake")
    config = {
        "backend": "fake",
        "chunk_size": 1,  # 8 augment chunks
        "batch_size": 1,
        "sample_size": len(PASSAGES),
        "curation": {"threshold": None, "top_k": 4},
        "review": {"audit_fraction": 0},
    }
    rnd = round_create(corpus=corpus, base_model=base, config=config)
    augment = stage_launch(round=rnd, stage="augment")  # enqueued as the launch commits
    for job in augment:  # and every chunk once more: a second delivery must find its row taken
        enqueue_job(job)
    wait_for(lambda: Round.objects.get(pk=rnd.pk).state in ("review", "failed"), 120, "the round to reach review")

    rnd.refresh_from_db()
    assert rnd.state == Round.State.REVIEW, rnd.error
    jobs = list(rnd.jobs.order_by("stage", "chunk"))
    stages = Counter(j.stage for j in jobs)
    assert stages == {"augment": 8, "curate": 8, "rewrite": 4}
    assert all(j.status == Job.Status.DONE and j.attempts == 1 for j in jobs), [(j, j.attempts) for j in jobs]
    # Both workers did work on the same stage, and the rows say which (the names carry the host, as serve.sh's do).
    by_worker = Counter(j.worker for j in jobs if j.stage == "augment")
    assert set(by_worker) == set(two_workers), by_worker
    assert sum(by_worker.values()) == 8 and all(j.worker.startswith(f"backforth-{HOST}-") for j in jobs)
    # Exactly once: each augment chunk was delivered twice, ran once and was skipped once; the rest ran once.
    outcomes = rq_outcomes(redis_conn)
    for job in jobs:
        expected = {"done": 1, "skipped": 1} if job.stage == "augment" else {"done": 1}
        assert {what: n for (pk, what), n in outcomes.items() if pk == job.pk} == expected, job
    # One candidate per segment, each augmented once (the unique key would refuse a second one anyway).
    segments = set(corpus.segments.values_list("id", flat=True))
    candidates = list(rnd.candidates.values_list("segment_id", flat=True))
    assert len(candidates) == len(segments) == 8 and set(candidates) == segments
    assert sum(j.result["items"] for j in jobs if j.stage == "augment") == 8
    assert rnd.candidates.filter(status="kept").count() == 4

    client.force_login(UserFactory(role="admin"))
    status = client.get(reverse("status")).content.decode()
    assert all(name in status for name in two_workers) and status.count("none (CPU)") == 2
    assert f"<td>{HOST}</td>" in status
