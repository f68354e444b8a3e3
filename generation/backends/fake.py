"""A fake backend, for tests and the fast development loop ONLY: no model, no torch, no model directory.

It answers every prompt of the model stages deterministically and in microseconds, with text that the pipeline's
parsers (pipeline/parsing.py) and output gates (pipeline/gates.py) accept, so that stage and round logic (chunks,
retries, the keep rule, state transitions) run in the fast test loop. Its numbers mean nothing about language:
never compare them with a real model's. The registry (backends/registry.py) refuses the kind "fake" outside a test
run unless BACKFORTH_ALLOW_FAKE_BACKEND=1.

What it writes, from the last user message of each conversation ("words" are its tokens):
- after BACKWARD_PREFIX (augment): "Can you explain <the text's first five words>?";
- after REWRITE_PREFIX (rewrite): the draft found in the rewrite prompt, then "</answer>" unless that is a stop
  string (a real backend stops there and leaves the stop string out);
- for the rationale prompt of curation: a sentence, then "Score: N" (N: the argmax of `score`);
- otherwise: "An answer to: <the message's first twelve words>".
Output longer than max_new_tokens words is cut there, with `finished` False.

Markers in a segment's text steer it, for tests of what goes wrong: "[fake:garbage]" (output nothing the parsers
accept), "[fake:loop]" (a decoding loop, which the repetition gates catch) and "[fake:echo]" (the instruction echoes
the backward prompt); "[fake:augment:<what>]" or "[fake:rewrite:<what>]" act on that stage only. Markers are left
out of everything it copies from the text.

`score` is a distribution over the options from a hash of the conversation (different pairs, different scores),
with 0.9 of the mass on the options. `loglik` gives each completion word log p = -0.25 when the word occurs in the
conversation (or the assistant prefix), else between -1.5 and -3.5 by a hash of the word; so log p(y | x̂) > log p(y)
for a response that shares words with its instruction, and the agreement signal (pipeline/signals.py) separates
matched pairs from mismatched ones. Shorter responses that share more of their words with the instruction agree more.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from generation.backends.base import Generation, GenerationParams, Messages, Progress, TrainResult
from generation.pipeline import prompts
from generation.pipeline.signals import LogLik

NAME = "fake"
MARKER = re.compile(r"\[fake:(?:(augment|rewrite):)?(garbage|loop|echo)\]")
_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"\w+", re.UNICODE)
_DRAFT = re.compile(r"Here is a draft answer taken from a web page:\s*\n(.*?)\n\s*\nRewrite the draft", re.DOTALL)
_BACKWARD_ASK = "Which question does the text above answer?"
GARBAGE = "### ... ###"
TOPIC_WORDS = 5
IN_CONTEXT_LOGP = -0.25
OPTION_MASS = 0.9


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _tokens(text: str) -> list[str]:
    """Lower-cased word tokens, for likelihoods (punctuation left out)."""
    return [t.lower() for t in _TOKEN.findall(text)]


def _markers(text: str, stage: str) -> set[str]:
    return {what for scope, what in MARKER.findall(text) if scope in ("", stage)}


def _unmarked(text: str) -> str:
    return " ".join(MARKER.sub(" ", text).split())


def _last_user(messages: Messages) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def _stable(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _done(progress: Progress | None, n: int) -> None:
    """The whole call finishes at once here."""
    if progress is not None and n:
        progress(n)


class FakeBackend:
    """Deterministic stand-in for a model (see the module docstring). `model_path` need not exist."""

    name = NAME

    def __init__(self, model_path: str | Path = "fake", **_options: object) -> None:
        self.model_path = str(model_path)
        self.loaded = True
        self.calls: dict[str, int] = {"generate": 0, "score": 0, "loglik": 0}

    # --- generate -----------------------------------------------------------------------------------------

    def generate(
        self,
        conversations: Sequence[Messages],
        params: GenerationParams,
        *,
        assistant_prefix: str = "",
        progress: Progress | None = None,
    ) -> list[Generation]:
        self.calls["generate"] += 1
        out = []
        for messages in conversations:
            text, close = self._reply(_last_user(messages), params, assistant_prefix)
            words = _words(text)
            finished = len(words) <= params.max_new_tokens
            text = text + close if finished else " ".join(words[: params.max_new_tokens])
            prompt_tokens = sum(len(_words(m.get("content", ""))) for m in messages) + len(_words(assistant_prefix))
            out.append(Generation(text, prompt_tokens, min(len(words), params.max_new_tokens), finished))
        _done(progress, len(out))
        return out

    def _reply(self, message: str, params: GenerationParams, assistant_prefix: str) -> tuple[str, str]:
        """The reply to one message, and what closes it when it is not cut (a closing tag, unless a stop)."""
        if assistant_prefix == prompts.BACKWARD_PREFIX:
            source = message.rsplit(_BACKWARD_ASK, 1)[0]
            return self._instruction(source, _markers(source, "augment")), ""
        if assistant_prefix == prompts.REWRITE_PREFIX:
            match = _DRAFT.search(message)
            draft = match.group(1) if match else message
            close = "" if prompts.REWRITE_CLOSE in params.stop else "\n" + prompts.REWRITE_CLOSE
            return self._rewrite(draft, _markers(draft, "rewrite")), close
        if "Score: " in message and "explain your rating" in message:
            return f"The answer addresses the instruction.\nScore: {self._rationale_score(message)}", ""
        return "An answer to: " + " ".join(_words(_unmarked(message))[:12]), ""

    @staticmethod
    def _instruction(source: str, markers: set[str]) -> str:
        if "garbage" in markers:
            return GARBAGE
        if "echo" in markers:
            return _BACKWARD_ASK
        topic = " ".join(_tokens(_unmarked(source))[:TOPIC_WORDS]) or "this"
        question = f"Can you explain {topic}?"
        return " ".join([question] * 4) if "loop" in markers else question

    @staticmethod
    def _rewrite(draft: str, markers: set[str]) -> str:
        if "garbage" in markers:
            return ""
        text = _unmarked(draft)
        if "loop" in markers:
            return " ".join(["Here is the same sentence once more."] * 8)
        return text

    def _rationale_score(self, message: str) -> int:
        dist = self._distribution(message, prompts.SCORE_OPTIONS)
        return 1 + max(range(len(dist)), key=dist.__getitem__)

    # --- score and loglik -----------------------------------------------------------------------------------

    @staticmethod
    def _distribution(text: str, options: Sequence[str]) -> list[float]:
        digest = hashlib.sha256(("\x1f".join(options) + "\x1e" + text).encode("utf-8")).digest()
        weights = [1 + digest[i % len(digest)] for i in range(len(options))]
        total = sum(weights)
        return [OPTION_MASS * w / total for w in weights]

    def score(
        self,
        conversations: Sequence[Messages],
        options: Sequence[str],
        *,
        assistant_prefix: str,
        progress: Progress | None = None,
    ) -> list[list[float]]:
        self.calls["score"] += 1
        out = [
            self._distribution("\n".join(m.get("content", "") for m in conv) + assistant_prefix, options)
            for conv in conversations
        ]
        _done(progress, len(out))
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
        self.calls["loglik"] += 1
        out = []
        for conv, completion in zip(conversations, completions, strict=True):
            context = set(_tokens(" ".join(m.get("content", "") for m in conv) + " " + assistant_prefix))
            tokens = _tokens(completion)[:max_completion_tokens]
            total = sum(IN_CONTEXT_LOGP if t in context else -(1.5 + _stable(t) % 201 / 100) for t in tokens)
            out.append(LogLik(round(total, 6), len(tokens)))
        _done(progress, len(out))
        return out

    def unload(self) -> None:
        self.loaded = False


class FakeTrainer:
    """Stands in for TRL in the fast loop: "trains" in microseconds and writes a model directory the fake backend
    (and the stages' path check) accept. Steps as the real trainer counts them (batch size × epochs, or max_steps,
    at most FAKE_MAX_STEPS), each reported through `on_step` (so cancel and progress work), with a loss that falls
    from 2 by a fixed curve. Its numbers mean nothing."""

    name = NAME

    def on_gpu(self) -> bool:
        return False

    def processes(self) -> int:
        return 1

    def finetune(
        self,
        *,
        base_path: str | Path,
        out_dir: str | Path,
        examples: list[dict[str, list[dict[str, str]]]],
        hparams: Any,
        on_step: Callable[[int, int], None] | None = None,
        resume_key: str = "",
    ) -> TrainResult:
        if not examples:
            raise ValueError("no training examples")
        started = time.monotonic()
        per_epoch = max(1, math.ceil(len(examples) / hparams.batch_size))
        steps = min(FAKE_MAX_STEPS, hparams.max_steps or math.ceil(per_epoch * hparams.epochs))
        curve = []
        for step in range(1, steps + 1):
            curve.append([step, round(2.0 / (1 + 0.25 * step), 4)])
            if on_step is not None:
                on_step(step, steps)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        about = {"fake": True, "base": str(base_path), "examples": len(examples), "resume_key": resume_key}
        (out / "config.json").write_text(json.dumps(about), encoding="utf-8")
        tokens = sum(len(_words(m["content"])) for e in examples for part in e.values() for m in part)
        return TrainResult(
            path=str(out),
            steps=steps,
            epochs=steps / per_epoch,
            examples=len(examples),
            train_tokens=tokens,
            seconds=time.monotonic() - started,
            loss_curve=curve,
        )


FAKE_MAX_STEPS = 8
