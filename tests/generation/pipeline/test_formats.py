"""Seed-set import/export formats (Alpaca, TRL messages, OpenAssistant) and the import_seed/export_seed commands."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import SeedExample
from generation.pipeline import formats
from generation.pipeline.formats import FormatError, detect_format, export_rows, parse
from generation.pipeline.formats.base import MAX_LINE_BYTES
from generation.pipeline.training import SYSTEM_PROMPTS
from tests.factories import SeedExampleFactory


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def problems_of(text: str, fmt: str) -> list[tuple[int, str]]:
    with pytest.raises(FormatError) as info:
        parse(text, fmt)
    return info.value.problems


GOOD = {"instruction": "Q", "output": "A"}

# --- detect_format -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("seed.json", '[\n  {"instruction": "Q", "input": "", "output": "A"}\n]', "alpaca_json"),
        ("seed.JSON", '\ufeff  [{"instruction": "Q"', "alpaca_json"),
        ("seed.jsonl", jsonl({"instruction": "Q", "input": "x", "output": "A"}), "alpaca_jsonl"),
        ("seed.json", jsonl(GOOD), "alpaca_jsonl"),  # JSON Lines under a .json name
        ("chat.jsonl", "\n\n" + jsonl({"messages": [{"role": "user", "content": "hi"}]}), "messages_jsonl"),
        (
            "oasst.jsonl",
            jsonl({"message_id": "m1", "parent_id": None, "role": "prompter", "text": "hi"}),
            "oasst_jsonl",
        ),
        ("trees.jsonl", jsonl({"message_tree_id": "t", "prompt": {"text": "hi", "role": "prompter"}}), "oasst_jsonl"),
        # the head may end mid-line: the key names still tell
        ("seed.jsonl", '{"instruction": "Q", "input": "", "output": "A very long ans', "alpaca_jsonl"),
        ("chat.ndjson", '{"messages": [{"role": "system", "content": "You are', "messages_jsonl"),
        ("pairs.jsonl", '{"instruction": "Q", "response": "A long', "pairs_jsonl"),
    ],
)
def test_detect_format_by_extension_and_first_record(filename, head, expected):
    assert detect_format(filename, head) == expected


def test_instruction_response_pairs_read_like_alpaca_with_their_line_numbers():
    text = '{"instruction": "Q1", "response": "A1"}\n{"instruction": "Q2", "input": "ctx", "response": "A2"}\n'
    rows = parse(text, "pairs_jsonl")
    assert [(r["instruction"], r["response"], r["provenance"]["line"]) for r in rows] == [
        ("Q1", "A1", 1),
        ("Q2\n\nctx", "A2", 2),
    ]
    with pytest.raises(FormatError, match="line 2: 'response'"):
        parse('{"instruction": "Q", "response": "A"}\n{"instruction": "Q"}\n', "pairs_jsonl")


def test_detect_format_refuses_unknown_records_and_empty_files():
    with pytest.raises(FormatError, match=r"line 2: cannot tell the format"):
        detect_format("x.jsonl", '\n{"question": "Q", "answer": "A"}\n')
    with pytest.raises(FormatError, match="no records"):
        detect_format("x.jsonl", "\ufeff \n\n")


# --- parse: the good paths -----------------------------------------------------------------------------------


def test_alpaca_jsonl_joins_input_and_keeps_lines_source_and_tags():
    text = "\ufeff" + jsonl(
        {"instruction": " Summarize. ", "input": "The text.", "output": " A summary. "},
        "",
        {"instruction": "Q2", "input": "", "output": "A2", "source": "safety", "tags": ["refusal"], "id": 9},
        {"instruction": "Q3", "input": None, "output": "A3", "category": "web"},
    ).replace("\n", "\r\n")
    assert parse(text, "alpaca_jsonl", default_source="web") == [
        {
            "instruction": "Summarize.\n\nThe text.",
            "response": "A summary.",
            "source": "web",
            "tags": [],
            "provenance": {"format": "alpaca_jsonl", "line": 1},
        },
        {
            "instruction": "Q2",
            "response": "A2",
            "source": "safety",
            "tags": ["refusal"],
            "provenance": {"format": "alpaca_jsonl", "line": 3},
        },
        {
            "instruction": "Q3",
            "response": "A3",
            "source": "web",
            "tags": [],
            "provenance": {"format": "alpaca_jsonl", "line": 4},
        },
    ]


def test_alpaca_json_array_records_carry_the_line_they_start_on():
    text = '\ufeff[\n  {"instruction": "Q1",\n   "output": "A1"},\n\n  {"instruction": "Q2", "output": "A2"}\n]\n'
    rows = parse(text, "alpaca_json")
    assert [(r["instruction"], r["response"], r["provenance"]["line"]) for r in rows] == [
        ("Q1", "A1", 2),
        ("Q2", "A2", 5),
    ]
    assert parse(json.dumps([GOOD]), "alpaca_json")[0]["provenance"] == {"format": "alpaca_json", "line": 1}


def test_messages_take_the_first_user_assistant_pair_and_ignore_a_leading_system_message():
    text = jsonl(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "First question"},
                {"role": "assistant", "content": "First answer"},
                {"role": "user", "content": "Follow-up"},
                {"role": "assistant", "content": "Second answer"},
            ],
            "source": "web",
        },
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "tags": ["t"]},
    )
    rows = parse(text, "messages_jsonl")
    assert [(r["instruction"], r["response"], r["source"], r["tags"]) for r in rows] == [
        ("First question", "First answer", "web", []),
        ("Q", "A", "seed", ["t"]),
    ]
    assert rows[1]["provenance"] == {"format": "messages_jsonl", "line": 2}


def oasst_message(mid, parent, role, text, *, rank=None, deleted=False, tree="t1"):
    return {
        "message_id": mid,
        "parent_id": parent,
        "user_id": "u-" + mid,
        "created_date": "2023-02-05T14:23:50.983374+00:00",
        "text": text,
        "role": role,
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": deleted,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "detoxify": None,
        "message_tree_id": tree,
        "tree_state": "ready_for_export",
        "emojis": None,
        "labels": None,
    }


def test_oasst_flat_messages_give_each_root_and_its_best_live_reply():
    text = jsonl(
        oasst_message("r1", None, "prompter", "Root one?"),
        oasst_message("a1", "r1", "assistant", "Second best", rank=1),
        oasst_message("a2", "r1", "assistant", "Deleted best", rank=0, deleted=True),
        oasst_message("a3", "r1", "assistant", "Best live", rank=0),
        oasst_message("p1", "a3", "prompter", "A follow-up (second turn, ignored)"),
        oasst_message("a4", "p1", "assistant", "Second-turn answer (ignored)", rank=0),
        oasst_message("r2", None, "prompter", "Root two?", tree="t2"),
        oasst_message("b1", "r2", "assistant", "First unranked", tree="t2"),
        oasst_message("b2", "r2", "assistant", "Second unranked", tree="t2"),
        oasst_message("r3", None, "prompter", "Deleted root", deleted=True, tree="t3"),
        oasst_message("c1", "r3", "assistant", "Reply to a deleted root", rank=0, tree="t3"),
        oasst_message("r4", None, "prompter", "No reply yet", tree="t4"),
    )
    rows = parse(text, "oasst_jsonl", default_source="web")
    assert [(r["instruction"], r["response"], r["source"], r["provenance"]["line"]) for r in rows] == [
        ("Root one?", "Best live", "web", 1),
        ("Root two?", "First unranked", "web", 7),
    ]


def test_oasst_trees_give_the_prompt_and_its_best_reply():
    tree = {
        "message_tree_id": "t1",
        "tree_state": "ready_for_export",
        "prompt": {
            "message_id": "r1",
            "role": "prompter",
            "text": "Why is the sky blue?",
            "deleted": False,
            "replies": [
                {"message_id": "a1", "role": "assistant", "text": "Rank 1", "rank": 1, "replies": []},
                {"message_id": "a2", "role": "assistant", "text": "Deleted", "rank": 0, "deleted": True},
                {"message_id": "a3", "role": "assistant", "text": "Rayleigh scattering.", "rank": 0},
            ],
        },
    }
    deleted = {"message_tree_id": "t2", "prompt": {**tree["prompt"], "deleted": True}}
    unanswered = {"message_tree_id": "t3", "prompt": {"role": "prompter", "text": "Hello?", "replies": []}}
    rows = parse(jsonl(tree, deleted, unanswered), "oasst_jsonl")
    assert [(r["instruction"], r["response"], r["source"]) for r in rows] == [
        ("Why is the sky blue?", "Rayleigh scattering.", "seed")
    ]


# --- parse: every problem, with its line ---------------------------------------------------------------------


def test_alpaca_jsonl_collects_every_problem_with_its_line():
    text = jsonl(
        GOOD,  # 1
        "",  # 2 (blank: ignored)
        '{"instruction": "Q", "output": ',  # 3
        "[1, 2]",  # 4
        {"output": "A"},  # 5
        {"instruction": "  ", "output": "A"},  # 6
        {"instruction": "Q", "output": 42},  # 7
        {"instruction": "Q", "output": "A", "source": "wiki"},  # 8
        {"instruction": "Q", "output": ""},  # 9
        {"instruction": "Q", "output": "A", "category": "open_qa"},  # 10
        {"instruction": "Q", "output": "A", "input": ["x"]},  # 11
        {"instruction": "Q", "output": "A", "tags": "a,b"},  # 12
        {"instruction": "Q", "output": "A", "source": "seed", "category": "web"},  # 13
    )
    problems = problems_of(text, "alpaca_jsonl")
    assert [line for line, _ in problems] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    messages = dict(problems)
    assert messages[3].startswith("invalid JSON (")
    assert messages[4] == "expected a JSON object, got array"
    assert messages[5] == "'instruction' is missing"
    assert messages[6] == "'instruction' is empty"
    assert messages[7] == "'output' must be a string, got number"
    assert messages[8] == "unknown source 'wiki' (expected one of seed, web, safety)"
    assert messages[9] == "'output' is empty"
    assert messages[10] == "unknown category 'open_qa' (expected one of seed, web, safety)"
    assert messages[11] == "'input' must be a string, got array"
    assert messages[12] == "'tags' must be an array of strings"
    assert messages[13] == "'source' 'seed' and 'category' 'web' disagree"


def test_format_error_lists_every_problem_then_caps_at_fifty():
    error = FormatError([(3, "invalid JSON (x)"), (9, "'output' is empty")])
    assert str(error) == "line 3: invalid JSON (x); line 9: 'output' is empty"
    assert isinstance(error, ValueError)
    assert pickle.loads(pickle.dumps(error)).problems == error.problems
    many = FormatError([(n, "bad") for n in range(1, 61)])
    assert str(many).count("bad") == 50
    assert str(many).endswith("line 50: bad; … and 10 more")
    assert "line 51" not in str(many)


@pytest.mark.parametrize("fmt", formats.FORMATS_TEXT)
@pytest.mark.parametrize("text", ["", "\ufeff", "\n  \n\r\n"])
def test_an_empty_file_is_an_error(fmt, text):
    assert problems_of(text, fmt) == [(0, "no records")]


def test_an_empty_array_is_an_error():
    assert problems_of("[\n]\n", "alpaca_json") == [(0, "no records")]


def test_a_line_over_ten_megabytes_is_refused_by_its_line_and_the_rest_still_checked():
    huge = json.dumps({"instruction": "Q", "output": "x" * MAX_LINE_BYTES})
    text = jsonl(GOOD, huge, {"instruction": "Q"})
    assert problems_of(text, "alpaca_jsonl") == [(2, "line is longer than 10 MB"), (3, "'output' is missing")]
    # bytes, not characters: 2.6 M four-byte characters are over the limit
    wide = json.dumps({"instruction": "Q", "output": "😀" * 2_700_000}, ensure_ascii=False)
    assert problems_of(jsonl(wide), "alpaca_jsonl") == [(1, "line is longer than 10 MB")]


def test_deep_nesting_is_an_error_not_a_crash():
    deep = "[" * 100_000 + "]" * 100_000
    assert problems_of(jsonl(GOOD, deep), "alpaca_jsonl") == [(2, "invalid JSON (nested too deeply)")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[\n  {"instruction": "Q", "output": "A"},\n  {"instruction": "Q" "output": "A"}\n]', (3, "invalid JSON")),
        ('[\n  {"instruction": "Q", "output": "A"},\n]\n', (3, "invalid JSON (trailing comma in the array)")),
        ('[\n  {"instruction": "Q", "output": "A"}\n  {"instruction": "Q"}]', (3, "invalid JSON (expected ','")),
        ('[{"instruction": "Q", "output": "A"}]\n{"x": 1}\n', (2, "invalid JSON (extra data after the array)")),
        ('\n{"instruction": "Q", "output": "A"}\n', (2, "expected a JSON array ('[') of objects")),
        ('[{"instruction": "Q", "output": "A"}', (1, "invalid JSON")),
    ],
)
def test_alpaca_json_syntax_errors_name_their_line(text, expected):
    problems = problems_of(text, "alpaca_json")
    assert len(problems) == 1
    assert problems[0][0] == expected[0] and problems[0][1].startswith(expected[1])


def test_alpaca_json_record_problems_name_the_line_each_record_starts_on():
    text = '[\n  {"instruction": "Q", "output": "A"},\n  "text",\n  {"instruction": "Q",\n   "output": ""},\n  7\n]\n'
    assert problems_of(text, "alpaca_json") == [
        (3, "expected a JSON object, got string"),
        (4, "'output' is empty"),
        (6, "expected a JSON object, got number"),
    ]


def test_messages_problems():
    user, assistant = {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}
    text = jsonl(
        {"messages": [{"role": "system", "content": "S"}, user, assistant]},  # 1: fine
        {"conversation": []},  # 2
        {"messages": "Q"},  # 3
        {"messages": [user, "A"]},  # 4
        {"messages": [assistant, user]},  # 5
        {"messages": [{"role": "system", "content": "S"}, user]},  # 6
        {"messages": [{"role": "user", "content": ""}, assistant]},  # 7
        {"messages": [user, {"role": "assistant", "content": [{"type": "text", "text": "A"}]}]},  # 8
        {"messages": [user, assistant], "source": "gpt"},  # 9
        {"messages": [{"content": "Q"}, assistant]},  # 10
        {"messages": []},  # 11
    )
    assert problems_of(text, "messages_jsonl") == [
        (2, "'messages' is missing"),
        (3, "'messages' must be an array, got string"),
        (4, "messages[1] must be an object, got string"),
        (5, "no user message followed by an assistant message"),
        (6, "no user message followed by an assistant message"),
        (7, "messages[0] (user): 'content' is empty"),
        (8, "messages[1] (assistant): 'content' must be a string, got array"),
        (9, "unknown source 'gpt' (expected one of seed, web, safety)"),
        (10, "messages[0]: 'role' must be a string, got null"),
        (11, "no user message followed by an assistant message"),
    ]


def test_oasst_problems():
    text = jsonl(
        oasst_message("r1", None, "prompter", "Q"),  # 1: fine
        oasst_message("a1", "r1", "assistant", "A", rank=0),  # 2: fine
        oasst_message("r2", None, "assistant", "root must be a prompter"),  # 3
        oasst_message("a2", "r1", "user", "unknown role"),  # 4
        oasst_message("a3", "r1", "assistant", "", rank=1),  # 5
        oasst_message("a4", "r1", "assistant", "A", rank="best"),  # 6
        oasst_message("a1", "r1", "assistant", "dup", rank=2),  # 7
        {"instruction": "Q", "output": "A"},  # 8
        {"message_tree_id": "t", "prompt": "Q"},  # 9
        {"message_tree_id": "t", "prompt": {"role": "prompter", "text": "Q", "replies": [{"role": "assistant"}]}},
        oasst_message("a5", "r1", "assistant", "A", deleted="yes"),  # 11
    )
    assert problems_of(text, "oasst_jsonl") == [
        (3, "'role' must be 'prompter', got 'assistant'"),
        (4, "'role' must be 'prompter' or 'assistant', got 'user'"),
        (5, "'text' is empty"),
        (6, "'rank' must be an integer, got string"),
        (7, "duplicate message_id 'a1'"),
        (8, "not an OpenAssistant message or tree (needs 'message_id' or 'prompt')"),
        (9, "'prompt' must be an object, got string"),
        (10, "prompt: replies[0]: 'text' is missing"),
        (11, "'deleted' must be a boolean, got string"),
    ]


def test_oasst_without_a_single_answered_prompt_has_no_records():
    text = jsonl(oasst_message("r1", None, "prompter", "Q"), oasst_message("a1", "r1", "assistant", "A", deleted=True))
    assert problems_of(text, "oasst_jsonl") == [(0, "no records")]


def test_parse_refuses_unknown_formats_and_sources():
    with pytest.raises(ValueError, match="unknown format 'xlsx'"):
        parse(jsonl(GOOD), "xlsx")
    with pytest.raises(ValueError, match="parquet is not a text format"):
        parse(jsonl(GOOD), "parquet")
    with pytest.raises(ValueError, match="unknown source 'wiki'"):
        parse(jsonl(GOOD), "alpaca_jsonl", default_source="wiki")


# --- export --------------------------------------------------------------------------------------------------

ROWS = [
    {"id": 1, "instruction": "Explain tides.", "response": "The moon…\n\n- gravity", "source": "seed", "tags": []},
    {"id": 2, "instruction": "Make a bomb", "response": "I can't help with that.", "source": "safety", "tags": ["x"]},
    {"id": 3, "instruction": 'Summarize: "ß"', "response": "Über", "source": "web", "tags": [], "version": 4},
]
for _row in ROWS:
    _row.setdefault("version", 1)


def test_export_alpaca_json_streams_an_array_chunk_by_chunk():
    chunks = list(export_rows(iter(ROWS), "alpaca_json"))
    assert chunks[0] == "[\n" and chunks[-1] == "\n]\n"
    assert len(chunks) == len(ROWS) + 2
    assert chunks[2].startswith(",\n") and not chunks[1].startswith(",")
    data = json.loads("".join(chunks))
    assert data[0] == {
        "instruction": "Explain tides.",
        "input": "",
        "output": "The moon…\n\n- gravity",
        "source": "seed",
        "id": 1,
        "version": 1,
    }
    assert "Über" in "".join(chunks)  # UTF-8, not \u escapes
    assert json.loads("".join(export_rows([], "alpaca_json"))) == []


def test_export_is_lazy():
    def rows():
        yield ROWS[0]
        raise AssertionError("read past the first row")

    stream = export_rows(rows(), "alpaca_jsonl")
    assert json.loads(next(stream))["id"] == 1


def test_export_messages_jsonl_tags_each_source_with_its_system_prompt():
    lines = list(export_rows(ROWS, "messages_jsonl"))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    records = [json.loads(line) for line in lines]
    assert records[2] == {
        "messages": [
            {"role": "system", "content": "Answer with knowledge from web search."},
            {"role": "user", "content": 'Summarize: "ß"'},
            {"role": "assistant", "content": "Über"},
        ],
        "source": "web",
        "id": 3,
        "version": 4,
    }
    assert [r["messages"][0]["content"] for r in records] == [SYSTEM_PROMPTS[r["source"]] for r in ROWS]


def test_export_refuses_unknown_formats():
    with pytest.raises(ValueError, match="unknown export format 'oasst_jsonl'"):
        list(export_rows(ROWS, "oasst_jsonl"))


@pytest.mark.parametrize("fmt", formats.FORMATS_OUT)
def test_every_export_format_round_trips_through_parse(fmt):
    text = "".join(export_rows(ROWS, fmt))
    assert detect_format(f"seed.{'json' if fmt == 'alpaca_json' else 'jsonl'}", text[:4096]) == fmt
    rows = parse(text, fmt)
    assert [(r["instruction"], r["response"], r["source"]) for r in rows] == [
        (r["instruction"], r["response"], r["source"]) for r in ROWS
    ]


# --- the management commands ---------------------------------------------------------------------------------


def import_seed(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_seed", str(path), *args, stdout=out)
    return out.getvalue()


def export_seed(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_seed", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_import_seed_imports_a_good_file_with_provenance(tmp_path):
    path = tmp_path / "alpaca.jsonl"
    path.write_text(
        jsonl(
            {"instruction": "Translate", "input": "Hallo", "output": "Hello"},
            {"instruction": "Refuse", "output": "No.", "source": "safety"},
        ),
        encoding="utf-8",
    )
    assert import_seed(path, "--source", "web").strip() == f"Imported 2 examples from {path} (alpaca_jsonl)"
    examples = SeedExample.objects.order_by("id")
    assert [(e.instruction, e.response, e.source) for e in examples] == [
        ("Translate\n\nHallo", "Hello", "web"),
        ("Refuse", "No.", "safety"),
    ]
    assert examples[1].provenance == {"kind": "import", "file": "alpaca.jsonl", "format": "alpaca_jsonl", "line": 2}


@pytest.mark.django_db
def test_import_seed_with_bad_lines_names_them_all_and_writes_nothing(tmp_path):
    SeedExampleFactory()
    lines = [json.dumps({"instruction": f"Q{n}", "output": f"A{n}"}) for n in range(1, 11)]
    lines[2] = '{"instruction": "Q3", "output": '
    lines[6] = json.dumps({"instruction": "Q7", "output": ""})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CommandError) as info:
        import_seed(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3: invalid JSON (")
    assert message.endswith("; line 7: 'output' is empty")
    assert SeedExample.objects.count() == 1


@pytest.mark.django_db
def test_import_seed_refuses_non_utf8_unknown_and_missing_files(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"instruction": "Caf\xe9", "output": "A"}\n')
    with pytest.raises(CommandError, match=r"latin\.jsonl: not UTF-8 text \(invalid byte 0xe9 at byte offset 20\)"):
        import_seed(latin)
    unknown = tmp_path / "qa.jsonl"
    unknown.write_text(jsonl({"question": "Q", "answer": "A"}), encoding="utf-8")
    with pytest.raises(CommandError, match=r"qa\.jsonl: line 1: cannot tell the format"):
        import_seed(unknown)
    with pytest.raises(CommandError, match="missing.jsonl: cannot read the file"):
        import_seed(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(CommandError, match=r"empty\.jsonl: no records"):
        import_seed(empty, "--format", "alpaca_jsonl")
    assert SeedExample.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", formats.FORMATS_OUT)
def test_export_seed_then_import_seed_round_trips(tmp_path, fmt):
    SeedExampleFactory(instruction="Explain tides.", response="The moon.\n\nAnd the sun.", tags=["demo"])
    SeedExampleFactory(instruction="Refuse this", response="I can't help with that.", source="safety")
    SeedExampleFactory(instruction="Summarize «ß»", response="Über", source="web")
    SeedExampleFactory(instruction="Retired", is_active=False)
    before = sorted(SeedExample.objects.filter(is_active=True).values_list("instruction", "response", "source"))

    path = tmp_path / f"seed.{'json' if fmt == 'alpaca_json' else 'jsonl'}"
    out, err = export_seed("--format", fmt, "-o", str(path))
    assert out == "" and err.strip() == f"Exported 3 examples to {path} ({fmt})"
    stdout, _ = export_seed("--format", fmt)  # the same bytes on stdout
    assert stdout == path.read_text(encoding="utf-8")

    SeedExample.objects.all().delete()
    assert import_seed(path).strip() == f"Imported 3 examples from {path} ({fmt})"
    after = sorted(SeedExample.objects.values_list("instruction", "response", "source"))
    assert after == before


@pytest.mark.django_db
def test_export_seed_filters_by_source():
    SeedExampleFactory(instruction="Q seed")
    SeedExampleFactory(instruction="Q safety", source="safety")
    out, err = export_seed("--format", "alpaca_jsonl", "--source", "safety")
    assert [json.loads(line)["instruction"] for line in out.splitlines()] == ["Q safety"]
    assert "Exported 1 examples to stdout (alpaca_jsonl)" in err


@pytest.mark.django_db
def test_import_seed_reads_an_openassistant_export(tmp_path):
    # The shape of OpenAssistant's 2023-04-12_oasst_ready.messages.jsonl: flat messages of two trees, ranked
    # replies, a deleted best reply, a second conversation turn and a deleted message further down.
    path = tmp_path / "2023-04-12_oasst_ready.messages.jsonl"
    path.write_text(
        jsonl(
            oasst_message("6ab24d72", None, "prompter", "Can you explain contrastive learning in simple terms?"),
            oasst_message("c8e83833", "6ab24d72", "assistant", "Sure! It learns by comparing examples…", rank=0),
            oasst_message("6708c47f", "6ab24d72", "assistant", "Contrastive learning is a technique…", rank=2),
            oasst_message("343ee2d4", "6ab24d72", "assistant", "It is a way to learn…", rank=1),
            oasst_message("18145bf4", "c8e83833", "prompter", "What are its applications?"),
            oasst_message("b9a4dc39", "18145bf4", "assistant", "Image and text embeddings.", rank=0),
            oasst_message("0f6d1a6a", "18145bf4", "assistant", "Spam", deleted=True),
            oasst_message("fd2b8a8f", None, "prompter", "Wie heißt die Hauptstadt von Frankreich?", tree="t2"),
            oasst_message("a7f9f0c3", "fd2b8a8f", "assistant", "Die Hauptstadt ist Lyon.", rank=0, deleted=True),
            oasst_message("e0635603", "fd2b8a8f", "assistant", "Paris.", rank=1, tree="t2"),
        ),
        encoding="utf-8",
    )
    assert "Imported 2 examples" in import_seed(path, "--source", "web")
    examples = SeedExample.objects.order_by("id")
    assert [(e.instruction, e.response, e.source, e.provenance["line"]) for e in examples] == [
        ("Can you explain contrastive learning in simple terms?", "Sure! It learns by comparing examples…", "web", 1),
        ("Wie heißt die Hauptstadt von Frankreich?", "Paris.", "web", 8),
    ]
    assert examples[0].provenance["format"] == "oasst_jsonl"
