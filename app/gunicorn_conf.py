"""gunicorn's settings for the web app: `gunicorn -c app/gunicorn_conf.py app.wsgi`, as scripts/serve.sh runs it
in production and bench.review runs it to measure the review queue over HTTP (one file, so the bench measures
what is deployed).

Processes sized to the cores this process may use: BACKFORTH_WEB_WORKERS (default two per core) sync workers, each
serving one request at a time. BACKFORTH_WEB_THREADS above 1 makes them threaded (gunicorn's gthread worker).
Why sync and two per core: scripts/serve.sh has the figures (`make bench`, review.decide_next_p95_ms serve_sweep):
sync 4x1 had the best p95 with the most decisions/s of the settings tried on 2 cores.
"""

from __future__ import annotations

import os

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

worker_class = "sync"
workers = int(os.environ.get("BACKFORTH_WEB_WORKERS") or 2 * CORES)
threads = int(os.environ.get("BACKFORTH_WEB_THREADS") or 1)
