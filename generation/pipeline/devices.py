"""Devices and processes, as pure decisions: which GPUs a process sees, how `scripts/serve.sh` splits a host's GPUs
(or cores) into RQ workers, whether a fine-tune runs in the worker or under `accelerate launch`, the launch command,
and the tensor-parallel check. No I/O: generation/backends/devices.py asks the machine and calls these.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_SMI_GPU = re.compile(r"^GPU (\d+):")
_CUDA_ID = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")
LaunchMode = Literal["auto", "accelerate", "inprocess"]
LAUNCH_MODES: tuple[LaunchMode, ...] = ("auto", "accelerate", "inprocess")
#: The module `accelerate launch` runs in every training process (its `main`).
TRAIN_ENTRY_MODULE = "generation.backends.finetune"


def parse_nvidia_smi(listing: str) -> list[str]:
    """The GPU indices in `nvidia-smi -L` output ("GPU 0: NVIDIA H200 (UUID: GPU-…)"); MIG lines are not GPUs."""
    return [m.group(1) for line in listing.splitlines() if (m := _SMI_GPU.match(line.strip()))]


def visible_gpus(cuda_visible_devices: str | None, detected: Sequence[str]) -> list[str]:
    """The GPUs a process sees: all `detected` ones when CUDA_VISIBLE_DEVICES is unset, else the ids it lists, up
    to the first one CUDA would not accept (it ignores the rest: "0,-1,1" is GPU 0 only). None on a machine
    without a GPU (no driver, nothing detected), whatever the variable says."""
    if not detected:
        return []
    if cuda_visible_devices is None:
        return list(detected)
    out: list[str] = []
    for entry in cuda_visible_devices.split(","):
        entry = entry.strip()
        if not _CUDA_ID.match(entry) or (entry.isdigit() and entry not in detected) or entry in out:
            break
        out.append(entry)
    return out


@dataclass(frozen=True)
class WorkerSlot:
    """One RQ worker of a host: its label (pid file, log and worker name), the GPUs it owns (CUDA_VISIBLE_DEVICES;
    empty: none) and the cores it is pinned to (empty: not pinned)."""

    label: str
    gpus: tuple[str, ...] = ()
    cores: tuple[int, ...] = ()

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(self.gpus)


@dataclass(frozen=True)
class WorkerPlan:
    slots: tuple[WorkerSlot, ...]
    notes: tuple[str, ...] = ()


def cpu_list(cores: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (taskset's syntax)."""
    parts: list[list[int]] = []
    for c in sorted(cores):
        if parts and c == parts[-1][-1] + 1:
            parts[-1].append(c)
        else:
            parts.append([c])
    return ",".join(f"{p[0]}-{p[-1]}" if len(p) > 1 else str(p[0]) for p in parts)


def _gpu_label(gpus: Sequence[str], index: int) -> str:
    return "gpu" + "-".join(gpus) if all(g.isdigit() for g in gpus) else f"gpuw{index}"


def plan_workers(
    *, gpus: Sequence[str], cores: Sequence[int], gpus_per_worker: int = 1, workers: int | None = None
) -> WorkerPlan:
    """How a host's RQ workers share it. With GPUs: one worker per `gpus_per_worker` of them, in order (GPUs left
    over are named in a note), at most `workers` of them when given. Without: `workers` CPU workers (default 1);
    several of them get the cores in equal contiguous shares, so their engines do not fight over the same cores.
    ValueError names the setting that cannot be met."""
    if gpus_per_worker < 1:
        raise ValueError(f"BACKFORTH_GPUS_PER_WORKER must be a positive integer, got {gpus_per_worker}")
    if workers is not None and workers < 1:
        raise ValueError(f"BACKFORTH_WORKERS must be a positive integer, got {workers}")
    notes: list[str] = []
    if gpus:
        usable = len(gpus) - len(gpus) % gpus_per_worker
        if usable == 0:
            raise ValueError(f"BACKFORTH_GPUS_PER_WORKER={gpus_per_worker}, but this host has {len(gpus)} GPU(s)")
        groups = [tuple(gpus[i : i + gpus_per_worker]) for i in range(0, usable, gpus_per_worker)]
        if workers is not None and workers > len(groups):
            raise ValueError(
                f"BACKFORTH_WORKERS={workers}, but {len(gpus)} GPU(s) in groups of {gpus_per_worker} make "
                f"{len(groups)} worker(s)"
            )
        if usable < len(gpus):
            notes.append(f"GPU(s) {','.join(gpus[usable:])} left unused: not a full group of {gpus_per_worker}")
        chosen = groups[: workers or len(groups)]
        if len(chosen) < len(groups):
            spare = [g for group in groups[len(chosen) :] for g in group]
            notes.append(f"GPU(s) {','.join(spare)} left unused: BACKFORTH_WORKERS={workers}")
        return WorkerPlan(tuple(WorkerSlot(_gpu_label(g, i), g) for i, g in enumerate(chosen)), tuple(notes))
    n = workers or 1
    if n == 1:
        return WorkerPlan((WorkerSlot("cpu0"),))
    if n > len(cores):
        notes.append(f"{n} CPU workers on {len(cores)} core(s): not pinned, they share every core")
        return WorkerPlan(tuple(WorkerSlot(f"cpu{i}") for i in range(n)), tuple(notes))
    ordered = sorted(cores)
    size, extra = divmod(len(ordered), n)
    slots, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        slots.append(WorkerSlot(f"cpu{i}", cores=tuple(ordered[start:end])))
        start = end
    return WorkerPlan(tuple(slots), tuple(notes))


