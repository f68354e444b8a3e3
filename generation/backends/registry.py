"""One loaded backend per worker process, reused across jobs; switching model or kind unloads the old one."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import threading
from pathlib import Path
from typing import Any

from generation.backends.base import Backend, BackendError, Trainer
from generation.backends.devices import gpu_count
from generation.pipeline.devices import tensor_parallel_problem

logger = logging.getLogger(__name__)
KINDS = ("auto", "vllm", "transformers")
# generation/backends/fake.py: for tests and the fast loop only, never offered (not in KINDS).
FAKE = "fake"
ALLOW_FAKE_ENV = "BACKFORTH_ALLOW_FAKE_BACKEND"

_lock = threading.Lock()
_current: tuple[tuple[str, str, tuple], Backend] | None = None
_atexit_registered = False


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # ImportError, or a broken install (wrong torch): fall back
        return False
    return True


def fake_backend_allowed() -> bool:
    """The fake backend runs in a test run (settings.TESTING) or where BACKFORTH_ALLOW_FAKE_BACKEND=1."""
    if os.environ.get(ALLOW_FAKE_ENV) == "1":
        return True
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return bool(getattr(settings, "TESTING", False))
    except ImproperlyConfigured:  # outside Django (a script): only the environment variable allows it
        return False


def resolve_kind(kind: str) -> str:
    if kind == FAKE:
        if not fake_backend_allowed():
            raise BackendError(
                f"the fake backend is for tests only: it runs under pytest or with {ALLOW_FAKE_ENV}=1, not here"
            )
        return FAKE
    if kind not in KINDS:
        raise BackendError(f"unknown backend {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "auto":
        return "vllm" if vllm_available() else "transformers"
    return kind


def load_backend(kind: str, model_path: str | Path, **options: Any) -> Backend:
    kind = resolve_kind(kind)
    path = Path(model_path)
    if kind == FAKE:  # no model directory needed
        from generation.backends.fake import FakeBackend

        return FakeBackend(path, **options)
    if not (path / "config.json").is_file():
        raise BackendError(f"model path {path} does not exist or is not a Hugging Face model directory")
    tensor_parallel = options.get("tensor_parallel_size", 1)
    if kind == "vllm":
        # The worker's own GPUs (CUDA_VISIBLE_DEVICES): a permanent error, not a crash inside the engine.
        problem = tensor_parallel_problem(tensor_parallel, gpu_count())
        if problem:
            raise BackendError(f"{problem} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
        from generation.backends.vllm_backend import VLLMBackend

        return VLLMBackend(path, **options)
    from generation.backends.hf import TransformersBackend

    if tensor_parallel != 1:
        logger.info("transformers backend: tensor_parallel_size %s ignored (it runs on one device)", tensor_parallel)
    return TransformersBackend(path, **{k: v for k, v in options.items() if k in ("batch_size", "device")})


def get_trainer(kind: str) -> Trainer:
    """What fine-tunes a round's models for backend `kind`: TRL + PEFT (backends/finetune.py), or, for the fake
    backend, the fake trainer (backends/fake.py), so that whole rounds run in the fast test loop."""
    if resolve_kind(kind) == FAKE:
        from generation.backends.fake import FakeTrainer

        return FakeTrainer()
    from generation.backends.finetune import TRLTrainer

    return TRLTrainer()


def get_backend(kind: str, model_path: str | Path, **options: Any) -> Backend:
    """The process's backend for (kind, model_path, options), loading it (once) if needed."""
    global _current, _atexit_registered
    key = (resolve_kind(kind), str(Path(model_path).resolve()), tuple(sorted(options.items())))
    with _lock:
        if _current is not None and _current[0] == key:
            return _current[1]
        release()
        logger.info("loading %s backend for %s", key[0], key[1])
        backend = load_backend(key[0], key[1], **options)
        _current = (key, backend)
        if not _atexit_registered:
            # Runs before multiprocessing's own exit handler (registered earlier), so a vLLM engine child is
            # shut down instead of joined forever.
            atexit.register(release, quiet=True)
            _atexit_registered = True
        return backend


def release(*, quiet: bool = False) -> None:
    """Unload the current backend, if any (before loading another one, and at exit: quietly, as logging
    streams may already be closed then)."""
    global _current
    if _current is not None:
        if not quiet:
            logger.info("unloading %s backend for %s", _current[0][0], _current[0][1])
        try:
            _current[1].unload()
        finally:
            _current = None
            gc.collect()
