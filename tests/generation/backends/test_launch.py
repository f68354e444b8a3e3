"""Fine-tunes under `accelerate launch` (generation/backends/launch.py), on the embedded model and this machine's CPU,
in one process (`--num_processes 1`: the path a worker with several GPUs takes, with one process per GPU there): the
same model directory, ModelVersion and progress as in-process training, and a cancel or a killed worker leaves
nothing training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from generation.backends import finetune, launch
from generation.handlers import run_job
from generation.models import Job, ModelVersion
from generation.pipeline import training
from generation.pipeline.config import RoundConfig
from generation.services.corpus import corpus_add_passages
from generation.services.jobs import JobCancelled
from generation.services.rounds import round_start
from tests.conftest import ROOT
from tests.factories import CorpusFactory
from tests.generation.handlers.test_training_and_evaluation import new_round, seed_from_demo

WEIGHT = "model.layers.0.self_attn.q_proj.weight"


def tensor(model: Path, name: str):
    with safe_open(str(model / "model.safetensors"), "pt") as f:
        return f.get_tensor(name)


@pytest.mark.model
@pytest.mark.django_db
def test_a_training_stage_runs_under_accelerate_launch_with_the_same_outputs_and_progress(
    model_dir, web_passages, monkeypatch, settings, tmp_path, redis_conn, django_capture_on_commit_callbacks
):
    monkeypatch.setenv(finetune.LAUNCH_ENV, "accelerate")  # as on a worker that owns several GPUs
    settings.TRAINED_MODELS_DIR = tmp_path / "rounds"
    seed_from_demo()
    corpus = CorpusFactory()
    corpus_add_passages(corpus=corpus, passages=[{"text": p} for p in web_passages[:2]])
    rnd = new_round(corpus, model_dir, sample_size=2, training={"max_steps": 2, "batch_size": 2, "max_length": 128})
    with django_capture_on_commit_callbacks(execute=True):
        round_start(round=rnd)
    job = rnd.jobs.get(stage="train_backward")
    assert job.progress_total == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert run_job(job.pk) == Job.Status.DONE
    job.refresh_from_db()
    # Each optimiser step of the launched process reached the job's row (its total came from the trainer).
    assert (job.progress_done, job.progress_total) == (2, 2)
    out = tmp_path / "rounds" / "round-1" / "backward"
    model = ModelVersion.objects.get(role="backward", round=rnd)
    assert model.path == str(out) and job.result["model"] == model.pk
    assert job.result["steps"] == 2 and len(job.result["loss_curve"]) == 2
    assert model.hyperparameters["processes"] == 1 and model.hyperparameters["batch_size"] == 2
    # The same directory as in-process training: merged weights (LoRA changed them), tokenizer, the data, the report.
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json", "training.json"}
    assert not (out / "launch").exists() and not (out / "checkpoints").exists()
    assert (out / "training_data.jsonl").is_file()
    assert json.loads((out / "training.json").read_text())["steps"] == 2
    assert not tensor(out, WEIGHT).equal(tensor(Path(model_dir), WEIGHT))
    assert tensor(out, WEIGHT).shape == tensor(Path(model_dir), WEIGHT).shape


@pytest.mark.model
def test_a_cancel_stops_the_launched_training_and_saves_nothing(model_dir, tmp_path):
    examples = [training.forward_example(f"What is {i} + {i}?", f"It is {2 * i}.", "seed") for i in range(8)]
    cfg = RoundConfig().training.replace(max_steps=50, batch_size=2, max_length=128)
    hparams = training.resolve_hparams(cfg, on_gpu=False)
    out = tmp_path / "out"
    finetune.prepare_checkpoints(out, "key")
    seen: list[tuple[int, int]] = []

    def cancel_at_first_step(step: int, total: int) -> None:
        seen.append((step, total))
        raise JobCancelled("job 1 was cancelled")

    with pytest.raises(JobCancelled):
        launch.run(
            processes=1,
            config_file=None,
            base_path=model_dir,
            out_dir=out,
            examples=examples,
            hparams=hparams,
            on_step=cancel_at_first_step,
            resume_key="key",
        )
    assert seen == [(1, 50)]
    request = str(out / "launch" / "request.json")
    training_left = [
        p for p in Path("/proc").glob("[0-9]*") if request in _cmdline(p)
    ]  # the launcher and its training process
    assert training_left == []
    assert not (out / "model.safetensors").exists() and not (out / "launch" / "result.json").exists()


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


CHILD = """
import sys, time
from generation.backends import launch
launch.die_with_parent()
print("ready", flush=True)
time.sleep(120)
"""
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=sys.stdout)
print(child.pid, flush=True)
child.wait()
"""


def test_a_training_process_dies_with_its_parent(tmp_path):
    """What keeps a killed worker's fine-tune from training on: each training process asks for SIGTERM when its
    parent dies (and the launcher, through setpriv --pdeathsig, when the worker does)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "ready"
    parent.send_signal(signal.SIGKILL)  # as the OOM killer or `kill -9` would end a worker
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(child_pid):
        time.sleep(0.1)
    assert not _running(child_pid), "the child outlived its parent"


def _running(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()  # a zombie has ended
    except OSError:
        return False
