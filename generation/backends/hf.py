"""transformers backend: batched, left-padded generation and one forward pass for scores.

A call takes all of a chunk's requests and batches them itself: sorted by token length (little padding), in batches of
`batch_size`, results back in the caller's order; `progress` hears of each batch as it finishes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_path: str | Path, *, batch_size: int = 8, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise BackendError(f"model path {path} does not exist or is not a Hugging Face model directory")
        self.model_path = str(path)
        self.batch_size = max(1, batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self._torch = torch

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches of similar length in tokens (less padding), in a stable order."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _token_lengths(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    def generate(
        self,
        conversations: Sequence[Messages],
        params: GenerationParams,
        *,
        assistant_prefix: str = "",
        progress: Progress | None = None,
    ) -> list[Generation]:
        torch = self._torch
        prompts = [render_chat(self.tokenizer, c, assistant_prefix) for c in conversations]
        out: list[Generation | None] = [None] * len(prompts)
        eos = self.tokenizer.eos_token_id
        for batch in self._batches(self._token_lengths(prompts)):
            enc = self._encode([prompts[i] for i in batch])
            kwargs: dict[str, Any] = {
                "max_new_tokens": params.max_new_tokens,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if params.repetition_penalty != 1.0:
                kwargs["repetition_penalty"] = params.repetition_penalty
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            if params.temperature > 0:
                torch.manual_seed(params.seed)
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                generated = self.model.generate(**enc, **kwargs)
            width = enc["input_ids"].shape[1]
            for row, i in enumerate(batch):
                new = generated[row, width:].tolist()
                finished = eos in new
                if finished:
                    new = new[: new.index(eos)]
                while new and new[-1] == self.tokenizer.pad_token_id:
                    new.pop()
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                for stop in params.stop:  # like vLLM: the stop string itself is not returned
                    if stop in text:
                        text, finished = text[: text.index(stop)], True
                out[i] = Generation(
                    text=text,
                    prompt_tokens=int(enc["attention_mask"][row].sum()),
                    completion_tokens=len(new),
                    finished=finished,
                )
            if progress is not None:
                progress(len(batch))
        return [g for g in out if g is not None]

    def score(
        self,
        conversations: Sequence[Messages],
        options: Sequence[str],
        *,
        assistant_prefix: str,
        progress: Progress | None = None,
    ) -> list[list[float]]:
        torch = self._torch
        ids = option_token_ids(self.tokenizer, assistant_prefix, options)
        prompts = [render_chat(self.tokenizer, c, assistant_prefix) for c in conversations]
        out: list[list[float]] = [[] for _ in prompts]
        for batch in self._batches(self._token_lengths(prompts)):
            enc = self._encode([prompts[i] for i in batch])
            with torch.inference_mode():
                logits = self.model(**enc).logits[:, -1, :].float()  # left padding: last column is real
            probs = torch.softmax(logits, dim=-1)[:, ids].tolist()
            for row, i in enumerate(batch):
                out[i] = probs[row]
            if progress is not None:
                progress(len(batch))
        return out

    def loglik(
        self,
        conversations: Sequence[Messages],
        completions: Sequence[str],
        *,
        assistant_prefix: str = "",
        max_completion_tokens: int = 512,
        progress: Progress | None = None,
    ) -> list[LogLik]:
        torch = self._torch
        rows = completion_rows(self.tokenizer, conversations, completions, assistant_prefix, max_completion_tokens)
        out: list[LogLik] = [LogLik(0.0, 0)] * len(rows)
        pad = self.tokenizer.pad_token_id
        for batch in self._batches([len(context) + len(tokens) for context, tokens in rows]):
            seqs = [rows[i][0] + rows[i][1] for i in batch]
            width = max(len(s) for s in seqs)
            # Right padding: positions count from the first real token, as in training.
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                for row, i in enumerate(batch):
                    context, tokens = rows[i]
                    if not tokens:
                        continue
                    # Logits at position t predict token t+1: the completion's tokens are predicted from
                    # positions len(context)-1 … len(context)+len(tokens)-2.
                    span = logits[row, len(context) - 1 : len(context) + len(tokens) - 1].float()
                    logp = torch.log_softmax(span, dim=-1)
                    target = torch.tensor(tokens, device=self.device).unsqueeze(1)
                    out[i] = LogLik(float(logp.gather(1, target).sum()), len(tokens))
            if progress is not None:
                progress(len(batch))
        return out

    def unload(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
