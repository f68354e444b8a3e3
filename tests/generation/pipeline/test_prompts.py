from pathlib import Path

from generation.pipeline import prompts

HUMPBACK, BACK_AND_FORTH = "Li et al. 2023", "Nguyen et al."


def test_every_prompt_names_its_paper_and_has_a_version():
    papers = {
        "backward.v1": {HUMPBACK},
        "curate.v1": {HUMPBACK},
        "curate_rationale.v1": {HUMPBACK},
        "judge.v1": {HUMPBACK, BACK_AND_FORTH},
        "rewrite.v1": {BACK_AND_FORTH},
    }
    versions = prompts.prompt_versions()
    assert versions == {key.split(".")[0]: key for key in papers}
    for key, cited in papers.items():
        text = (prompts.TEMPLATES_DIR / f"{key}.jinja").read_text()
        assert {paper for paper in (HUMPBACK, BACK_AND_FORTH) if paper in text} == cited, key


def test_curation_prompt_asks_for_the_score_token_and_fills_both_slots():
    [message] = prompts.curate_messages("How do tides work?", "The Moon pulls the oceans.")
    assert message["role"] == "user"
    assert "How do tides work?" in message["content"] and "The Moon pulls the oceans." in message["content"]
    assert prompts.SCORE_PREFIX.strip() in message["content"]


def test_rewrite_prompt_asks_for_markers():
    [message] = prompts.rewrite_messages("Q?", "Draft text.")
    assert prompts.REWRITE_OPEN in message["content"] and prompts.REWRITE_CLOSE in message["content"]


def test_web_text_is_inserted_verbatim_not_interpreted():
    payload = "{{ 7 * 7 }} {% raw %} <script>alert(1)</script>"
    [message] = prompts.backward_messages(payload)
    assert payload in message["content"] and "49" not in message["content"]


def test_our_rubric_is_not_the_papers_text(shared_data: Path):
    paper = (shared_data / "prompts" / "humpback_self_curation.txt").read_text()
    ours = prompts.curate_messages("x", "y")[0]["content"]
    paper_sentences = {s.strip() for s in paper.replace("\n", ". ").split(". ") if len(s.strip()) > 40}
    assert not [s for s in paper_sentences if s in ours]


def test_truncation_prefers_paragraph_ends():
    text = ("A" * 50 + "\n\n") * 10
    cut, was_cut = prompts.truncate(text, 200)
    assert (cut, was_cut) == ("\n\n".join(["A" * 50] * 3), True)  # 154 chars: a 4th paragraph would pass 200
    assert prompts.truncate("short", 200) == ("short", False)
