"""Output gates (DESIGN.md "Signals and gates"): degenerate model output is dropped before review, with a named
reason. Pure: no Django, no torch.

Applied to what a model wrote — the instruction x̂ from the backward model, and the rewrite ŷ — never to the
web text itself (corpus cleaning already filtered that). The repetition rules measure what Gopher's do (Rae et
al. 2021, Table A1: duplicate lines, paragraphs and 5–10-grams), with the same code corpus cleaning runs, but
with one bar for a decoding loop, more than half the text repeated: Table A1's bars (10–30%) are for web prose
and drop good chat answers (code, verse, day-by-day plans, lists) that a loop never comes near. Gopher's
top-n-gram rules are left out (a list of "What is your favorite …?" questions trips them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.corpus.filters.gopher import GopherRepetitionFilter

# reason -> what a reviewer reads on the round page
REASONS = {
    "empty_instruction": "empty instruction",
    "empty_response": "empty response",
    "short_instruction": "instruction too short",
    "short_response": "response too short",
    "cut_instruction": "instruction cut at max_new_tokens",
    "cut_response": "response cut at max_new_tokens",
    "prompt_echo": "instruction talks about the task (prompt echo)",
    "copied_response": "instruction copies the response",
    "repetitive_instruction": "instruction repeats itself",
    "repetitive_response": "response repeats itself",
}

MIN_INSTRUCTION_WORDS = 3
MIN_RESPONSE_WORDS = 1  # a right answer can be one word ("Yes", "mixed", "1e6")
LOOP_SHARE = 0.5  # share of a text in duplicate lines / paragraphs / 5–10-grams that marks a loop
LOOP_RUN = 3  # the same sentence this many times in a row
COPY_NGRAM = 4
COPY_MIN_WORDS = 10
COPY_MAX_SHARE = 0.8  # share of the instruction's 4-grams found in the response

_LOOP = GopherRepetitionFilter(
    dup_line_fraction=LOOP_SHARE,
    dup_para_fraction=LOOP_SHARE,
    dup_line_char_fraction=LOOP_SHARE,
    dup_para_char_fraction=LOOP_SHARE,
    top_ngrams=(),
    dup_ngrams=tuple((n, LOOP_SHARE) for n in range(5, 11)),
)

# An instruction that talks about the generation task instead of asking something: our backward prompt, the
# usual "write an instruction for the response below" prompts of other pipelines, and references to a text
# that the user of the pair will never see ("the text above", "the passage below"). The last kind
# (`_REFERENCE_PATTERNS`) is an echo only when the instruction does not quote that text on lines of its own
# ("Summarize the following document.\n\n<document>" is a good instruction).
_ECHO_PATTERNS = [
    r"\bwhich question does the (?:text|passage) above answer\b",
    # "What question does this text answer?", "Which question is the passage answering?": about the generation
    # task (our own backward prompt, paraphrased), not a question a user would ask.
    r"\b(?:what|which)\s+(?:question|instruction|prompt|query)s?\s+(?:does|do|did|is|would|could|might)\s+"
    r"(?:the|this|that)\s+(?:text|passage|response|document|article|paragraph|excerpt|content|answer|snippet)\s+"
    r"(?:answer|address|respond|answering|addressing|responding)",
    r"\b(?:write|generate|create|produce|give|provide|suggest|come up with)\b(?:\s+\w+){0,3}\s+"
    r"(?:instructions?|prompts?|questions?|queries|query|tasks?)\s+(?:for|that|which|to which|whose|based on|"
    r"from|about)\b(?:\s+\w+){0,3}\s+(?:response|answer|text|passage|document|article|output|paragraph|content)",
    r"\b(?:as|like) an? (?:ai|language model|assistant)\b.*\b(?:instruction|question)\b",
    r"^\s*(?:instruction|question|prompt|response|answer|output)\s*[:：]\s*$",
]
_REFERENCE_PATTERNS = [
    r"\b(?:the|this|that)\s+(?:text|passage|response|document|article|paragraph|excerpt|content|snippet|answer)"
    r"\s+(?:above|below|provided|given|shown)\b",
    r"\b(?:above|below|following|given|provided)\s+(?:text|passage|response|document|article|paragraph|excerpt)\b",
]
_ECHO = [re.compile(p, re.IGNORECASE) for p in _ECHO_PATTERNS]
_REFERENCE = [re.compile(p, re.IGNORECASE) for p in _REFERENCE_PATTERNS]
QUOTED_MIN_WORDS = 5  # words on the instruction's other lines that count as quoting the text it refers to
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class GateInput:
    instruction: str
    response: str
    instruction_cut: bool = False  # the model stopped at max_new_tokens while still writing it
    response_cut: bool = False
    check_response: bool = True  # False when the response is the web text itself (not model output)
    # The text the backward model wrote the instruction from (the web text), when the response is a rewrite of
    # it: an instruction copied from that text is the failure; a rewrite that restates the question is not.
    source: str | None = None


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_repetitive(text: str) -> bool:
    """A decoding loop: more than `LOOP_SHARE` of the text in duplicate lines, paragraphs or 5–10-grams
    (Gopher's measures), or a sentence of four words or more said `LOOP_RUN` times in a row. A chorus or a
    line of code that comes back between other lines is not a loop."""
    if _LOOP.check(text) is not None:
        return True
    sentences = [s.strip().lower() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    run = 1
    for previous, sentence in zip(sentences, sentences[1:], strict=False):
        run = run + 1 if sentence == previous and len(sentence.split()) >= 4 else 1
        if run >= LOOP_RUN:
            return True
    return False


def is_prompt_echo(instruction: str) -> bool:
    if any(p.search(instruction) for p in _ECHO):
        return True
    lines = instruction.splitlines()
    for i, line in enumerate(lines):
        if any(p.search(line) for p in _REFERENCE):
            quoted = sum(len(_words(other)) for j, other in enumerate(lines) if j != i)
            if quoted < QUOTED_MIN_WORDS:
                return True
    return False


def copy_share(instruction: str, response: str, n: int = COPY_NGRAM) -> float:
    """Share of the instruction's word n-grams that occur in the response."""
    iw, rw = _words(instruction), _words(response)
    grams = {tuple(iw[i : i + n]) for i in range(len(iw) - n + 1)}
    if not grams:
        return 0.0
    rgrams = {tuple(rw[i : i + n]) for i in range(len(rw) - n + 1)}
    return len(grams & rgrams) / len(grams)


def gate_reason(item: GateInput) -> str | None:
    """The first reason this pair must not reach review as kept, or None. Cheapest checks first."""
    instruction, response = item.instruction.strip(), item.response.strip()
    if not instruction:
        return "empty_instruction"
    if item.check_response and not response:
        return "empty_response"
    if len(_words(instruction)) < MIN_INSTRUCTION_WORDS:
        return "short_instruction"
    if item.check_response and len(_words(response)) < MIN_RESPONSE_WORDS:
        return "short_response"
    if is_prompt_echo(instruction):
        return "prompt_echo"
    if (
        len(_words(instruction)) >= COPY_MIN_WORDS
        and copy_share(instruction, item.source or response) >= COPY_MAX_SHARE
    ):
        return "copied_response"
    # Repetition before the cut: a loop runs until max_new_tokens, and the loop is what went wrong.
    if is_repetitive(instruction):
        return "repetitive_instruction"
    if item.check_response and is_repetitive(response):
        return "repetitive_response"
    if item.instruction_cut:
        return "cut_instruction"
    if item.check_response and item.response_cut:
        return "cut_response"
    return None
