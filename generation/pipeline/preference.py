"""Preference data from people's decisions: TRL's paired DPO rows and unpaired KTO rows. Pure: no Django.

An edit is a preference pair: the person's final response over the model's (what they were shown). A rejection
says only what people did *not* want, so it becomes a DPO pair only when people approved another response to the
same prompt (an accepted or edited pair of the round, or a seed pair): nothing is generated to stand in for the
missing side. KTO needs no pairs: every approved response is desirable, every rejected one (and the model's
version of an edited one) is not.

Rows are TRL's conversational format, one user turn as the prompt:
- dpo: {"prompt": [user], "chosen": [assistant], "rejected": [assistant], …}
- kto: {"prompt": [user], "completion": [assistant], "label": bool, …}
Each row also names where it came from ("id", "candidate", "version", "source"); TRL ignores the extra columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ACCEPTED, EDITED, REJECTED = "accepted", "edited", "rejected"
# Reject reasons that say nothing about how good the response is (a duplicate may be a fine answer): such a
# rejection gives no dispreferred example. Any other reason (or a curator's reject without one) does.
NOT_ABOUT_QUALITY = frozenset({"duplicate"})


def normalise(text: str) -> str:
    """Whitespace collapsed: two texts that differ only in spacing are the same response (or prompt)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Judged:
    """A reviewed candidate as the preference exports read it: what the models wrote, what people made of it."""

    id: str  # "candidate-12"
    version: int
    status: str  # accepted | edited | rejected
    model_instruction: str  # x̂, the backward model's instruction
    model_response: str  # what the reviewer was shown: the rewrite ŷ, or the web text when there was none
    final_instruction: str = ""  # the person's version ("" when no decision wrote one)
    final_response: str = ""
    reject_reasons: tuple[str, ...] = ()  # reasons of the rejections still standing

    @property
    def prompt(self) -> str:
        """The instruction people signed off on (the edited one, if they changed it)."""
        return self.final_instruction or self.model_instruction

    @property
    def response(self) -> str:
        """The response as it stands after review (for a rejection: the one that was rejected)."""
        return self.final_response or self.model_response

    @property
    def rejects_the_response(self) -> bool:
        """Whether this rejection judged the response (not only, say, that the pair was a duplicate)."""
        return self.status == REJECTED and not (self.reject_reasons and set(self.reject_reasons) <= NOT_ABOUT_QUALITY)


@dataclass(frozen=True)
class Preferred:
    """A response people approved for a prompt: an accepted or edited candidate, or a seed pair."""

    id: str  # "candidate-9" | "seed-3"
    prompt: str
    response: str


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def preferred_index(preferred: Iterable[Preferred]) -> dict[str, list[Preferred]]:
    """Approved responses by normalised prompt, the first of each distinct (normalised) response only, in the
    order given."""
    index: dict[str, list[Preferred]] = {}
    for p in preferred:
        same = index.setdefault(normalise(p.prompt), [])
        if all(normalise(q.response) != normalise(p.response) for q in same):
            same.append(p)
    return index


def dpo_rows(
    judged: Iterable[Judged], preferred: Mapping[str, Sequence[Preferred]], counts: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """TRL's conversational preference rows: one per edited candidate (chosen: the final response, rejected: the
    response the person was shown; the prompt is the final instruction), and one per rejected candidate and
    distinct approved response to the same prompt (chosen: that response). Pairs whose two sides are the same
    after whitespace normalisation are skipped. `counts` gets what was written and skipped, by reason."""
    counts = Counter() if counts is None else counts
    for j in judged:
        if j.status == EDITED:
            if normalise(j.final_response) == normalise(j.model_response):
                counts["edits_response_unchanged"] += 1
                continue
            counts["edits"] += 1
            yield _pair(j, f"{j.id}:edit", "edit", j.id, j.final_response, j.model_response)
        elif j.status == REJECTED:
            if not j.rejects_the_response:
                counts["rejections_not_about_quality"] += 1
                continue
            rejected = normalise(j.response)
            chosen = [p for p in preferred.get(normalise(j.prompt), ()) if normalise(p.response) != rejected]
            if not chosen:
                counts["rejections_without_chosen"] += 1
                continue
            counts["rejections"] += 1
            for p in chosen:
                counts["rejection_pairs"] += 1
                yield _pair(j, f"{j.id}:vs:{p.id}", "rejection", p.id, p.response, j.response)


def _pair(j: Judged, row_id: str, source: str, chosen_id: str, chosen: str, rejected: str) -> dict[str, Any]:
    return {
        "id": row_id,
        "candidate": j.id,
        "version": j.version,
        "source": source,
        "chosen_from": chosen_id,
        "prompt": _user(j.prompt),
        "chosen": _assistant(chosen),
        "rejected": _assistant(rejected),
    }


def kto_rows(judged: Iterable[Judged], counts: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """TRL's unpaired rows: an accepted or edited final response is desirable (label true); the response the
    person was shown before editing (unless they left it as it was) and a rejected response are not (false),
    all under the final instruction. `counts` gets what was written and skipped."""
    counts = Counter() if counts is None else counts
    for j in judged:
        if j.status == ACCEPTED:
            counts["accepted"] += 1
            yield _unpaired(j, f"{j.id}:accepted", "accepted", j.response, True)
        elif j.status == EDITED:
            counts["edits"] += 1
            yield _unpaired(j, f"{j.id}:edited", "edited", j.final_response, True)
            if normalise(j.final_response) == normalise(j.model_response):
                counts["edits_response_unchanged"] += 1
                continue
            counts["edits_model_version"] += 1
            yield _unpaired(j, f"{j.id}:model", "edit_model_version", j.model_response, False)
        elif j.status == REJECTED:
            if not j.rejects_the_response:
                counts["rejections_not_about_quality"] += 1
                continue
            counts["rejections"] += 1
            yield _unpaired(j, f"{j.id}:rejected", "rejection", j.response, False)


def _unpaired(j: Judged, row_id: str, source: str, completion: str, label: bool) -> dict[str, Any]:
    return {
        "id": row_id,
        "candidate": j.id,
        "version": j.version,
        "source": source,
        "prompt": _user(j.prompt),
        "completion": _assistant(completion),
        "label": label,
    }


def without_heldout(
    judged: Iterable[Judged], heldout_prompts: frozenset[str], counts: Counter[str] | None = None
) -> Iterator[Judged]:
    """The candidates whose prompt is not, after whitespace normalisation, the instruction of a seed pair held
    out of the round (`heldout_prompts`, normalised): the held-out evaluation must not have been trained on."""
    counts = Counter() if counts is None else counts
    for j in judged:
        if normalise(j.prompt) in heldout_prompts:
            counts["excluded_heldout"] += 1
            continue
        yield j
