"""The held-out seed split (generation/pipeline/training.py `heldout_split`): pure, no database, no model."""

from __future__ import annotations

import random

from generation.pipeline.training import heldout_split


def _rows(n: int, start: int = 1) -> list[tuple[int, str]]:
    return [(i, f"Seed instruction number {i}: explain topic {i * 7919 % 1000}.") for i in range(start, start + n)]


def test_the_split_is_deterministic_and_sorted():
    rows = _rows(400)
    held = heldout_split(rows, fraction=0.1, minimum=0, maximum=1000)
    assert held == heldout_split(rows, fraction=0.1, minimum=0, maximum=1000)
    assert held == sorted(held)
    assert len(held) == len(set(held))
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert heldout_split(shuffled, fraction=0.1, minimum=0, maximum=1000) == held, "input order does not matter"


def test_a_larger_fraction_holds_out_a_superset():
    rows = _rows(2000)
    held = [set(heldout_split(rows, fraction=f, minimum=0, maximum=10_000)) for f in (0.05, 0.1, 0.2)]
    # A sha256 of each instruction against the fraction: these rows give 113, 211 and 403 (about 5, 10, 20%).
    assert [len(h) for h in held] == [113, 211, 403]
    assert held[0] < held[1] < held[2]


def test_a_held_out_pair_stays_held_out_as_the_set_grows():
    small = _rows(200)
    grown = small + _rows(800, start=1000)
    held_small = heldout_split(small, fraction=0.1, minimum=0, maximum=1000)
    held_grown = heldout_split(grown, fraction=0.1, minimum=0, maximum=1000)
    assert len(held_small) == 20, "the fraction rule chose some pairs"
    small_ids = {i for i, _ in small}
    assert {i for i in held_grown if i in small_ids} == set(held_small), "no pair changes side"
    assert len(held_grown) == 115


def test_the_split_follows_the_instruction_text_not_the_id_or_its_spacing():
    rows = _rows(200)
    variants = [(i + 10_000, "  " + text.upper().replace(" ", "   ")) for i, text in rows]
    held = set(heldout_split(rows + variants, fraction=0.1, minimum=0, maximum=1000))
    assert len(held) == 40, "the fraction rule chose 20 pairs, each with its variant"
    assert all((i in held) == (i + 10_000 in held) for i, _ in rows)


def test_the_minimum_tops_up_the_split():
    rows = _rows(100)
    assert len(heldout_split(rows, fraction=0.0, minimum=5, maximum=1000)) == 5
    by_fraction = heldout_split(rows, fraction=0.01, minimum=0, maximum=1000)
    topped_up = heldout_split(rows, fraction=0.01, minimum=20, maximum=1000)
    assert len(topped_up) == 20
    assert set(by_fraction) <= set(topped_up), "the pairs the fraction chose stay in"


def test_the_maximum_caps_the_split():
    rows = _rows(400)
    assert len(heldout_split(rows, fraction=0.5, minimum=0, maximum=7)) == 7
    assert len(heldout_split(rows, fraction=0.0, minimum=50, maximum=10)) == 10, "the maximum beats the minimum"
    capped = heldout_split(rows, fraction=0.5, minimum=0, maximum=7)
    assert set(capped) <= set(heldout_split(rows, fraction=0.5, minimum=0, maximum=1000))


def test_never_more_than_a_quarter_of_the_rows():
    assert len(heldout_split(_rows(100), fraction=0.9, minimum=0, maximum=1000)) == 25
    assert len(heldout_split(_rows(100), fraction=0.0, minimum=60, maximum=1000)) == 25
    assert len(heldout_split(_rows(7), fraction=0.0, minimum=5, maximum=1000)) == 1
    assert heldout_split(_rows(3), fraction=0.5, minimum=2, maximum=1000) == []


def test_empty_when_nothing_is_asked_for():
    assert heldout_split(_rows(100), fraction=0.0, minimum=0, maximum=1000) == []
    assert heldout_split([], fraction=0.2, minimum=5, maximum=1000) == []


def test_a_generator_of_rows_is_accepted():
    rows = _rows(100)
    assert heldout_split(iter(rows), fraction=0.0, minimum=4, maximum=10) == heldout_split(
        rows, fraction=0.0, minimum=4, maximum=10
    )
