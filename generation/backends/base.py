"""The backend protocol: load once, then `generate` and `score` many times, then `unload`; and the trainer's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from generation.pipeline.signals import LogLik

Messages = list[dict[str, str]]
#: Called with the number of requests of a call that just finished (the engine's own completions on vLLM, each
#: sub-batch on transformers), so a long call can report progress; it must not raise.
Progress = Callable[[int], None]


class BackendError(RuntimeError):
    """A model cannot be loaded or used; `permanent` errors will not go away by retrying."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    # > 1 discourages tokens already in the prompt or output (small models loop without it).
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool  # False when cut by max_new_tokens


class Backend(Protocol):
    name: str
    model_path: str

    def generate(
        self,
        conversations: Sequence[Messages],
        params: GenerationParams,
        *,
        assistant_prefix: str = "",
        progress: Progress | None = None,
    ) -> list[Generation]:
        """One call for all `conversations`: the backend batches them itself (vLLM schedules them all at once,
        transformers in length-sorted batches of its batch size), and returns the outputs in their order."""
        ...

    def score(
        self,
        conversations: Sequence[Messages],
        options: Sequence[str],
        *,
        assistant_prefix: str,
        progress: Progress | None = None,
    ) -> list[list[float]]:
        """For each conversation, P(option) of the token after `assistant_prefix` (unnormalised)."""
        ...

    def loglik(
        self,
        conversations: Sequence[Messages],
        completions: Sequence[str],
        *,
        assistant_prefix: str = "",
        max_completion_tokens: int = 512,
        progress: Progress | None = None,
    ) -> list[LogLik]:
        """For each conversation, log p(completion | the conversation's assistant turn + prefix): the sum over
        the completion's first `max_completion_tokens` tokens, and their count (one forward pass, batched)."""
        ...

    def unload(self) -> None: ...


def render_chat(tokenizer: Any, messages: Messages, assistant_prefix: str = "") -> str:
    """The model's own chat template, opened for the assistant's turn, plus an optional forced prefix."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + assistant_prefix


def option_token_ids(tokenizer: Any, prefix: str, options: Sequence[str]) -> list[int]:
    """The single token that each option adds after `prefix`, as the tokenizer splits it in context."""
    base = tokenizer.encode(prefix, add_special_tokens=False)
    ids = []
    for option in options:
        full = tokenizer.encode(prefix + option, add_special_tokens=False)
        if len(full) != len(base) + 1 or full[: len(base)] != base:
            raise BackendError(f"option {option!r} is not a single token after {prefix!r} for this tokenizer")
        ids.append(full[-1])
    if len(set(ids)) != len(ids):
        raise BackendError(f"options {list(options)} do not map to distinct tokens")
    return ids


def completion_rows(
    tokenizer: Any,
    conversations: Sequence[Messages],
    completions: Sequence[str],
    assistant_prefix: str,
    max_completion_tokens: int,
) -> list[tuple[list[int], list[int]]]:
    """(context ids, completion ids) per item. Tokenised apart, so every completion is split the same way
    whatever its context (the two likelihoods of a curation signal must count the same tokens)."""
    rows = []
    for conv, completion in zip(conversations, completions, strict=True):
        context = tokenizer.encode(render_chat(tokenizer, conv, assistant_prefix), add_special_tokens=False)
        tokens = tokenizer.encode(completion, add_special_tokens=False)[:max_completion_tokens]
        rows.append((context, tokens))
    return rows


@dataclass
class TrainResult:
    """What a fine-tune reports (stored on its ModelVersion's metrics)."""

    path: str
    steps: int
    epochs: float
    examples: int
    train_tokens: int
    seconds: float
    loss_curve: list[list[float]] = field(default_factory=list)
    resumed_from_step: int | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs": round(self.epochs, 3),
            "examples": self.examples,
            "train_tokens": self.train_tokens,
            "seconds": round(self.seconds, 2),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "loss_curve": self.loss_curve,
            "final_loss": self.loss_curve[-1][1] if self.loss_curve else None,
            "resumed_from_step": self.resumed_from_step,
        }


class Trainer(Protocol):
    """Fine-tunes a base model on prompt-completion examples and saves a model directory (backends/finetune.py)."""

    name: str

    def on_gpu(self) -> bool: ...

    def processes(self) -> int:
        """How many processes a fine-tune trains in (one per GPU under `accelerate launch`, else 1)."""
        ...

    def finetune(
        self,
        *,
        base_path: str | Path,
        out_dir: str | Path,
        examples: list[dict[str, list[dict[str, str]]]],
        hparams: Any,
        on_step: Callable[[int, int], None] | None = None,
        resume_key: str = "",
    ) -> TrainResult: ...
