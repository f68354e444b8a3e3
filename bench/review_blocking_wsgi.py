"""BENCHMARK BASELINE ONLY, never deployed: the web app (app.wsgi) with the review queue's claim made blocking.

`bench.review` starts its baseline server as `gunicorn -c app/gunicorn_conf.py bench.review_blocking_wsgi`: the same
app, settings and serving as production, except that every claim of a new item (`annotation.queue._claim`, behind
queue_next and queue_decide_next) takes its row with a plain `FOR UPDATE` (`skip_locked=False`), waiting for
whoever locked it first, instead of `FOR UPDATE SKIP LOCKED`. Same order, same checks, so it assigns correctly;
only the claim differs. Patched here, in the server process, so production code carries no benchmark switch.
"""

from __future__ import annotations

from typing import Any

from app.wsgi import application

__all__ = ["application"]


def _blocking_claim() -> None:
    from annotation import queue  # after app.wsgi: it sets Django up, which the queue's models need

    claim = queue._claim

    def blocking(*args: Any, **kwargs: Any) -> Any:
        return claim(*args, **{**kwargs, "skip_locked": False})

    queue._claim = blocking  # type: ignore[assignment]


_blocking_claim()
