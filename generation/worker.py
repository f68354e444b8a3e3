"""The RQ worker Backforth runs: one process keeps its model loaded across jobs, and reconciles.

`SimpleWorker` runs jobs in the worker process itself (no fork per job), so the backend loaded by the first
chunk serves every later one (generation/backends/registry.py). While idle it wakes every
`maintenance_interval` seconds to run `jobs_reconcile`, so work lost to a flushed Redis or a killed worker is
put back without anyone noticing.

A worker owns the GPUs in its CUDA_VISIBLE_DEVICES (scripts/serve.sh sets them, one worker per GPU or per group of
BACKFORTH_GPUS_PER_WORKER). It records them in its RQ registration (`WORKER_GPUS_FIELD`), where the status page
shows them and a launch checks a round's tensor_parallel_size against them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import close_old_connections
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

from generation.backends.devices import WORKER_GPUS_FIELD, visible_gpus
from generation.backends.registry import release
from generation.services.jobs import jobs_reconcile

logger = logging.getLogger(__name__)


class BackforthWorker(SimpleWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", int(os.environ.get("BACKFORTH_RECONCILE_INTERVAL", "30")))
        # Jobs are JSON (settings.RQ_SERIALIZER), whatever `rqworker --serializer` says: never unpickle.
        kwargs["serializer"] = JSONSerializer
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        # RQ blocks for ~400 s waiting for a job; wake up often enough to reconcile on time.
        return max(1, min(self.worker_ttl - 15, self.maintenance_interval))

    def register_birth(self) -> None:
        super().register_birth()
        gpus = visible_gpus()
        self.connection.hset(self.key, WORKER_GPUS_FIELD, ",".join(gpus))
        logger.info("worker %s: %s", self.name, f"GPUs {','.join(gpus)}" if gpus else "no GPU (CPU worker)")

    def work(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return super().work(*args, **kwargs)
        finally:
            # vLLM's engine runs in a child process that waits for its parent: shut it down before Python's
            # exit handlers join it, or the worker never exits.
            release()

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        close_old_connections()
        try:
            jobs_reconcile(stale_after=float(os.environ.get("BACKFORTH_STALE_AFTER", "60")))
        except Exception:  # maintenance must never kill the worker
            logger.exception("reconcile failed")
        finally:
            close_old_connections()
