"""scripts/serve.sh: one RQ worker per GPU (or group of GPUs), or N CPU workers pinned to their share of the cores,
each with its own pid file and log; `status` and `stop` handle them all. Real workers on the test database and
Redis; the GPUs are an `nvidia-smi` stand-in (this machine has none), the workers only record what they own."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Worker

from generation.backends.devices import WORKER_GPUS_FIELD
from generation.pipeline.devices import cpu_list, plan_workers
from tests.conftest import ROOT, worker_env
from tests.generation.backends.test_devices import FOUR_GPUS, fake_nvidia_smi

HOST = socket.gethostname()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory others may enter (pytest's own tmp dirs are 0700), as serve.sh's service user needs."""
    path = Path(tempfile.mkdtemp(prefix="backforth-serve-test-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/serve.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def allowed_cpus(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))


def live_workers(conn, count: int, timeout: float = 90) -> list[Worker]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = Worker.all(connection=conn)
        if len(workers) >= count:
            return sorted(workers, key=lambda w: w.name)
        time.sleep(0.3)
    raise AssertionError(f"{count} workers did not register within {timeout} s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").is_dir() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in worker_env().items() if not k.startswith(("BACKFORTH_GPUS", "BACKFORTH_WORKER"))}
    return {**env, "BACKFORTH_DATA_DIR": str(data_dir), **extra}


def test_plan_names_the_workers_start_would_run(tmp_path, data_dir):
    smi = fake_nvidia_smi(tmp_path / "bin", FOUR_GPUS)
    env = base_env(data_dir, PATH=f"{smi}:{os.environ['PATH']}", BACKFORTH_GPUS_PER_WORKER="3")
    result = serve("plan", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "note\tGPU(s) 3 left unused: not a full group of 3\nworker\tgpu0-1-2\t0,1,2\t-\t-\n"
    bad = serve("plan", env={**env, "BACKFORTH_GPUS_PER_WORKER": "8"})
    assert bad.returncode == 1
    assert "BACKFORTH_GPUS_PER_WORKER=8, but this host has 4 GPU(s)" in bad.stderr
    assert "cannot plan the workers" in bad.stderr


def test_one_worker_per_group_of_gpus_each_with_its_devices_pid_file_and_log(
    tmp_path, data_dir, transactional_db, redis_conn
):
    smi = fake_nvidia_smi(tmp_path / "bin", FOUR_GPUS)
    env = base_env(data_dir, PATH=f"{smi}:{os.environ['PATH']}", BACKFORTH_GPUS_PER_WORKER="2")
    try:
        started = serve("workers", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        pids = {label: int((data_dir / "run" / f"worker-{label}.pid").read_text()) for label in ("gpu0-1", "gpu2-3")}
        for label, pid in pids.items():
            assert f"worker {label} on queues gpu (pid {pid}, user " in started.stdout
            assert f"log {data_dir}/log/worker-{label}.log)" in started.stdout
        assert environ(pids["gpu0-1"])["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert environ(pids["gpu2-3"])["CUDA_VISIBLE_DEVICES"] == "2,3"
        assert environ(pids["gpu2-3"])["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID", "nvidia-smi's numbering"
        workers = live_workers(redis_conn, 2)
        assert [w.name.rsplit("-", 1)[0] for w in workers] == [f"backforth-{HOST}-gpu0-1", f"backforth-{HOST}-gpu2-3"]
        assert [w.queue_names() for w in workers] == [["gpu"], ["gpu"]], "a worker-only host takes model work only"
        assert [redis_conn.hget(w.key, WORKER_GPUS_FIELD) for w in workers] == [b"0,1", b"2,3"]
        assert {w.pid for w in workers} == set(pids.values())

        status = serve("status", env=env).stdout
        assert "web: stopped" in status
        assert f"worker-gpu0-1: running (pid {pids['gpu0-1']}" in status
        assert f"worker-gpu2-3: running (pid {pids['gpu2-3']}" in status
        again = serve("workers", env=env)
        assert again.returncode == 0 and "2 worker(s) already running" in again.stdout
    finally:
        stopped = serve("stop", env=env)
    assert "stopped worker-gpu0-1" in stopped.stdout and "stopped worker-gpu2-3" in stopped.stdout
    assert not any(alive(pid) for pid in pids.values())
    assert not list((data_dir / "run").glob("worker*.pid"))


def test_cpu_workers_are_pinned_to_their_share_of_the_cores(data_dir, transactional_db, redis_conn):
    env = base_env(data_dir, CUDA_VISIBLE_DEVICES="", BACKFORTH_WORKERS="2", BACKFORTH_WORKER_QUEUES="gpu,default")
    plan = plan_workers(gpus=[], cores=sorted(os.sched_getaffinity(0)), workers=2)
    try:
        started = serve("workers", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        for slot in plan.slots:
            pid = int((data_dir / "run" / f"worker-{slot.label}.pid").read_text())
            if slot.cores:  # two or more cores here: each worker on its own ones, its threads sized to them
                assert allowed_cpus(pid) == cpu_list(slot.cores)  # the kernel's list syntax is taskset's
                assert environ(pid)["OMP_NUM_THREADS"] == str(len(slot.cores))
        workers = live_workers(redis_conn, 2)
        assert [w.name.rsplit("-", 1)[0] for w in workers] == [f"backforth-{HOST}-cpu0", f"backforth-{HOST}-cpu1"]
        assert [w.queue_names() for w in workers] == [["gpu", "default"], ["gpu", "default"]]
        assert [redis_conn.hget(w.key, WORKER_GPUS_FIELD) for w in workers] == [b"", b""]
    finally:
        stopped = serve("stop", env=env)
    assert "stopped worker-cpu0" in stopped.stdout and "stopped worker-cpu1" in stopped.stdout
