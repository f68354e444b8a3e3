import pytest

from generation.corpus.text import content_hash, normalize, split_passages


def test_hash_ignores_case_and_whitespace_but_not_words():
    assert content_hash("Hello   World\n") == content_hash("hello world")
    assert content_hash("hello world") != content_hash("hello there world")
    assert normalize("  A\u00a0B  ") == "a b"


def test_headings_start_passages_and_stay_with_their_text():
    doc = (
        "Lists\n*****\n\n" + "Lists are mutable sequences. " * 20 + "\n\n"
        "Tuples\n======\n\n" + "Tuples are immutable sequences. " * 20
    )
    passages = split_passages(doc, min_chars=100, max_chars=1000)
    assert len(passages) == 2
    assert passages[0].startswith("Lists\n\nLists are mutable")
    assert passages[1].startswith("Tuples\n\nTuples are immutable")


def test_hard_wrapped_prose_is_reflowed_but_indented_code_is_kept():
    doc = "This sentence is wrapped\nacross two lines and is long enough to keep around here.\n\n   x = 1\n   y = 2\n"
    [passage] = split_passages(doc, min_chars=10, max_chars=500)
    assert "wrapped across two lines" in passage
    assert "   x = 1\n   y = 2" in passage


def test_every_passage_respects_the_bounds():
    para = "Sentence number one is here. " * 30  # ~870 chars
    doc = "\n\n".join([para] * 10)
    passages = split_passages(doc, min_chars=300, max_chars=2000)
    assert [len(p) for p in passages] == [1740] * 5  # two paragraphs a passage
    long_block = "word " * 2000  # one 10,000-char "sentence" without a full stop
    assert [len(p) for p in split_passages(long_block, min_chars=0, max_chars=2000)] == [1999] * 5


def test_short_sections_are_dropped_not_glued_to_others():
    doc = "A\n===\n\ntiny\n\nB\n===\n\n" + "Enough text to keep. " * 30
    passages = split_passages(doc, min_chars=200, max_chars=2000)
    assert len(passages) == 1 and passages[0].startswith("B")


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match=r"^need 0 <= min_chars <= max_chars and max_chars > 0$"):
        split_passages("x", min_chars=10, max_chars=5)
