"""The review page's word diff (pure)."""

from __future__ import annotations

import pytest

from annotation.diff import tokens, word_diff


def test_tokens_join_back_to_the_text_exactly():
    for text in ("", "  lead and trail  ", "Tabs\tand\nnew lines, punctuation!? ünïcode — dashes", "a  b"):
        assert "".join(tokens(text)) == text
    assert tokens("Hello, world.") == ["Hello", ", ", "world", "."]


def test_changed_words_are_marked_and_everything_is_escaped():
    original = "The cat sat on the mat. <script>alert(1)</script>"
    rewritten = "The dog sat on the mat. <script>alert(1)</script> Then it slept."
    diff = word_diff(original, rewritten)
    html = diff["html"]
    assert html == (
        "The <del>cat </del><ins>dog </ins>sat on the mat. &lt;script&gt;alert(1)&lt;/script&gt; "
        "<ins>Then it slept.</ins>"
    )
    assert "<script>" not in html
    assert diff["kept"] == pytest.approx(17 / 22)  # 22 tokens in the rewrite, all but "dog" and "Then it slept." kept


def test_identical_and_empty_texts():
    assert word_diff("Same text here.", "Same text here.") == {"html": "Same text here.", "kept": 1.0}
    assert word_diff("Something.", "") == {"html": "<del>Something.</del>", "kept": 0.0}
