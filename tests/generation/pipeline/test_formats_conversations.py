"""LIMA and ShareGPT conversation files: detection, the first turn or every turn as pairs, the LIMA/ShareGPT
"source" kept as a tag, and every bad record named by its line, nothing imported."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import SeedExample
from generation.pipeline.formats import FormatError, detect_format, parse


def jsonl(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def problems_of(text: str, fmt: str, **kwargs) -> list[tuple[int, str]]:
    with pytest.raises(FormatError) as info:
        parse(text, fmt, **kwargs)
    return info.value.problems


LIMA = [
    {"conversations": ["How do tides work?", "The moon's gravity pulls the oceans."], "source": "stackexchange"},
    {
        "conversations": ["Name a prime.", "Seven.", "And an even one?", "Two.", "Thanks!"],
        "source": "multi_turn",
    },
]
SHAREGPT = [
    {
        "id": "a1",
        "conversations": [
            {"from": "system", "value": "You are terse."},
            {"from": "human", "value": "Capital of France?"},
            {"from": "gpt", "value": "Paris."},
            {"from": "human", "value": "And of Italy?"},
            {"from": "gpt", "value": "Rome."},
        ],
    },
    {"id": "a2", "conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello!"}]},
]


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("lima.jsonl", jsonl(*LIMA), "lima_jsonl"),
        ("lima.json", json.dumps(LIMA, indent=2), "lima_json"),
        ("sharegpt.jsonl", jsonl(*SHAREGPT), "sharegpt_jsonl"),
        ("sharegpt.json", json.dumps(SHAREGPT), "sharegpt_json"),
        ("cut.jsonl", '{"conversations": [{"from": "human", "value": "a very long', "sharegpt_jsonl"),
        ("cut.jsonl", '{"conversations": ["a very long', "lima_jsonl"),
    ],
)
def test_conversation_files_are_detected(filename, head, expected):
    assert detect_format(filename, head) == expected


def test_lima_gives_the_first_turn_and_keeps_its_source_as_a_tag():
    rows = parse(jsonl(*LIMA), "lima_jsonl")
    assert rows == [
        {
            "instruction": "How do tides work?",
            "response": "The moon's gravity pulls the oceans.",
            "source": "seed",
            "tags": ["stackexchange"],
            "provenance": {"format": "lima_jsonl", "line": 1},
        },
        {
            "instruction": "Name a prime.",
            "response": "Seven.",
            "source": "seed",
            "tags": ["multi_turn"],
            "provenance": {"format": "lima_jsonl", "line": 2},
        },
    ]


def test_every_turn_is_a_pair_of_its_own_without_the_turns_before_it():
    rows = parse(json.dumps(LIMA, indent=2), "lima_json", turns="all", default_source="web")
    assert [(r["instruction"], r["response"], r["source"], r["provenance"]) for r in rows] == [
        (
            "How do tides work?",
            "The moon's gravity pulls the oceans.",
            "web",
            {"format": "lima_json", "line": 2, "turn": 1},
        ),
        ("Name a prime.", "Seven.", "web", {"format": "lima_json", "line": 9, "turn": 1}),
        ("And an even one?", "Two.", "web", {"format": "lima_json", "line": 9, "turn": 2}),
    ]  # "Thanks!" has no answer: no pair
    rows = parse(jsonl(*SHAREGPT), "sharegpt_jsonl", turns="all")
    assert [(r["instruction"], r["response"], r["provenance"].get("turn")) for r in rows] == [
        ("Capital of France?", "Paris.", 1),
        ("And of Italy?", "Rome.", 2),
        ("Hi", "Hello!", 1),
    ]


def test_messages_take_every_turn_too():
    record = {
        "messages": [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ]
    }
    assert [(r["instruction"], r["response"]) for r in parse(jsonl(record), "messages_jsonl")] == [("Q1", "A1")]
    rows = parse(jsonl(record), "messages_jsonl", turns="all")
    assert [(r["instruction"], r["response"], r["provenance"]) for r in rows] == [
        ("Q1", "A1", {"format": "messages_jsonl", "line": 1, "turn": 1}),
        ("Q2", "A2", {"format": "messages_jsonl", "line": 1, "turn": 2}),
    ]


def test_sharegpt_ignores_system_turns_and_reads_our_sources():
    record = {**SHAREGPT[0], "source": "safety", "tags": ["geo"]}
    (row,) = parse(jsonl(record), "sharegpt_jsonl")
    assert (row["instruction"], row["response"], row["source"], row["tags"]) == (
        "Capital of France?",
        "Paris.",
        "safety",
        ["geo"],
    )


def test_bad_conversations_are_named_by_line_and_nothing_is_returned():
    lima = jsonl(LIMA[0], {"conversations": ["Only a question"]}, {"conversations": ["Q", 42]}, {"conversations": "Q"})
    assert problems_of(lima, "lima_jsonl") == [
        (2, "no user turn followed by an assistant turn"),
        (3, "conversations[1] must be a string (LIMA: user and assistant texts in turn), got number"),
        (4, "'conversations' must be an array, got string"),
    ]
    sharegpt = jsonl(
        SHAREGPT[1],
        {"conversations": [{"from": "humman", "value": "Q"}, {"from": "gpt", "value": "A"}]},
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": None}]},
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "  "}]},
        {"conversations": ["Q", "A"]},
    )
    assert problems_of(sharegpt, "sharegpt_jsonl") == [
        (2, "conversations[0]: 'from' must be human, gpt or system, got 'humman'"),
        (3, "conversations[1]: 'value' must be a string, got null"),
        (4, "conversations[1] (assistant) is empty"),
        (5, "conversations[0] must be an object with 'from' and 'value' (ShareGPT), got string"),
        (5, "conversations[1] must be an object with 'from' and 'value' (ShareGPT), got string"),
    ]
    # a later turn is checked only when every turn is imported
    long = {"conversations": ["Q1", "A1", "Q2", " "]}
    assert len(parse(jsonl(long), "lima_jsonl")) == 1
    assert problems_of(jsonl(long), "lima_jsonl", turns="all") == [(1, "conversations[3] (assistant) is empty")]


def test_the_turns_option_applies_to_conversations_only():
    with pytest.raises(FormatError, match="every turn as a pair applies to conversations .*, not alpaca_jsonl"):
        parse(jsonl({"instruction": "Q", "output": "A"}), "alpaca_jsonl", turns="all")
    with pytest.raises(ValueError, match="unknown turns 'some'"):
        parse(jsonl(*LIMA), "lima_jsonl", turns="some")


@pytest.mark.django_db
def test_import_seed_reads_lima_and_sharegpt_with_the_all_turns_flag(tmp_path):
    lima = tmp_path / "lima_train.jsonl"
    lima.write_text(jsonl(*LIMA), encoding="utf-8")
    out = io.StringIO()
    call_command("import_seed", str(lima), "--all-turns", stdout=out)
    assert out.getvalue().strip() == f"Imported 3 examples from {lima} (lima_jsonl)"
    assert [(e.instruction, e.tags, e.provenance) for e in SeedExample.objects.order_by("id")] == [
        (
            "How do tides work?",
            ["stackexchange"],
            {"kind": "import", "file": "lima_train.jsonl", "format": "lima_jsonl", "line": 1, "turn": 1},
        ),
        (
            "Name a prime.",
            ["multi_turn"],
            {"kind": "import", "file": "lima_train.jsonl", "format": "lima_jsonl", "line": 2, "turn": 1},
        ),
        (
            "And an even one?",
            ["multi_turn"],
            {"kind": "import", "file": "lima_train.jsonl", "format": "lima_jsonl", "line": 2, "turn": 2},
        ),
    ]
    sharegpt = tmp_path / "sharegpt.json"
    sharegpt.write_text(json.dumps(SHAREGPT, indent=1), encoding="utf-8")
    call_command("import_seed", str(sharegpt), stdout=out)
    assert SeedExample.objects.filter(provenance__format="sharegpt_json").count() == 2


@pytest.mark.django_db
def test_import_seed_refuses_a_conversation_file_with_a_bad_line_whole(tmp_path):
    path = tmp_path / "sharegpt.jsonl"
    bad = {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt"}]}
    path.write_text(jsonl(*SHAREGPT, bad), encoding="utf-8")
    with pytest.raises(CommandError) as info:
        call_command("import_seed", str(path))
    assert str(info.value) == f"{path}: line 3: conversations[1]: 'value' must be a string, got null"
    assert SeedExample.objects.count() == 0
