"""What this machine has: its GPUs (`nvidia-smi -L`, then CUDA_VISIBLE_DEVICES) and cores, without importing torch.

The decisions are pure (generation/pipeline/devices.py). `python -m generation.backends.devices plan` prints how
scripts/serve.sh splits this host into RQ workers (BACKFORTH_GPUS_PER_WORKER, BACKFORTH_WORKERS).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from generation.pipeline import devices

#: The field of an RQ worker's registration (its Redis hash) that lists its GPUs ("0,1"; empty: a CPU worker),
#: written by generation.worker.BackforthWorker.
WORKER_GPUS_FIELD = "backforth_gpus"


@functools.cache
def detected_gpus() -> tuple[str, ...]:
    """The indices of the host's GPUs as the driver lists them; none without nvidia-smi or when it fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(devices.parse_nvidia_smi(out))


def visible_gpus() -> list[str]:
    """The GPUs this process may use (its CUDA_VISIBLE_DEVICES, as serve.sh sets it per worker)."""
    return devices.visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), detected_gpus())


def gpu_count() -> int:
    return len(visible_gpus())


def _env_int(name: str) -> int | None:
    """An integer setting; None when unset or empty (.env may hold `NAME=`)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None


def worker_plan() -> devices.WorkerPlan:
    """This host's RQ workers, from its GPUs (or cores) and the BACKFORTH_GPUS_PER_WORKER / BACKFORTH_WORKERS
    settings."""
    per_worker = _env_int("BACKFORTH_GPUS_PER_WORKER")
    return devices.plan_workers(
        gpus=visible_gpus(),
        cores=sorted(os.sched_getaffinity(0)),
        gpus_per_worker=1 if per_worker is None else per_worker,
        workers=_env_int("BACKFORTH_WORKERS"),
    )


def main(argv: list[str]) -> int:
    if argv != ["plan"]:
        print("usage: python -m generation.backends.devices plan", file=sys.stderr)
        return 2
    try:
        plan = worker_plan()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("\n".join(devices.plan_lines(plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
