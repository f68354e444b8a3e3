"""What the machine has (generation/backends/devices.py), read through `nvidia-smi -L` (a stand-in script here: this
machine has no GPU) and CUDA_VISIBLE_DEVICES; the worker plan serve.sh reads; the backends' tensor-parallel check."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generation.backends import devices, registry
from generation.backends.base import BackendError

ROOT = Path(__file__).resolve().parents[3]
FOUR_GPUS = "".join(
    f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-00000000000{i})\n" for i in range(4)
)


def fake_nvidia_smi(folder: Path, listing: str, status: int = 0) -> Path:
    """A folder holding an `nvidia-smi` that prints `listing` for `-L` (put it first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] || exit 2\nprintf '%s' '{listing}'\nexit {status}\n")
    script.chmod(0o755)
    return folder


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """Call with an `nvidia-smi -L` listing: this process then sees those GPUs (the cache is cleared around)."""

    calls = itertools.count()

    def install(listing: str = FOUR_GPUS, status: int = 0) -> None:
        folder = fake_nvidia_smi(tmp_path / f"bin{next(calls)}", listing, status)
        monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
        devices.detected_gpus.cache_clear()

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    install("", status=9)  # start from a machine without a driver, whatever this one has
    yield install
    devices.detected_gpus.cache_clear()


def test_gpus_come_from_nvidia_smi_and_cuda_visible_devices(gpus, monkeypatch):
    assert devices.detected_gpus() == () and devices.gpu_count() == 0, "no driver: nvidia-smi fails"
    gpus(FOUR_GPUS)
    assert devices.detected_gpus() == ("0", "1", "2", "3")
    assert devices.visible_gpus() == ["0", "1", "2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices.visible_gpus() == ["2", "3"] and devices.gpu_count() == 2
    gpus("GPU 0: listed, but the command failed\n", status=9)
    assert devices.detected_gpus() == () and devices.gpu_count() == 0


def plan(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFORTH_", "CUDA_VISIBLE"))}
    return subprocess.run(
        [sys.executable, "-m", "generation.backends.devices", "plan"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_plan_serve_sh_reads(tmp_path):
    smi = fake_nvidia_smi(tmp_path / "bin", FOUR_GPUS)
    path = f"{smi}:{os.environ['PATH']}"
    pairs = plan({"PATH": path, "BACKFORTH_GPUS_PER_WORKER": "2"})
    assert (pairs.returncode, pairs.stdout) == (0, "worker\tgpu0-1\t0,1\t-\t-\nworker\tgpu2-3\t2,3\t-\t-\n")
    limited = plan({"PATH": path, "CUDA_VISIBLE_DEVICES": "1,3", "BACKFORTH_GPUS_PER_WORKER": ""})
    assert limited.stdout == "worker\tgpu1\t1\t-\t-\nworker\tgpu3\t3\t-\t-\n", "an empty setting is the default"
    bad = plan({"PATH": path, "BACKFORTH_WORKERS": "two"})
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        1,
        "",
        "BACKFORTH_WORKERS must be a positive integer, got 'two'\n",
    )
    cpu = plan({"BACKFORTH_WORKERS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert (cpu.returncode, cpu.stdout) == (0, "worker\tcpu0\t-\t-\t-\n")


@pytest.fixture
def model_path(tmp_path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def test_vllm_refuses_a_tensor_parallel_size_the_worker_cannot_hold(gpus, model_path, monkeypatch):
    with pytest.raises(BackendError) as no_gpu:
        registry.load_backend("vllm", model_path, batch_size=8, tensor_parallel_size=2)
    assert str(no_gpu.value) == (
        "tensor_parallel_size 2 needs 2 GPUs in one worker, and this worker has no GPU (CUDA_VISIBLE_DEVICES=unset)"
    )
    assert no_gpu.value.permanent
    gpus(FOUR_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # a worker of scripts/serve.sh's default plan: one GPU
    with pytest.raises(BackendError) as one_gpu:
        registry.load_backend("vllm", model_path, tensor_parallel_size=2)
    assert str(one_gpu.value) == (
        "tensor_parallel_size 2 needs 2 GPUs in one worker, and this worker has 1: give each worker 2 "
        "(BACKFORTH_GPUS_PER_WORKER=2 in scripts/serve.sh) (CUDA_VISIBLE_DEVICES=1)"
    )


@pytest.mark.model
def test_the_transformers_backend_ignores_tensor_parallelism_and_says_so(model_dir, caplog):
    with caplog.at_level(logging.INFO, logger="generation.backends.registry"):
        backend = registry.load_backend("transformers", model_dir, batch_size=2, tensor_parallel_size=4)
    try:
        assert backend.name == "transformers"
        assert "transformers backend: tensor_parallel_size 4 ignored (it runs on one device)" in caplog.messages
    finally:
        backend.unload()
