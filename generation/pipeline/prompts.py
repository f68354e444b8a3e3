"""Prompt building for the three model stages. Pure: no Django, no torch.

Templates live beside this file as `<name>.v<version>.jinja`; the version is recorded in each candidate's
lineage, so a change of wording is a new file, never an edit of an old one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).parent / "templates"
SCORE_PREFIX = "Score: "
BACKWARD_PREFIX = "Question: "
REWRITE_PREFIX = "<answer>\n"
SCORE_OPTIONS = ("1", "2", "3", "4", "5")
REWRITE_OPEN, REWRITE_CLOSE = "<answer>", "</answer>"
JUDGE_PREFIX = "Better response:"
JUDGE_OPTIONS = (" A", " B")  # the space belongs to the option token in BPE vocabularies

Messages = list[dict[str, str]]

# The contexts of the likelihood signals (pipeline/signals.py): log p(y | x̂) is read after the question as the
# forward models are asked it (the seed-style system prompt, then x̂); log p(y) after the same system prompt and
# an empty user turn, so the template's tokens are the same on both sides. A change here is a new version.
LIKELIHOOD_VERSION = "likelihood.v1"
LIKELIHOOD_SYSTEM_PROMPT = "Answer in the style of an AI Assistant."

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=False,  # plain-text prompts for a model, not HTML
    keep_trailing_newline=False,
    undefined=jinja2.StrictUndefined,
)
_NAME = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.jinja$")


@dataclass(frozen=True)
class PromptRef:
    name: str
    version: int

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}"


@cache
def latest(name: str) -> PromptRef:
    versions = [int(m["version"]) for p in TEMPLATES_DIR.iterdir() if (m := _NAME.match(p.name)) and m["name"] == name]
    if not versions:
        raise KeyError(f"no prompt template named {name!r} in {TEMPLATES_DIR}")
    return PromptRef(name, max(versions))


def render(ref: PromptRef, **values: str) -> str:
    return _env.get_template(f"{ref.key}.jinja").render(**values).strip()


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut `text` to at most max_chars at a paragraph or sentence end where possible. Returns (text, was_cut)."""
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    for sep in ("\n\n", "\n", ". "):
        pos = cut.rfind(sep)
        if pos >= max_chars * 0.6:
            return cut[: pos + (1 if sep == ". " else 0)].rstrip(), True
    return cut.rstrip(), True


def backward_messages(response: str) -> Messages:
    """Ask for the instruction x̂ that the web text y answers (self-augmentation). Generate with
    assistant_prefix=BACKWARD_PREFIX. A fine-tuned backward model M_yx is trained on exactly this prompt (see
    pipeline/training.py), so the base model and every M_yx are asked the same way."""
    return [{"role": "user", "content": render(latest("backward"), response=response)}]


def curate_messages(instruction: str, response: str, *, rationale: bool = False) -> Messages:
    """Ask for a 1–5 rating of (x̂, y). Without rationale, the caller scores the token after SCORE_PREFIX."""
    ref = latest("curate_rationale" if rationale else "curate")
    return [{"role": "user", "content": render(ref, instruction=instruction, response=response)}]


def rewrite_messages(instruction: str, response: str) -> Messages:
    """Ask an aligned model to turn y into an assistant answer ŷ to x̂, keeping y's facts (back-and-forth).
    Generate with assistant_prefix=REWRITE_PREFIX and stop at REWRITE_CLOSE."""
    return [{"role": "user", "content": render(latest("rewrite"), instruction=instruction, response=response)}]


def judge_messages(prompt: str, response_a: str, response_b: str) -> Messages:
    """Ask a judge which of two responses to `prompt` is better. The caller scores the token after
    JUDGE_PREFIX over JUDGE_OPTIONS, and asks again with A and B swapped."""
    return [{"role": "user", "content": render(latest("judge"), prompt=prompt, a=response_a, b=response_b)}]


def likelihood_messages(instruction: str) -> Messages:
    """The context in which a response's likelihood is read: with the instruction, or ("") without."""
    return [{"role": "system", "content": LIKELIHOOD_SYSTEM_PROMPT}, {"role": "user", "content": instruction.strip()}]


def prompt_versions() -> dict[str, str]:
    """The version of every prompt in use, for lineage and the round's frozen config."""
    names = sorted({m["name"] for p in TEMPLATES_DIR.iterdir() if (m := _NAME.match(p.name))})
    return {name: latest(name).key for name in names}
