"""Jobs that are not a round's: the health check and a corpus import (queue `default`)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from generation.models import Corpus, Job
from generation.services.corpus import REFUSED, corpus_import
from generation.services.jobs import PermanentJobError, job_progress


def ping(job: Job) -> dict[str, Any]:
    """Health check: proves a worker can take a job from Redis and write to PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        (db_version,) = cursor.fetchone()
    return {"worker": job.worker, "host": socket.gethostname(), "pid": os.getpid(), "db": db_version.split(",")[0]}


def ingest(job: Job) -> dict[str, Any]:
    """Import uploaded files into a corpus (queue `default`), creating the corpus in the import's transaction; a
    refused import (a bad file, or nothing kept) fails the job permanently with the file and line, leaves no corpus
    and no segment behind, and its uploaded files are deleted."""
    payload = job.payload
    # Jobs queued before the corpus was created by the job name it by id.
    name = payload.get("corpus_name") or Corpus.objects.get(pk=payload["corpus_id"]).name
    user = get_user_model().objects.filter(pk=payload.get("user_id")).first() if payload.get("user_id") else None
    try:
        corpus, report = corpus_import(
            name=name,
            paths=payload["paths"],
            user=user,
            on_document=lambda n: job_progress(job=job, done=0, total=0) if n % 500 == 0 else None,
        )
    except REFUSED as exc:
        _remove_uploads(payload["paths"])
        raise PermanentJobError(f"{exc} — nothing was imported") from exc
    return {"corpus_id": corpus.pk, **{k: v for k, v in report.as_dict().items() if k != "examples"}}


def _remove_uploads(paths: list[str]) -> None:
    """Delete the uploaded files of a refused import (only files under DATA_DIR/uploads, and their folder)."""
    root = (Path(settings.DATA_DIR) / "uploads").resolve()
    for raw in paths:
        path = Path(raw).resolve()
        if path.parent.parent != root:
            continue
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: another file of the upload is still there
            path.parent.rmdir()
