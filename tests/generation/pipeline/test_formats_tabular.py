"""Tables as seed files: CSV/TSV, Parquet and `datasets` directories, with a column mapping or common column names,
every bad row named by its number (spreadsheet rows for CSV, 0-based indices for Parquet and datasets), nothing
imported then; a messages/conversations column read as those formats."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotation.models import SeedExample
from generation.pipeline.formats import FormatError, detect_format, parse, parse_bytes, parse_mapping, parse_path
from tests.factories import SeedExampleFactory

CSV = (
    "prompt,completion,context,category\n"
    '"Summarize the text.","A short summary.","Tides rise, and fall.",closed_qa\n'
    '"Write a haiku\nabout rain.","Drops on the window",,creative\n'
)


def problems(call) -> tuple[list[tuple[int, str]], str]:
    with pytest.raises(FormatError) as info:
        call()
    return info.value.problems, str(info.value)


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def save_dataset(path: Path, columns: dict[str, list]) -> Path:
    import datasets

    datasets.Dataset.from_dict(columns).save_to_disk(str(path))
    return path


@pytest.mark.parametrize(
    ("name", "expected"), [("seed.csv", "csv"), ("seed.TSV", "tsv"), ("seed.parquet", "parquet"), ("s.pq", "parquet")]
)
def test_tables_are_detected_by_suffix(name, expected):
    assert detect_format(name, "") == expected


def test_csv_with_common_column_names_and_a_quoted_multiline_cell():
    rows = parse(CSV, "csv")
    assert rows == [
        {
            "instruction": "Summarize the text.\n\nTides rise, and fall.",
            "response": "A short summary.",
            "source": "seed",
            "tags": [],
            "provenance": {"format": "csv", "row": 2},
        },
        {
            "instruction": "Write a haiku\nabout rain.",
            "response": "Drops on the window",
            "source": "seed",
            "tags": [],
            "provenance": {"format": "csv", "row": 3},
        },
    ]


def test_a_mapping_names_the_columns_and_a_source_column_that_is_not_ours_becomes_a_tag():
    text = "Frage\tAntwort\tsource\ttags\nWie spät?\tHalb zehn.\tforum\tde, time\nRefuse?\tNo.\tsafety\t\n"
    rows = parse(text, "tsv", mapping={"instruction": "Frage", "response": "Antwort"})
    assert [(r["instruction"], r["response"], r["source"], r["tags"]) for r in rows] == [
        ("Wie spät?", "Halb zehn.", "seed", ["de", "time", "forum"]),
        ("Refuse?", "No.", "safety", []),
    ]
    text = "q,a,src\nQ,A,forum\n"
    assert problems(lambda: parse(text, "csv", mapping={"instruction": "q", "response": "a", "source": "src"}))[0] == [
        (2, "column 'src' holds unknown source 'forum' (expected one of seed, web, safety)")
    ]


def test_csv_problems_name_the_spreadsheet_row_and_say_the_header_is_row_one():
    text = (
        "instruction,output\n"
        "Q1,A1\n"
        "\n"  # a blank row: skipped, still counted like a spreadsheet does
        'Q3,"multi\nline answer"\n'
        "Q4,\n"
        "Q5,A5,surplus\n"
        "Q6,A6,,\n"
    )
    found, message = problems(lambda: parse(text, "csv"))
    assert found == [(5, "column 'output' is empty"), (6, "3 cells, but the header names 2 columns")]
    assert message == (
        "row 5: column 'output' is empty; row 6: 3 cells, but the header names 2 columns (rows counted as in a "
        "spreadsheet: the header is row 1, the first data row is row 2)"
    )


def test_tables_without_instruction_and_response_columns_say_what_to_map():
    found, message = problems(lambda: parse("q,a\nQ,A\n", "csv"))
    assert message == (
        "no instruction or response column (looked for instruction: instruction, prompt, question; response: "
        "response, output, answer, completion; or a messages/conversations column): map one, e.g. "
        "instruction=COLUMN (columns: 'q', 'a')"
    )
    assert problems(lambda: parse("q,a\nQ,A\n", "csv", mapping={"instruction": "q", "response": "b"}))[1] == (
        "no column 'b' for response (columns: 'q', 'a')"
    )
    assert problems(lambda: parse("a,a\n1,2\n", "csv"))[1] == "duplicate column names in the header: 'a'"
    with pytest.raises(FormatError, match="a column mapping applies to tables .*, not alpaca_jsonl"):
        parse('{"instruction": "Q", "output": "A"}\n', "alpaca_jsonl", mapping={"instruction": "q"})


def test_parse_mapping_reads_target_equals_column():
    assert parse_mapping(["instruction=Frage ", "response = Antwort", "input=ctx=x"]) == {
        "instruction": "Frage",
        "response": "Antwort",
        "input": "ctx=x",
    }
    for bad, message in [
        (["instruction"], "expected TARGET=COLUMN"),
        (["answer=a"], "unknown target 'answer'"),
        (["input=a", "input=b"], "input is mapped twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_mapping(bad)


def test_parquet_rows_are_named_by_their_index(tmp_path):
    path = write_parquet(
        tmp_path / "seed.parquet",
        {
            "question": ["Q0", "Q1", "Q2", "Q3"],
            "answer": ["A0", None, "A2", "A3"],
            "tags": [["a"], [], None, ["b", "c"]],
        },
    )
    found, message = problems(lambda: parse_path(path))
    assert message == "row index 1: column 'answer' must be a string, got null (row indices count from 0, as in " + (
        "datasets and pandas)"
    )
    good = write_parquet(
        tmp_path / "good.parquet", {"question": ["Q0", "Q3"], "answer": ["A0", "A3"], "tags": [["a"], ["b", "c"]]}
    )
    fmt, rows = parse_bytes("upload.parquet", good.read_bytes())
    assert fmt == "parquet" and parse_bytes("no-suffix", good.read_bytes())[0] == "parquet", "PAR1 magic"
    assert [(r["instruction"], r["response"], r["tags"], r["provenance"]) for r in rows] == [
        ("Q0", "A0", ["a"], {"format": "parquet", "index": 0}),
        ("Q3", "A3", ["b", "c"], {"format": "parquet", "index": 1}),
    ]
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    assert problems(lambda: parse_path(junk))[1].startswith("not a readable Parquet file (")


def test_a_datasets_directory_with_a_bad_row_and_with_conversations(tmp_path):
    bad = save_dataset(tmp_path / "bad", {"instruction": ["Q0", "Q1", "Q2"], "response": ["A0", "A1", None]})
    assert problems(lambda: parse_path(bad))[0] == [(3, "column 'response' must be a string, got null")]
    assert "row index 2: column 'response'" in problems(lambda: parse_path(bad))[1]
    lima = save_dataset(
        tmp_path / "lima",
        {"conversations": [["Q0", "A0"], ["Q1", "A1", "Q1b", "A1b"]], "source": ["stackexchange", "wikihow"]},
    )
    fmt, rows = parse_path(lima, turns="all")
    assert fmt == "hf_dataset"
    assert [(r["instruction"], r["tags"], r["provenance"]) for r in rows] == [
        ("Q0", ["stackexchange"], {"format": "hf_dataset", "index": 0, "turn": 1}),
        ("Q1", ["wikihow"], {"format": "hf_dataset", "index": 1, "turn": 1}),
        ("Q1b", ["wikihow"], {"format": "hf_dataset", "index": 1, "turn": 2}),
    ]


def test_a_dataset_dict_needs_one_split(tmp_path):
    import datasets

    split = datasets.Dataset.from_dict({"prompt": ["Q"], "output": ["A"]})
    datasets.DatasetDict({"train": split}).save_to_disk(str(tmp_path / "one"))
    assert [r["instruction"] for r in parse_path(tmp_path / "one")[1]] == ["Q"]
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "two"))
    assert problems(lambda: parse_path(tmp_path / "two"))[1] == (
        f"a DatasetDict with the splits train, test: import one split's folder ({tmp_path / 'two'}/SPLIT)"
    )
    assert [r["instruction"] for r in parse_path(tmp_path / "two" / "test")[1]] == ["Q"]
    (tmp_path / "plain").mkdir()
    assert problems(lambda: parse_path(tmp_path / "plain"))[1].startswith("not a datasets directory")


@pytest.mark.django_db
def test_import_seed_reads_csv_parquet_and_datasets_with_a_mapping(tmp_path):
    csv_path = tmp_path / "dolly.csv"
    csv_path.write_text(CSV, encoding="utf-8")
    out = io.StringIO()
    call_command("import_seed", str(csv_path), "--map", "input=context", "--source", "web", stdout=out)
    parquet = write_parquet(tmp_path / "qa.parquet", {"q": ["PQ"], "a": ["PA"]})
    call_command("import_seed", str(parquet), "--map", "instruction=q", "--map", "response=a", stdout=out)
    ds = save_dataset(tmp_path / "ds", {"q": ["DQ"], "a": ["DA"]})
    call_command("import_seed", str(ds), "--map", "instruction=q", "--map", "response=a", stdout=out)
    assert out.getvalue().splitlines() == [
        f"Imported 2 examples from {csv_path} (csv)",
        f"Imported 1 examples from {parquet} (parquet)",
        f"Imported 1 examples from {ds} (hf_dataset)",
    ]
    assert [(e.instruction, e.source, e.provenance) for e in SeedExample.objects.order_by("id")] == [
        (
            "Summarize the text.\n\nTides rise, and fall.",
            "web",
            {"kind": "import", "file": "dolly.csv", "format": "csv", "row": 2},
        ),
        ("Write a haiku\nabout rain.", "web", {"kind": "import", "file": "dolly.csv", "format": "csv", "row": 3}),
        ("PQ", "seed", {"kind": "import", "file": "qa.parquet", "format": "parquet", "index": 0}),
        ("DQ", "seed", {"kind": "import", "file": "ds", "format": "hf_dataset", "index": 0}),
    ]


@pytest.mark.django_db
def test_import_seed_refuses_tables_with_a_bad_row_whole(tmp_path):
    SeedExampleFactory()
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("instruction,response\nQ1,A1\nQ2,\n", encoding="utf-8")
    with pytest.raises(CommandError, match=r"bad\.csv: row 3: column 'response' is empty \(rows counted as in a"):
        call_command("import_seed", str(csv_path))
    parquet = write_parquet(tmp_path / "bad.parquet", {"instruction": ["Q0", ""], "response": ["A0", "A1"]})
    with pytest.raises(CommandError, match=r"bad\.parquet: row index 1: column 'instruction' is empty"):
        call_command("import_seed", str(parquet))
    with pytest.raises(CommandError, match="--map 'instruction': expected TARGET=COLUMN"):
        call_command("import_seed", str(csv_path), "--map", "instruction")
    assert SeedExample.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["parquet", "hf_dataset"])
def test_our_own_parquet_and_datasets_exports_import_again(tmp_path, fmt):
    SeedExampleFactory(instruction="Explain tides.", response="The moon.", source="seed")
    SeedExampleFactory(instruction="Refuse this", response="I can't help with that.", source="safety")
    before = sorted(SeedExample.objects.values_list("instruction", "response", "source"))
    out = tmp_path / ("seed.parquet" if fmt == "parquet" else "seed")
    call_command("export", "--seed", "--format", fmt, "--out", str(out), stdout=io.StringIO())
    SeedExample.objects.all().delete()
    call_command("import_seed", str(out), stdout=io.StringIO())
    assert sorted(SeedExample.objects.values_list("instruction", "response", "source")) == before
