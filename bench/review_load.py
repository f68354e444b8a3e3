"""The review benchmark's load harness (`bench.review`): N annotators at once, each on its own thread (what each
one does is passed in: bench.review_http.http_annotator, a browser on the real server), what a phase measured
(latencies, statuses, answer sizes, errors, duplicate decisions) and the queries of one decide + next round trip.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PHASE_SECONDS = float(os.environ.get("BENCH_REVIEW_SECONDS", "40"))
MAX_DECISIONS = int(os.environ.get("BENCH_REVIEW_DECISIONS", "300"))
HX = {"HX-Request": "true"}
_FIELD = re.compile(r'name="(candidate_id|version)" value="(\d+)"')


@dataclass
class Phase:
    """What one run of N concurrent annotators measured."""

    name: str
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    duplicates: int = 0
    reviews: int = 0
    queries_per_request: int = 0
    queries: list[str] = field(default_factory=list)
    slowest_queries: list[str] = field(default_factory=list)
    serve: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float, status: int, size: int = 0) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.sizes.append(size)
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
            "answer_bytes_mean": round(sum(self.sizes) / len(self.sizes)) if self.sizes else 0,
            "errors": len(self.errors),
            "duplicates": self.duplicates,
            "reviews_written": self.reviews,
            **{f"{part}_cpu_ms_per_decision": round(1000 * t / len(ms), 2) for part, t in self.cpu.items() if ms},
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


def fields(html: str) -> tuple[int, int] | None:
    found = dict(_FIELD.findall(html))
    return (int(found["candidate_id"]), int(found["version"])) if "candidate_id" in found else None


def decision(i: int, candidate_id: int, version: int) -> dict[str, Any]:
    """Accept, and reject as unsafe every 5th."""
    if i % 5 == 4:
        return {"candidate_id": candidate_id, "version": version, "action": "reject", "reason": "unsafe"}
    return {"candidate_id": candidate_id, "version": version, "action": "accept"}


def run_phase(
    name: str, rnd: Any, users: list[Any], worker: Callable[..., None], on_start: Callable[[], None] = lambda: None
) -> Phase:
    """All annotators at once (a barrier after each has signed in and loaded its first item), each on its own
    thread; `worker(user, rnd, barrier, phase, clock)` is one annotator; `on_start` runs as they set off."""
    from django.db import connection

    phase = Phase(name)
    clock: list[float] = []

    def set_off() -> None:
        on_start()
        clock.append(time.perf_counter())

    start = threading.Barrier(len(users), action=set_off)

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
    """Queries of one more decide + next round trip, alone (after the run), through the views in this process."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    item = fields(client.get(f"/review/{rnd.number}/", headers=HX).content.decode())
    if item is None:
        return
    with CaptureQueriesContext(connection) as ctx:
        client.post(f"/review/{rnd.number}/decide/", decision(0, *item), headers=HX)
    phase.queries_per_request = len(ctx.captured_queries)
    phase.queries = [q["sql"][:90] for q in ctx.captured_queries]
    slow = sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:3]
    phase.slowest_queries = [f"{float(q['time']) * 1000:.1f} ms: {q['sql'][:160]}" for q in slow]
