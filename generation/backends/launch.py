"""A fine-tune under `accelerate launch`, across the GPUs a worker owns (DDP; FSDP or DeepSpeed from
BACKFORTH_ACCELERATE_CONFIG): the worker's side of it, and the files both sides share.

The worker writes the request (`<out_dir>/launch/request.json`: the model, the hyperparameters, the resume key) and
the examples (`examples.jsonl`) and starts `accelerate launch … -m generation.backends.finetune request.json`
(generation/pipeline/devices.py builds the command). Every process trains; the first one reports each optimiser
step on its output (a line starting with PROGRESS), which the worker passes to `on_step`: progress, heartbeat and
cancel work as in-process. A cancel (on_step raising) stops the launch's whole process group; the training
processes also die with their parent (PR_SET_PDEATHSIG), so a killed worker leaves nothing training behind. At the
end the first process writes `result.json`, the worker reads it back as the TrainResult, and the model directory is
the same as an in-process run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generation.backends.base import TrainResult
from generation.pipeline.devices import accelerate_command
from generation.pipeline.training import Example, HParams

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
PROGRESS = "@backforth-train-step "
LAUNCH_DIR = "launch"
STOP_GRACE_S = 30.0


def write_request(
    folder: Path,
    *,
    base_path: str | Path,
    out_dir: str | Path,
    examples: list[Example],
    hparams: HParams,
    keep_checkpoints: bool = False,
    save: bool = True,
    resume_key: str = "",
) -> Path:
    """The inputs of a launched fine-tune, as files in `folder`; returns the request's path."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "examples.jsonl").open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    request = {
        "base_path": str(base_path),
        "out_dir": str(out_dir),
        "hparams": dataclasses.asdict(hparams),
        "keep_checkpoints": keep_checkpoints,
        "save": save,
        "resume_key": resume_key,
    }
    path = folder / "request.json"
    path.write_text(json.dumps(request, indent=1))
    return path


def read_request(path: Path) -> dict[str, Any]:
    """`finetune`'s keyword arguments from a request written by `write_request`."""
    request = json.loads(path.read_text())
    with (path.parent / "examples.jsonl").open(encoding="utf-8") as f:
        examples = [json.loads(line) for line in f]
    return {**request, "hparams": HParams(**request["hparams"]), "examples": examples}


def report_step(step: int, max_steps: int) -> None:
    """The training side of `on_step`: one line on the output, read by `run`."""
    print(f"{PROGRESS}{json.dumps([step, max_steps])}", flush=True)


def write_result(folder: Path, result: TrainResult) -> None:
    (folder / "result.json").write_text(json.dumps(dataclasses.asdict(result)))


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent exits (a killed worker, or a launcher killed by a
    cancel), so no fine-tune trains on into the directory a retry is about to use."""
    with contextlib.suppress(Exception):  # not Linux: the process group kill still covers a cancel
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    """A free TCP port for the launch's rendezvous (two workers of a host may train at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop the launch and every process of its group: SIGTERM, then SIGKILL after STOP_GRACE_S."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


def run(
    *,
    processes: int,
    config_file: str | None,
    base_path: str | Path,
    out_dir: str | Path,
    examples: list[Example],
    hparams: HParams,
    on_step: Callable[[int, int], None] | None = None,
    keep_checkpoints: bool = False,
    save: bool = True,
    resume_key: str = "",
) -> TrainResult:
    """Train in `processes` processes under `accelerate launch` and return what the first one reports. The
    checkpoint directory must be prepared (finetune.prepare_checkpoints) before."""
    folder = Path(out_dir) / LAUNCH_DIR
    shutil.rmtree(folder, ignore_errors=True)
    request = write_request(
        folder,
        base_path=base_path,
        out_dir=out_dir,
        examples=examples,
        hparams=hparams,
        keep_checkpoints=keep_checkpoints,
        save=save,
        resume_key=resume_key,
    )
    cmd = accelerate_command(
        python=sys.executable, processes=processes, request=str(request), port=_free_port(), config_file=config_file
    )
    setpriv = shutil.which("setpriv")
    if setpriv:  # the launcher dies with the worker too (torchrun's agent then stops its processes)
        cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
    logger.info("fine-tuning in %d process(es) under accelerate launch: %s", processes, " ".join(cmd))
    # Progress bars of loading and tokenising would fill the worker's log: one line per step comes from PROGRESS.
    quiet = {"TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env = {**quiet, **os.environ, "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=30)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PROGRESS):
                step, total = json.loads(line[len(PROGRESS) :])
                if on_step is not None:
                    on_step(int(step), int(total))
            elif line.strip():
                tail.append(line.rstrip())
                logger.info("[accelerate] %s", line.rstrip())
        code = proc.wait()
    except BaseException:  # a cancel from on_step, or the worker stopping: nothing may train on
        _stop(proc)
        raise
    if code != 0:
        raise RuntimeError(f"the fine-tune under accelerate launch exited with status {code}:\n" + "\n".join(tail))
    result = TrainResult(**json.loads((folder / "result.json").read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    return result
