"""Devices and processes as pure decisions (generation/pipeline/devices.py): GPUs a process sees, how serve.sh splits
a host into workers, in-process vs `accelerate launch` fine-tunes and their command, the tensor-parallel check."""

from __future__ import annotations

import pytest

from generation.pipeline import training
from generation.pipeline.config import RoundConfig
from generation.pipeline.devices import (
    WorkerPlan,
    WorkerSlot,
    accelerate_command,
    cpu_list,
    parse_nvidia_smi,
    plan_lines,
    plan_workers,
    tensor_parallel_problem,
    training_processes,
    visible_gpus,
)

SMI = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-4f1c0a2e-0000-0000-0000-000000000000)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-4f1c0a2e-0000-0000-0000-000000000001)
  MIG 3g.40gb     Device  0: (UUID: MIG-5b2a0f3c-0000-0000-0000-000000000000)
GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-4f1c0a2e-0000-0000-0000-000000000002)
GPU 3: NVIDIA H100 80GB HBM3 (UUID: GPU-4f1c0a2e-0000-0000-0000-000000000003)
"""
FOUR = ["0", "1", "2", "3"]


def test_the_gpus_of_nvidia_smi_are_its_gpu_lines():
    assert parse_nvidia_smi(SMI) == FOUR
    assert parse_nvidia_smi("") == []
    assert parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") == []


@pytest.mark.parametrize(
    ("env", "seen"),
    [
        (None, FOUR),
        ("2,3", ["2", "3"]),
        ("3,1", ["3", "1"]),
        (" 1 , 2 ", ["1", "2"]),
        ("", []),
        ("-1", []),
        ("0,-1,1", ["0"]),  # CUDA stops at the first id it does not accept
        ("1,7,2", ["1"]),  # GPU 7 does not exist here
        ("1,1", ["1"]),
        ("GPU-4f1c0a2e-0000-0000-0000-000000000003", ["GPU-4f1c0a2e-0000-0000-0000-000000000003"]),
    ],
)
def test_cuda_visible_devices_limits_what_a_process_sees(env, seen):
    assert visible_gpus(env, FOUR) == seen


def test_no_driver_means_no_gpu_whatever_the_variable_says():
    assert visible_gpus("0,1", []) == []
    assert visible_gpus(None, []) == []


def test_one_worker_per_gpu():
    plan = plan_workers(gpus=FOUR, cores=[0, 1])
    assert plan == WorkerPlan(
        (WorkerSlot("gpu0", ("0",)), WorkerSlot("gpu1", ("1",)), WorkerSlot("gpu2", ("2",)), WorkerSlot("gpu3", ("3",)))
    )
    assert [s.cuda_visible_devices for s in plan.slots] == ["0", "1", "2", "3"]


def test_gpus_per_worker_groups_them_in_order_and_names_what_is_left():
    assert plan_workers(gpus=FOUR, cores=[0], gpus_per_worker=2).slots == (
        WorkerSlot("gpu0-1", ("0", "1")),
        WorkerSlot("gpu2-3", ("2", "3")),
    )
    three = plan_workers(gpus=["0", "1", "2"], cores=[0], gpus_per_worker=2)
    assert three == WorkerPlan((WorkerSlot("gpu0-1", ("0", "1")),), ("GPU(s) 2 left unused: not a full group of 2",))
    # A process limited to GPUs 2 and 3 (CUDA_VISIBLE_DEVICES) plans over those only.
    assert plan_workers(gpus=["2", "3"], cores=[0]).slots == (WorkerSlot("gpu2", ("2",)), WorkerSlot("gpu3", ("3",)))
    uuids = plan_workers(gpus=["GPU-a", "GPU-b"], cores=[0], gpus_per_worker=2)
    assert uuids.slots == (WorkerSlot("gpuw0", ("GPU-a", "GPU-b")),)


def test_workers_caps_the_gpu_workers():
    capped = plan_workers(gpus=FOUR, cores=[0], workers=1, gpus_per_worker=2)
    assert capped == WorkerPlan((WorkerSlot("gpu0-1", ("0", "1")),), ("GPU(s) 2,3 left unused: BACKFORTH_WORKERS=1",))


def test_cpu_workers_share_the_cores_in_equal_contiguous_parts():
    assert plan_workers(gpus=[], cores=[0, 1]) == WorkerPlan((WorkerSlot("cpu0"),)), "one worker: every core, unpinned"
    assert plan_workers(gpus=[], cores=[0, 1, 2, 3, 4], workers=2).slots == (
        WorkerSlot("cpu0", cores=(0, 1, 2)),
        WorkerSlot("cpu1", cores=(3, 4)),
    )
    assert plan_workers(gpus=[], cores=[4, 5, 6, 7], workers=4).slots == tuple(
        WorkerSlot(f"cpu{i}", cores=(4 + i,)) for i in range(4)
    )
    crowded = plan_workers(gpus=[], cores=[0, 1], workers=3)
    assert crowded == WorkerPlan(
        (WorkerSlot("cpu0"), WorkerSlot("cpu1"), WorkerSlot("cpu2")),
        ("3 CPU workers on 2 core(s): not pinned, they share every core",),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": FOUR, "gpus_per_worker": 0}, "BACKFORTH_GPUS_PER_WORKER must be a positive integer, got 0"),
        ({"gpus": ["0", "1"], "gpus_per_worker": 4}, r"BACKFORTH_GPUS_PER_WORKER=4, but this host has 2 GPU\(s\)"),
        ({"gpus": FOUR, "workers": 5}, r"BACKFORTH_WORKERS=5, but 4 GPU\(s\) in groups of 1 make 4 worker\(s\)"),
        ({"gpus": [], "workers": 0}, "BACKFORTH_WORKERS must be a positive integer, got 0"),
    ],
)
def test_settings_that_cannot_be_met_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_workers(cores=[0, 1], **kwargs)


def test_the_plan_as_serve_sh_reads_it():
    plan = plan_workers(gpus=["0", "1", "2"], cores=[0, 1], gpus_per_worker=2)
    assert plan_lines(plan) == ["note\tGPU(s) 2 left unused: not a full group of 2", "worker\tgpu0-1\t0,1\t-\t-"]
    cpus = plan_workers(gpus=[], cores=[0, 1, 2, 3, 5], workers=2)
    assert plan_lines(cpus) == ["worker\tcpu0\t-\t0-2\t3", "worker\tcpu1\t-\t3,5\t2"]
    assert cpu_list([8, 0, 1, 2, 5, 7]) == "0-2,5,7-8"


@pytest.mark.parametrize(
    ("mode", "gpus", "processes"),
    [
        ("auto", 0, 0),
        ("auto", 1, 0),
        ("auto", 4, 4),
        ("accelerate", 0, 1),
        ("accelerate", 1, 1),
        ("accelerate", 8, 8),
        ("inprocess", 8, 0),
    ],
)
def test_a_fine_tune_is_launched_across_the_gpus_of_a_worker_that_owns_several(mode, gpus, processes):
    assert training_processes(mode, gpus) == processes


def test_an_unknown_launch_mode_is_named():
    with pytest.raises(ValueError, match="BACKFORTH_FINETUNE_LAUNCH must be one of auto, accelerate, inprocess"):
        training_processes("torchrun", 2)


def test_the_accelerate_command():
    ddp = accelerate_command(python="/venv/bin/python", processes=4, request="/m/launch/request.json", port=29517)
    assert ddp == [
        "/venv/bin/python",
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "4",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--multi_gpu",
        "--main_process_port",
        "29517",
        "-m",
        "generation.backends.finetune",
        "/m/launch/request.json",
    ]
    one = accelerate_command(python="py", processes=1, request="r.json", port=1234)
    assert "--multi_gpu" not in one and one[3:5] == ["--num_processes", "1"]
    # A config file (FSDP, DeepSpeed) decides the strategy and precision; the process count is the worker's.
    fsdp = accelerate_command(python="py", processes=2, request="r.json", port=1234, config_file="/etc/fsdp.yaml")
    assert fsdp == [
        "py",
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--config_file",
        "/etc/fsdp.yaml",
        "--main_process_port",
        "1234",
        "-m",
        "generation.backends.finetune",
        "r.json",
    ]
    with pytest.raises(ValueError, match="at least one training process"):
        accelerate_command(python="py", processes=0, request="r.json", port=1)


def test_the_round_batch_is_split_over_the_training_processes():
    cfg = RoundConfig().training
    for processes, per_device, accumulation in ((1, 8, 4), (2, 8, 2), (4, 8, 1), (8, 4, 1)):
        hp = training.resolve_hparams(cfg, on_gpu=True, processes=processes)
        assert (hp.per_device_batch_size, hp.gradient_accumulation_steps, hp.processes) == (
            per_device,
            accumulation,
            processes,
        )
        assert hp.batch_size == 32 and hp.as_dict()["batch_size"] == 32
    with pytest.raises(ValueError, match="at least one training process"):
        training.resolve_hparams(cfg, on_gpu=True, processes=0)


@pytest.mark.parametrize(
    ("size", "gpus", "problem"),
    [
        (1, None, None),
        (1, 0, None),
        (4, None, None),
        (2, 2, None),
        (2, 8, None),
        (2, 0, "tensor_parallel_size 2 needs 2 GPUs in one worker, and this worker has no GPU"),
        (
            4,
            2,
            "tensor_parallel_size 4 needs 4 GPUs in one worker, and this worker has 2: give each worker 4 "
            "(BACKFORTH_GPUS_PER_WORKER=4 in scripts/serve.sh)",
        ),
        (0, 8, "tensor_parallel_size must be a positive integer, got 0"),
        (True, 8, "tensor_parallel_size must be a positive integer, got True"),
    ],
)
def test_tensor_parallel_needs_that_many_gpus_in_one_worker(size, gpus, problem):
    assert tensor_parallel_problem(size, gpus) == problem
