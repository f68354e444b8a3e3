"""Shared helpers for `make bench`: real data, results file, timing."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SHARED_WEB = ROOT.parent / "shared" / "data" / "web"


def start_worker(queue: str = "gpu") -> subprocess.Popen:
    """A BackforthWorker in its own process group, so `stop_worker` takes the vLLM engine it spawns with it."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", queue, "--worker-class", "generation.worker.BackforthWorker"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
