"""Corpus cleaning: C4/Gopher filters, passages, exact and MinHash dedup, decontamination. Pure: no database.

Hand-made texts check each rule; the real web samples in ../shared/data/web (skipped when absent) check
that the pipeline gives bounded passages, and the passage and drop counts recorded here, on C4, raw Common
Crawl and Dolma text (a change to a filter shows up as a change of these counts).
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from generation.corpus.dedup import (
    Decontaminator,
    Known,
    NearDuplicateFilter,
    dedup_batch,
    lsh_params,
    minhash,
    pending,
    shingles,
)
from generation.corpus.filters import DOCUMENT_FILTERS, PASSAGE_FILTERS, PASSAGE_PREFIX, clean_document
from generation.corpus.filters.base import MAX_DOC_CHARS, LengthFilter, UppercaseFilter, first_reason
from generation.corpus.filters.c4 import BoilerplateFilter, C4QualityFilter, clean_lines, clean_text
from generation.corpus.filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from generation.corpus.text import content_hash

# ------------------------------------------------------------------------------------------ hand-made texts

PROSE = [
    "The river starts in the hills above the town and runs for about forty miles before it reaches the sea. "
    "In spring the water is high and fast, and the old mill at the bend still turns when the snow melts. "
    "Most of the farms along the valley were built close to the water, because the soil there is deep and "
    "easy to work.",
    "Fishing was once the main trade of the villages on the lower river. Families kept small boats that "
    "they repaired every winter, and the catch was sold at the market in the square on Saturday mornings. "
    "Today only a few boats remain, and most of the people who live by the water work in the town.",
    "The bridge that crosses the river near the church was rebuilt in stone after a flood carried away the "
    "wooden one. Visitors often stop there to look at the carved date above the central arch and to watch "
    "the swans that nest in the reeds below it during the summer months.",
    "Walkers can follow a path along the north bank from the mill to the harbour. It takes about three hours "
    "at an easy pace, and there are benches and a small cafe halfway along where the path meets the road to "
    "the station. The route is flat and suitable for families with young children.",
]
DOC = "\n".join(PROSE)


def test_normal_prose_passes_every_filter_and_becomes_a_passage():
    for f in (*DOCUMENT_FILTERS, BoilerplateFilter()):
        assert f.check(DOC) is None, f.name
    assert clean_lines(DOC) == DOC
    passages, counts = clean_document(DOC, min_chars=600, max_chars=3000)
    assert counts == {}
    assert passages == [" ".join(PROSE)]  # one passage of 1167 characters, its lines reflowed


def test_clean_lines_removes_navigation_and_boilerplate_but_keeps_prose_and_headings():
    page = "\n".join(
        [
            "Home",
            "About Us | Contact | Shop",
            "You need to enable JavaScript to run this app.",
            "This site uses cookies to improve your experience, see our cookie policy for details.",
            "By using it you agree to the Terms of Use of this site.",
            "# The river valley",
            PROSE[0] + "[1]",
            "Share on Facebook",
            "Posted in Travel, Rivers, Walking",
            "2019 (4) 2018 (7) 2017 (3) 2016 (9) 2015 (2) 2014 (5) 2013 (6) 2012 (1)",
            PROSE[1],
        ]
    )
    cleaned = clean_text(page)
    assert cleaned.text == f"# The river valley\n{PROSE[0]}\n{PROSE[1]}"
    assert cleaned.lines == 11 and cleaned.removed == 8
    assert cleaned.removed_fraction == pytest.approx(0.347466, abs=1e-6)  # most of the characters are the prose
    assert BoilerplateFilter().check(page) is None
    assert clean_lines("Title\n=====\n\n" + PROSE[0]) == "Title\n=====\n\n" + PROSE[0]
    assert clean_lines("x" * 1200 + " is one very long word in a sentence.\n" + PROSE[0]) == PROSE[0]


def test_each_document_rule_drops_what_it_should():
    gopher, c4, rep, upper = GopherQualityFilter(), C4QualityFilter(), GopherRepetitionFilter(), UppercaseFilter()
    cases = [
        (gopher, "A short note with the words that count.", "too_few_words"),
        (gopher, "the word " * 110_000, "too_many_words"),  # 660k chars: counted on a prefix, extrapolated
        (gopher, " ".join(["internationalization electroencephalography"] * 40 + ["the and"] * 5), "avg_word_length"),
        (gopher, DOC + " " + "#tag " * 40, "symbol_ratio"),
        (
            gopher,
            "\n".join(f"- item {i} of the list with some words in it and more" for i in range(30)),
            "bullet_lines",
        ),
        (gopher, "\n".join(f"{s[:150]}..." for s in PROSE * 3), "ellipsis_lines"),
        (gopher, " ".join(f"{1000 + i} {2000 + i} {3000 + i}" for i in range(60)) + " the and", "no_alpha_words"),
        (gopher, "Cats chase mice in barns. Dogs chase cats across fields. " * 20, "stop_words"),
        (upper, DOC.upper(), "uppercase_ratio"),
        (c4, DOC + " Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "lorem_ipsum"),
        (c4, "body { margin: 0; }\n.menu { color: red; }\nfunction f() { return 1; }\n" + DOC, "curly_braces"),
        (c4, "one long run-on clause without a full stop " * 20 + ". Another one. A third.", "too_few_sentences"),
        (rep, "\n\n".join([PROSE[0], PROSE[1], PROSE[0], PROSE[0]]), "dup_para_fraction"),
        (
            rep,
            "\n".join([PROSE[0], PROSE[1], "Click here to read more.", "Click here to read more."] * 2),
            "dup_line_fraction",
        ),
        (rep, " ".join(f"new york w{i}x" for i in range(200)), "top_2gram"),
        (rep, PROSE[2] + " " + PROSE[2], "dup_5gram"),  # one line, one paragraph, repeated text
    ]
    for f, text, reason in cases:
        assert f.check(text) == reason, (f.name, reason, text[:80])
    # prose that mentions a brace once is not a code dump (C4 itself would drop it)
    assert c4.check(DOC + " In the template the name is written as {name}.") is None
    assert LengthFilter(600, 3000).check("x" * 599) == "too_short"
    assert LengthFilter(600, 3000).check("x" * 3001) == "too_long"
    assert LengthFilter(600, 3000).check("x" * 600) is None
    menu = "\n".join(f"Menu item number {i} | Section {i} | Page {i}" for i in range(40))
    assert BoilerplateFilter().check(menu + "\n" + PROSE[0]) == "boilerplate_lines"


def test_clean_document_reports_document_and_passage_drops():
    assert clean_document("too short") == ([], {"too_short": 1})
    menu = "\n".join(f"Menu item number {i} | Section {i} | Page {i}" for i in range(40))
    assert clean_document(menu + "\n" + DOC) == ([], {"boilerplate_lines": 1})
    assert clean_document(DOC.upper()) == ([], {"uppercase_ratio": 1})
    # two sections under headings: one long enough, one a fragment under min_chars
    doc = "# Rivers\n\n" + "\n".join(PROSE) + "\n\n# Notes\n\nSee the map at the station for the walks. It is free."
    passages, counts = clean_document(doc, min_chars=600, max_chars=3000)
    assert len(passages) == 1 and passages[0].startswith("Rivers\n\nThe river starts")
    assert counts == {f"{PASSAGE_PREFIX}too_short": 1}


def test_a_50_mb_single_line_document_does_not_hang():
    huge = "lorem word " * 4_600_000  # ~50 MB, one line, no newline
    assert len(huge) > 50_000_000
    start = time.perf_counter()
    assert clean_document(huge) == ([], {"too_long": 1})
    assert clean_lines(huge) == ""
    assert {f.name: f.check(huge) for f in (*DOCUMENT_FILTERS, BoilerplateFilter(), LengthFilter())} == {
        "c4_quality": "too_few_sentences",
        "gopher_quality": "too_many_words",
        "uppercase_ratio": None,
        "gopher_repetition": "top_2gram",
        "boilerplate_lines": None,
        "length": "too_long",
    }
    # just under the cap, the whole pipeline runs on one ~1 MB line
    line = ("The cat sat on the mat and looked at the dog for a while. " * 20_000)[: MAX_DOC_CHARS - 1]
    assert clean_document(line)[1] == {"too_many_words": 1}
    # inputs that make naive regexes backtrack
    assert clean_document("." * 300_000 + "x") == ([], {"boilerplate_lines": 1})
    assert clean_document("[" + "1" * 300_000) == ([], {"boilerplate_lines": 1})
    assert time.perf_counter() - start < 20


# ------------------------------------------------------------------------------------------ real web text


def _texts(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def _run(docs: list[str]) -> tuple[list[str], Counter[str], int]:
    passages: list[str] = []
    counts: Counter[str] = Counter()
    for doc in docs:
        kept, dropped = clean_document(doc, min_chars=600, max_chars=3000)
        passages += kept
        counts.update(dropped)
    doc_drops = sum(v for k, v in counts.items() if not k.startswith(PASSAGE_PREFIX))
    return passages, counts, doc_drops


@pytest.fixture(scope="module")
def c4_docs() -> list[str]:
    path = Path(__file__).resolve().parents[4] / "shared" / "data" / "web" / "c4_en_sample_1000.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not here (tests on real data need ../shared/data)")
    return _texts(path)


@pytest.fixture(scope="module")
def c4_result(c4_docs) -> tuple[list[str], Counter[str], int]:
    return _run(c4_docs)


@pytest.fixture(scope="module")
def c4_passages(c4_result) -> list[str]:
    return c4_result[0]


def test_c4_sample_gives_bounded_passages_and_drop_counts(c4_docs, c4_result):
    passages, counts, doc_drops = c4_result
    print(f"\nC4: {len(c4_docs)} documents -> {len(passages)} passages; drops: {dict(counts.most_common())}")
    assert (len(c4_docs), len(passages), doc_drops) == (1000, 935, 339)
    assert all(600 <= len(p) <= 3000 for p in passages)
    assert dict(counts) == {
        "too_short": 293,  # C4 pages under one passage's worth of text
        f"{PASSAGE_PREFIX}too_short": 56,  # tails of long pages
        "dup_5gram": 20,  # Gopher repetition: 31 documents in all
        "dup_7gram": 1,
        "dup_8gram": 1,
        "top_2gram": 1,
        "top_3gram": 5,
        "top_4gram": 3,
        "too_few_sentences": 10,
        "stop_words": 2,
        f"{PASSAGE_PREFIX}stop_words": 2,
        "no_alpha_words": 2,
        "uppercase_ratio": 1,
    }
    assert all(first_reason(p, PASSAGE_FILTERS) is None for p in passages)


@pytest.mark.parametrize(
    ("name", "documents", "kept", "drops"),
    [
        (
            "dclm_cc_text_499.jsonl",
            499,
            522,
            {
                "too_short": 128,
                f"{PASSAGE_PREFIX}too_short": 23,
                "too_few_sentences": 11,
                "boilerplate_lines": 11,
                "ellipsis_lines": 7,
                "top_4gram": 1,
                f"{PASSAGE_PREFIX}stop_words": 1,
                f"{PASSAGE_PREFIX}uppercase_ratio": 1,
            },
        ),
        (
            "dolma_tests_cc_en_head-0091.jsonl",
            10,
            33,
            {"too_short": 3, f"{PASSAGE_PREFIX}too_short": 2, "too_few_sentences": 1, "dup_6gram": 1},
        ),
        ("dolma_tests_cc_en_head-0174.jsonl", 10, 23, {"too_short": 2, f"{PASSAGE_PREFIX}too_short": 2}),
        (
            "dolma_provided_documents_000.json.gz",
            10,
            16,
            {"too_short": 1, "boilerplate_lines": 1, f"{PASSAGE_PREFIX}too_short": 1},
        ),
    ],
)
def test_raw_common_crawl_and_dolma_text_is_cleaned(shared_data, name, documents, kept, drops):
    docs = _texts(shared_data / "web" / name)
    passages, counts, _doc_drops = _run(docs)
    print(f"\n{name}: {len(docs)} documents -> {len(passages)} passages; drops: {dict(counts.most_common())}")
    assert (len(docs), len(passages), dict(counts)) == (documents, kept, drops)
    assert all(600 <= len(p) <= 3000 for p in passages)
    for p in passages:
        lowered = p.lower()
        assert "javascript" not in lowered and "cookie policy" not in lowered and "terms of use" not in lowered


def test_planted_near_and_exact_duplicates_are_caught_and_distinct_passages_are_not(c4_passages):
    near = NearDuplicateFilter()
    for i, p in enumerate(c4_passages):  # real passages are all distinct
        assert near.seen(p, key=f"c4-{i}") is None
    assert len(near) == len(c4_passages)

    original_index = max(range(len(c4_passages)), key=lambda i: len(c4_passages[i]))
    original = c4_passages[original_index]
    words = original.split()
    assert len(words) > 150
    for j, replacement in ((10, "banana"), (60, "sandwich"), (120, "umbrella")):
        words[j] = replacement
    edited = " ".join(words)
    respaced = "  " + original.upper().replace(" ", " \n\t ") + "\n"

    assert content_hash(edited) != content_hash(original)  # a few words changed: not an exact duplicate ...
    assert near.seen(edited) == f"c4-{original_index}"  # ... but a near one
    assert content_hash(respaced) == content_hash(original)  # case and whitespace do not count
    assert near.seen(respaced) == f"c4-{original_index}"
    assert minhash(edited).jaccard(minhash(original)) == 0.921875  # 118 of 128 hashes: over the 0.8 threshold
    assert len(near) == len(c4_passages)  # duplicates are not indexed

    # sharing one sentence with `original` does not make a text its near-duplicate
    other_index = (original_index + 1) % len(c4_passages)
    mixed = original.split(". ")[0] + ". " + c4_passages[other_index]
    # (it is one of `other`'s: the rest of its text is that passage)
    assert near.query(mixed) == f"c4-{other_index}"


def test_dedup_batch_decides_against_the_store_and_earlier_items_of_the_batch(c4_passages):
    """What ingestion runs for every batch: the store (PostgreSQL there) returns hashes, band buckets and
    signatures; the batch is decided in order and only kept items count as "earlier"."""
    params = lsh_params()
    assert (params.bands, params.rows) == (9, 13)
    stored = pending(c4_passages[0], params)
    known = Known(hashes={stored.content_hash}, signatures={7: stored.signature})
    for key in stored.band_keys:
        known.buckets[key] = [7]
    words = c4_passages[1].split()
    words[5] = "zeppelin"
    texts = [
        c4_passages[0].upper(),  # exact duplicate of the stored one
        c4_passages[0] + " Thanks for reading.",  # near duplicate of the stored one
        c4_passages[1],  # new
        " ".join(words),  # near duplicate of item 2 (same batch)
        c4_passages[2],  # dropped by check: not remembered ...
        "  " + c4_passages[2],  # ... so its copy is checked (and dropped) again, not called a duplicate
        c4_passages[3],
        c4_passages[3],
        "",
    ]
    items = [pending(t, params) for t in texts]
    dropped = {4, 5}
    decisions = dedup_batch(items, known, params, check=lambda i: "eval_overlap" if i in dropped else None)
    assert decisions == [
        ("exact_duplicate", stored.content_hash),
        ("near_duplicate", 7),
        (None, None),
        ("near_duplicate", ("batch", 2)),
        ("eval_overlap", None),
        ("eval_overlap", None),
        (None, None),
        ("exact_duplicate", items[7].content_hash),
        (None, None),  # no words: no signature, never a near duplicate
    ]
    assert items[8].signature is None and items[2].signature.nbytes == 512
    # a band hit whose signature is not similar enough is not a duplicate
    known.signatures[7] = known.signatures[7].copy()
    known.signatures[7][: params.num_perm // 2] += 1
    assert dedup_batch(
        [pending(c4_passages[0] + " Thanks.", params)],
        Known(buckets=known.buckets, signatures=known.signatures),
        params,
    ) == [(None, None)]


def test_near_duplicate_filter_edge_cases():
    near = NearDuplicateFilter()
    assert near.seen("") is None and len(near) == 0  # no words: never a duplicate, not indexed
    assert shingles("one two three") == {"one two three"}
    assert near.seen("one two three", key="a") is None
    assert near.seen("One  two THREE") == "a"
    assert near.seen(PROSE[0], key="b") is None
    assert near.seen(PROSE[1], key="c") is None
    with pytest.raises(ValueError, match="^key 'b' is already indexed$"):
        near.add("b", PROSE[2])


def test_decontamination_catches_eval_prompts_inside_passages(shared_data, c4_passages):
    prompts = [
        turn
        for name in ("mtbench_questions.jsonl", "vicuna_bench_questions.jsonl")
        for line in (shared_data / "eval" / name).read_text().splitlines()
        for turn in json.loads(line)["turns"]
    ]
    dc = Decontaminator(prompts)
    assert not [p for p in c4_passages if dc.check(p)]  # the C4 sample does not contain MT-bench or Vicuna

    long_i = max(range(len(prompts)), key=lambda i: len(prompts[i].split()))
    short_i = prompts.index("Prove the Pythagorean theorem.")
    passage = c4_passages[0]
    middle = len(passage) // 2
    planted = passage[:middle] + " " + prompts[long_i].upper() + " " + passage[middle:]
    assert dc.match(planted) == long_i and dc.check(planted) == "eval_overlap"
    assert dc.match(passage + " Now, prove the Pythagorean theorem!") == short_i  # shorter than 13 words: whole
    assert dc.check(passage + " We prove the theorem of Pythagoras.") is None

    # 13 consecutive words of a long prompt are enough; 12 are not (punctuation is not a word)
    words = re.findall(r"\w+", prompts[long_i])
    assert Decontaminator([prompts[long_i]]).check("Intro. " + " ".join(words[3:16]) + " outro") == "eval_overlap"
    assert Decontaminator([prompts[long_i]]).check("Intro. " + " ".join(words[3:15]) + " outro") is None
