"""Output gates (generation/pipeline/gates.py): pure, no database, no model. Degenerate model output gets its
named reason; real human-written pairs from the shared seed sets pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.pipeline.gates import REASONS, GateInput, gate_reason, is_prompt_echo, is_repetitive

SEED_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "seed"

INSTRUCTION = "Explain how plants turn sunlight into sugar."
RESPONSE = (
    "Plants capture light with chlorophyll in their leaves. The energy splits water, releasing oxygen, and "
    "powers the Calvin cycle, which fixes carbon dioxide from the air into glucose."
)
LOOP = "The cat sat on the mat. " * 30


def reason(instruction: str = INSTRUCTION, response: str = RESPONSE, **flags) -> str | None:
    return gate_reason(GateInput(instruction=instruction, response=response, **flags))


def test_a_good_pair_passes():
    assert reason() is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"instruction": ""}, "empty_instruction"),
        ({"instruction": "  \n\t "}, "empty_instruction"),
        ({"response": ""}, "empty_response"),
        ({"response": " \n "}, "empty_response"),
        ({"instruction": "Why?"}, "short_instruction"),
        ({"instruction": "Explain photosynthesis"}, "short_instruction"),
        ({"response": "..."}, "short_response"),
        ({"response": " — !"}, "short_response"),
    ],
)
def test_empty_and_too_short_texts(kwargs, expected):
    assert reason(**kwargs) == expected


def test_a_one_word_answer_is_not_too_short():
    assert reason("Is the Earth round? Answer yes or no.", "Yes.") is None
    assert reason("Explain photosynthesis briefly.", "Light makes sugar.") is None, "three words is enough"


def test_an_empty_instruction_is_reported_before_an_empty_response():
    assert reason("", "") == "empty_instruction"


@pytest.mark.parametrize(
    "instruction",
    [
        "Write an instruction for the response below.",
        "Which question does the text above answer?",
        "What question does this text answer?",
        "Which instruction is the passage answering?",
        "Summarize the passage above.",
        "Generate a question that the following text answers.",
        "Explain the main idea of the given passage in two sentences.",
        "Rewrite the text above in plain English.",
        "As an AI language model, I would write this instruction:",
    ],
)
def test_prompt_echoes_are_gated(instruction):
    assert reason(instruction) == "prompt_echo"


def test_a_reference_to_a_text_that_the_instruction_quotes_is_not_an_echo():
    quoted = "Summarize the following document in two bullet points.\n\n" + RESPONSE
    assert reason(quoted) is None
    before = RESPONSE + "\n\nSummarize the passage above in one sentence."
    assert reason(before) is None


def test_a_reference_with_too_little_quoted_text_is_still_an_echo():
    assert is_prompt_echo("Summarize the text below.\nKeep it short.")


def test_an_instruction_that_copies_the_response_is_gated():
    copied = "Plants capture light with chlorophyll in their leaves. The energy splits water?"
    assert reason(copied) == "copied_response"
    assert reason("Plants capture light with chlorophyll in their leaves, then what happens to water?") is None


def test_a_short_instruction_sharing_words_with_the_response_is_not_a_copy():
    assert reason("Plants capture light with chlorophyll how?") is None, "under ten words: no copy check"


def test_a_loop_in_the_response_is_gated():
    assert reason(response=LOOP) == "repetitive_response"


def test_a_loop_after_a_good_start_is_gated():
    assert reason(response=RESPONSE + " It is very important to water the plants every day." * 8) == (
        "repetitive_response"
    )


def test_a_repetitive_instruction_is_gated():
    looped = "Explain how plants make sugar from light and what gas they release. " * 3
    assert reason(looped) == "repetitive_instruction"


def test_a_sentence_three_times_in_a_row_is_a_loop_but_three_times_apart_is_not():
    line = "I hope this helps you today."
    assert is_repetitive(f"{RESPONSE} {line} {line} {line}")
    chorus = "Oh, the river runs so deep tonight."
    verse = ["We walked along the shore at dawn.", "The gulls were crying overhead.", "Nobody said a word at all."]
    assert not is_repetitive("\n".join([verse[0], chorus, verse[1], chorus, verse[2], chorus]))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"instruction_cut": True}, "cut_instruction"),
        ({"response_cut": True}, "cut_response"),
        ({"instruction_cut": True, "response_cut": True}, "cut_instruction"),
    ],
)
def test_cut_flags(flags, expected):
    assert reason(**flags) == expected


def test_repetition_is_reported_before_the_cut_it_caused():
    assert reason(response=LOOP, response_cut=True) == "repetitive_response"
    assert reason(response=LOOP, instruction_cut=True) == "repetitive_response"
    looped = "Explain how plants make sugar from light and what gas they release. " * 3
    assert reason(looped, instruction_cut=True) == "repetitive_instruction"


@pytest.mark.parametrize("response", ["", "...", LOOP])
def test_check_response_false_skips_the_response_checks(response):
    assert reason(response=response, response_cut=True, check_response=False) is None


def test_check_response_false_still_checks_the_instruction():
    assert reason("Why?", "", check_response=False) == "short_instruction"
    assert reason("Summarize the passage above.", LOOP, check_response=False) == "prompt_echo"
    assert reason(response=LOOP, instruction_cut=True, check_response=False) == "cut_instruction"


def test_every_reason_has_a_label():
    assert set(REASONS) == {
        "empty_instruction",
        "empty_response",
        "short_instruction",
        "short_response",
        "cut_instruction",
        "cut_response",
        "prompt_echo",
        "copied_response",
        "repetitive_instruction",
        "repetitive_response",
    }


# --------------------------------------------------------------------------------------------------------------
# Real human-written pairs pass
# --------------------------------------------------------------------------------------------------------------


def _real_pairs() -> list[tuple[str, str, str]]:
    """(source, instruction, response) from the shared seed sets; a Self-Instruct instance's input follows its
    instruction after a blank line (the Alpaca layout)."""
    if not SEED_DIR.is_dir():
        pytest.skip(f"{SEED_DIR} is not here (tests on real data need ../shared/data)")
    pairs = []
    for line in (SEED_DIR / "oasst_en_firstturn_top1_99.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pairs.append(("oasst", row["instruction"], row["response"]))
    for line in (SEED_DIR / "selfinstruct_seed_tasks_175.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for inst in row["instances"]:
            instruction = row["instruction"] + (f"\n\n{inst['input']}" if inst["input"] else "")
            pairs.append((row["id"], instruction, inst["output"]))
    return pairs


def test_real_pairs_are_read():
    pairs = _real_pairs()
    assert len(pairs) == 274
    assert sum(1 for source, _, _ in pairs if source == "oasst") == 99


def test_real_pairs_are_almost_never_gated():
    pairs = _real_pairs()
    gated = [
        (source, why, instruction[:80])
        for source, instruction, response in pairs
        if (why := reason(instruction, response)) is not None
    ]
    # One of 274: an OpenAssistant greeting, which is no instruction to learn from.
    assert gated == [("oasst", "short_instruction", "hello!")], "\n".join(map(repr, gated))


def test_a_rewrite_that_restates_the_question_is_not_a_copied_instruction():
    instruction = "Explain how to use the built-in dict type to count how often each word occurs in a text."
    rewrite = instruction + " You can loop over the words and add one to each word's entry, starting from zero."
    web_text = "Counting words is a common task. A dictionary maps each word to its count as you read the text."
    assert gate_reason(GateInput(instruction=instruction, response=rewrite)) == "copied_response"
    assert gate_reason(GateInput(instruction=instruction, response=rewrite, source=web_text)) is None
    copied = GateInput(instruction=" ".join(web_text.split()[:14]), response=rewrite, source=web_text)
    assert gate_reason(copied) == "copied_response"
