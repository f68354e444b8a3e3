"""Preference rows from people's decisions (pure): DPO pairs from edits and from rejections that have an approved
response to the same prompt, KTO rows with their labels, and the held-out filter."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from generation.pipeline.preference import (
    Judged,
    Preferred,
    dpo_rows,
    kto_rows,
    normalise,
    preferred_index,
    without_heldout,
)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


ACCEPTED = Judged(
    id="candidate-1",
    version=2,
    status="accepted",
    model_instruction="What causes tides?",
    model_response="The Moon's gravity.",
    final_instruction="What causes tides?",
    final_response="The Moon's gravity.",
)
EDITED = Judged(
    id="candidate-2",
    version=2,
    status="edited",
    model_instruction="Explain rust.",
    model_response="Rust is a colour.",
    final_instruction="Why does iron rust?",
    final_response="Iron oxidises in water and air.",
)
EDITED_INSTRUCTION_ONLY = Judged(
    id="candidate-3",
    version=2,
    status="edited",
    model_instruction="Say something on bees",
    model_response="Bees  make\nhoney.",
    final_instruction="What do bees make?",
    final_response="Bees make honey.",
)
REJECTED = Judged(
    id="candidate-4",
    version=2,
    status="rejected",
    model_instruction="What causes tides?",
    model_response="Tides are caused by wind.",
    reject_reasons=("factual_error",),
)
REJECTED_ALONE = Judged(
    id="candidate-5",
    version=2,
    status="rejected",
    model_instruction="Name a prime.",
    model_response="Nine.",
    reject_reasons=("factual_error",),
)
REJECTED_AS_DUPLICATE = Judged(
    id="candidate-6",
    version=2,
    status="rejected",
    model_instruction="What causes tides?",
    model_response="Mostly the Moon.",
    reject_reasons=("duplicate",),
)
ALL = [ACCEPTED, EDITED, EDITED_INSTRUCTION_ONLY, REJECTED, REJECTED_ALONE, REJECTED_AS_DUPLICATE]


def test_normalise_collapses_whitespace_only():
    assert normalise("  Bees  make\n\thoney. ") == "Bees make honey."
    assert normalise("Bees make Honey.") == "Bees make Honey."


def test_preferred_index_keys_by_normalised_prompt_and_keeps_the_first_of_each_response():
    index = preferred_index(
        [
            Preferred(id="candidate-1", prompt="What causes  tides?", response="The Moon's gravity."),
            Preferred(id="seed-7", prompt="What causes tides?", response=" The Moon's\ngravity. "),
            Preferred(id="seed-8", prompt="What causes tides?\n", response="Gravity of Moon and Sun."),
        ]
    )
    assert index == {
        "What causes tides?": [
            Preferred(id="candidate-1", prompt="What causes  tides?", response="The Moon's gravity."),
            Preferred(id="seed-8", prompt="What causes tides?\n", response="Gravity of Moon and Sun."),
        ]
    }


def test_dpo_pairs_an_edit_and_a_rejection_with_an_approved_answer_and_nothing_else():
    pool = preferred_index(
        [
            Preferred(id="candidate-1", prompt="What causes tides?", response="The Moon's gravity."),
            Preferred(id="seed-7", prompt="What causes tides?", response="Gravity of Moon and Sun."),
            # the same text as the rejected response: no pair with itself
            Preferred(id="seed-9", prompt="What causes tides?", response="Tides are caused  by wind."),
        ]
    )
    counts: Counter[str] = Counter()
    rows = list(dpo_rows(ALL, pool, counts))
    assert rows == [
        {
            "id": "candidate-2:edit",
            "candidate": "candidate-2",
            "version": 2,
            "source": "edit",
            "chosen_from": "candidate-2",
            # the final instruction is the prompt
            "prompt": user("Why does iron rust?"),
            "chosen": assistant("Iron oxidises in water and air."),
            "rejected": assistant("Rust is a colour."),
        },
        {
            "id": "candidate-4:vs:candidate-1",
            "candidate": "candidate-4",
            "version": 2,
            "source": "rejection",
            "chosen_from": "candidate-1",
            "prompt": user("What causes tides?"),
            "chosen": assistant("The Moon's gravity."),
            "rejected": assistant("Tides are caused by wind."),
        },
        {
            "id": "candidate-4:vs:seed-7",
            "candidate": "candidate-4",
            "version": 2,
            "source": "rejection",
            "chosen_from": "seed-7",
            "prompt": user("What causes tides?"),
            "chosen": assistant("Gravity of Moon and Sun."),
            "rejected": assistant("Tides are caused by wind."),
        },
    ]
    assert counts == Counter(
        edits=1,
        edits_response_unchanged=1,
        rejections=1,
        rejection_pairs=2,
        rejections_without_chosen=1,
        rejections_not_about_quality=1,
    )


def test_a_rejection_with_no_approved_answer_gives_no_pair():
    counts: Counter[str] = Counter()
    assert list(dpo_rows([REJECTED_ALONE], {}, counts)) == []
    assert counts == Counter(rejections_without_chosen=1)


def test_a_rejection_reasoned_duplicate_and_another_reason_counts():
    both = replace(REJECTED_AS_DUPLICATE, reject_reasons=("duplicate", "not_helpful"))
    curator = replace(REJECTED_AS_DUPLICATE, reject_reasons=())
    assert (REJECTED_AS_DUPLICATE.rejects_the_response, both.rejects_the_response, curator.rejects_the_response) == (
        False,
        True,
        True,
    )


def test_kto_labels_approved_answers_true_and_what_people_turned_down_false():
    counts: Counter[str] = Counter()
    rows = list(kto_rows(ALL, counts))
    assert [(r["id"], r["source"], r["prompt"], r["completion"], r["label"]) for r in rows] == [
        ("candidate-1:accepted", "accepted", user("What causes tides?"), assistant("The Moon's gravity."), True),
        (
            "candidate-2:edited",
            "edited",
            user("Why does iron rust?"),
            assistant("Iron oxidises in water and air."),
            True,
        ),
        ("candidate-2:model", "edit_model_version", user("Why does iron rust?"), assistant("Rust is a colour."), False),
        ("candidate-3:edited", "edited", user("What do bees make?"), assistant("Bees make honey."), True),
        (
            "candidate-4:rejected",
            "rejection",
            user("What causes tides?"),
            assistant("Tides are caused by wind."),
            False,
        ),
        ("candidate-5:rejected", "rejection", user("Name a prime."), assistant("Nine."), False),
    ]
    assert rows[0] == {
        "id": "candidate-1:accepted",
        "candidate": "candidate-1",
        "version": 2,
        "source": "accepted",
        "prompt": user("What causes tides?"),
        "completion": assistant("The Moon's gravity."),
        "label": True,
    }
    assert counts == Counter(
        accepted=1, edits=2, edits_model_version=1, edits_response_unchanged=1, rejections=2,
        rejections_not_about_quality=1,
    )  # fmt: skip


def test_a_rejection_after_an_edit_rejects_the_edited_text():
    # With overlap, a second annotator may reject what the first one edited: that text is what was turned down.
    judged = replace(EDITED, status="rejected", reject_reasons=("not_helpful",))
    (row,) = kto_rows([judged])
    assert (row["prompt"], row["completion"], row["label"]) == (
        user("Why does iron rust?"),
        assistant("Iron oxidises in water and air."),
        False,
    )


def test_without_heldout_drops_prompts_of_held_out_seed_pairs():
    counts: Counter[str] = Counter()
    kept = list(without_heldout(ALL, frozenset({"What causes tides?"}), counts))
    assert [j.id for j in kept] == ["candidate-2", "candidate-3", "candidate-5"]
    assert counts == Counter(excluded_heldout=3)
