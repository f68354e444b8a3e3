import pytest

from generation.pipeline.parsing import clean_text, parse_instruction, parse_rationale, parse_rewrite, parse_score


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("How do I reverse a list in Python?", "How do I reverse a list in Python?"),
        ("Instruction: Explain how tides work.", "Explain how tides work."),
        ('"What is a virtual environment?"', "What is a virtual environment?"),
        ("**Question:** Why is the sky blue?\n\nThe sky is blue because…", "Why is the sky blue?"),
        ("Explain recursion.\nAnswer: Recursion is…", "Explain recursion."),
        ("  Summarise the\n   water cycle.  ", "Summarise the water cycle."),
    ],
)
def test_instruction_is_extracted(output, expected):
    assert parse_instruction(output) == expected


@pytest.mark.parametrize("garbage", [None, "", "   ", "?!", "12345 67890", "ok", "x" * 1001, "\x00\x01\x02"])
def test_unusable_instructions_are_none_not_errors(garbage):
    assert parse_instruction(garbage) is None


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ("The answer is good.\nScore: 4", 4),
        ("score:5", 5),
        ("Reasoning… **Score:** 3/5", 3),
        ("Score: 2/5", 2),
        ("I'd give it Score: 1. Actually, Score: 4", 4),
        ("The answer deserves a 5.", None),
        ("Score: 7", None),
        ("", None),
        (None, None),
    ],
)
def test_score_parsing(output, score):
    assert parse_score(output) == score


def test_rationale_is_the_text_before_the_score():
    assert parse_rationale("It is complete and clear.\nScore: 5") == "It is complete and clear."
    assert parse_rationale(None) == ""


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Sure!\n<answer>\nUse reversed().\n</answer>", "Use reversed()."),
        ("<answer>Unclosed but useful", "Unclosed but useful"),
        ("No markers at all", None),
        ("<answer>   </answer>", None),
        (None, None),
    ],
)
def test_rewrite_parsing(output, expected):
    assert parse_rewrite(output) == expected


def test_clean_text_drops_nul_and_lone_surrogates():
    assert clean_text("a\x00b\ud800c\n\td") == "ab?c\n\td"


def test_enumerated_instructions_lose_their_number():
    assert parse_instruction("1. What is the purpose of a virtual environment?\n2. Another") == (
        "What is the purpose of a virtual environment?"
    )


def test_rewrite_with_a_forced_prefix():
    assert parse_rewrite("Use reversed().", prefix="<answer>\n") == "Use reversed()."
    assert parse_rewrite("", prefix="<answer>\n") is None