def plan_lines(plan: WorkerPlan) -> list[str]:
    """The plan as tab-separated lines for scripts/serve.sh: "note<TAB>text", and "worker<TAB>label<TAB>CUDA ids
    <TAB>cores<TAB>threads" ("-" where a worker has none: bash's `read` would merge empty fields)."""
    lines = [f"note\t{n}" for n in plan.notes]
    for s in plan.slots:
        cores = cpu_list(s.cores) if s.cores else "-"
        threads = str(len(s.cores)) if s.cores else "-"
        lines.append(f"worker\t{s.label}\t{s.cuda_visible_devices or '-'}\t{cores}\t{threads}")
    return lines


# --- fine-tuning: in the worker, or under `accelerate launch` -------------------------------------------------


def training_processes(mode: str, gpus: int) -> int:
    """How many training processes a fine-tune runs in, 0 meaning in the worker's own process. `auto`: one
    process per GPU under `accelerate launch` when the worker owns more than one, else in-process; `accelerate`:
    always launched (one process per GPU, or one on a CPU), e.g. for DeepSpeed offload on one GPU; `inprocess`:
    never."""
    if mode not in LAUNCH_MODES:
        raise ValueError(f"BACKFORTH_FINETUNE_LAUNCH must be one of {', '.join(LAUNCH_MODES)}, got {mode!r}")
    if mode == "inprocess" or (mode == "auto" and gpus <= 1):
        return 0
    return max(1, gpus)


def accelerate_command(
    *,
    python: str,
    processes: int,
    request: str,
    port: int,
    config_file: str | None = None,
    module: str = TRAIN_ENTRY_MODULE,
) -> list[str]:
    """`accelerate launch` (as `python -m accelerate.commands.launch`, so it is this interpreter's accelerate)
    running `module` in `processes` processes. Without a config file: DDP (`--multi_gpu`) over more than one
    process, a plain process for one; precision is the Trainer's (bf16 where the GPU has it). With one (FSDP,
    DeepSpeed): the file decides the strategy and precision, the process count still comes from the worker's GPUs.
    `port` is the rendezvous port: two workers of one host training at once must not share one."""
    if processes < 1:
        raise ValueError(f"need at least one training process, got {processes}")
    cmd = [python, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    if config_file:
        cmd += ["--config_file", config_file]
    else:
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        if processes > 1:
            cmd.append("--multi_gpu")
    cmd += ["--main_process_port", str(port), "-m", module, request]
    return cmd


# --- tensor parallelism -----------------------------------------------------------------------------------------


def tensor_parallel_problem(size: int, gpus: int | None, where: str = "this worker") -> str | None:
    """Why `tensor_parallel_size` cannot run where `gpus` GPUs are (None: unknown, nothing to check), or None when
    it can. It splits each layer over that many GPUs of one worker, so it needs at least that many."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        return f"tensor_parallel_size must be a positive integer, got {size!r}"
    if gpus is None or size == 1 or size <= gpus:
        return None
    if gpus == 0:
        return f"tensor_parallel_size {size} needs {size} GPUs in one worker, and {where} has no GPU"
    return (
        f"tensor_parallel_size {size} needs {size} GPUs in one worker, and {where} has {gpus}: give each worker "
        f"{size} (BACKFORTH_GPUS_PER_WORKER={size} in scripts/serve.sh)"
    )
