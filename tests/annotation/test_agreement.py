"""Inter-annotator agreement (annotation.agreement) against hand-checked numbers. Pure functions: no database."""

from fractions import Fraction

import pytest

from annotation.agreement import (
    _kappa,
    cohen_kappa,
    fleiss_kappa,
    interpret_kappa,
    pairwise_agreement,
    round_agreement,
)

# --- Cohen ---------------------------------------------------------------------------------------------------


def test_cohen_wikipedia_example():
    # A/B: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no. p_o = 35/50 = 0.7; A says yes 25/50, B 30/50,
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    a, b = zip(*pairs, strict=True)
    assert cohen_kappa(a, b) == 0.4
    assert cohen_kappa(b, a) == 0.4  # symmetric


def test_cohen_perfect_and_total_disagreement():
    labels = ["accept", "reject", "accept", "accept"]
    assert cohen_kappa(labels, labels) == 1.0
    # p_o = 0, p_e = (1*1 + 1*1) / 4 = 0.5 -> kappa = -1
    assert cohen_kappa(["accept", "reject"], ["reject", "accept"]) == -1.0


def test_cohen_constant_raters_convention():
    # Both raters accept everything: p_e == 1, kappa undefined -> 1.0 by convention (observed agreement is 1).
    assert cohen_kappa(["accept"] * 5, ["accept"] * 5) == 1.0
    # Constant but different labels is not degenerate: p_e = 0, p_o = 0 -> 0.0.
    assert cohen_kappa(["accept"] * 3, ["reject"] * 3) == 0.0
    # The p_e == 1 branch when observed agreement is not 1 (unreachable from the public functions) gives 0.0.
    assert _kappa(Fraction(1, 2), Fraction(1)) == 0.0


def test_cohen_too_few_items_and_length_mismatch():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["accept"], ["reject"]) is None
    with pytest.raises(ValueError, match="^cohen_kappa needs equally long label sequences, got 2 and 1$"):
        cohen_kappa(["accept", "reject"], ["accept"])


# --- Fleiss --------------------------------------------------------------------------------------------------

# Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters each, 5 categories (counts per category).
WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def _expand(counts: list[int]) -> list[str]:
    return [f"c{j}" for j, n in enumerate(counts) for _ in range(n)]


def test_fleiss_wikipedia_example():
    items = [_expand(row) for row in WIKIPEDIA_FLEISS]
    assert all(len(item) == 14 for item in items)
    # P-bar = 0.378, P_e = 0.213 -> kappa = 0.210 (0.20993 unrounded)
    assert fleiss_kappa(items) == pytest.approx(0.20993, abs=1e-5)
    assert round(fleiss_kappa(items), 3) == 0.210


def test_fleiss_perfect_agreement_and_constant_convention():
    # Every item unanimous, two labels in use: P-bar = 1, P_e = 0.5 -> 1.0
    assert fleiss_kappa([["accept"] * 3, ["reject"] * 3, ["accept", "accept"]]) == 1.0
    # Every rating the same label: P_e == 1 -> 1.0 by convention.
    assert fleiss_kappa([["accept"] * 3, ["accept"] * 2]) == 1.0


def test_fleiss_unequal_rater_counts():
    items = [["accept", "accept", "accept"], ["accept", "reject"], ["reject", "reject"], ["accept"]]
    # The single-rating item is ignored. P_i = 1, 0, 1 -> P-bar = 2/3. Ratings: 4 accept, 3 reject of 7,
    # P_e = 16/49 + 9/49 = 25/49. kappa = (2/3 - 25/49) / (24/49) = 23/72.
    assert fleiss_kappa(items) == pytest.approx(23 / 72)


def test_fleiss_matches_cohen_shape_for_two_raters_disagreeing():
    # Two raters, two items, full disagreement: P-bar = 0, P_e = 0.5 -> -1
    assert fleiss_kappa([["accept", "reject"], ["reject", "accept"]]) == -1.0


def test_fleiss_no_usable_items():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([["accept"], []]) is None


# --- pairwise / round ----------------------------------------------------------------------------------------

DECISIONS = {
    1: {"ann": "accept", "bob": "accept", "cat": "reject"},
    2: {"ann": "reject", "bob": "reject"},
    3: {"cat": "accept", "ann": "accept"},
    4: {"bob": "accept", "dan": "reject"},
    5: {"ann": "accept", "bob": "accept", "cat": "accept"},
    6: {"ann": "reject"},
}


def test_pairwise_agreement():
    pairs = pairwise_agreement(DECISIONS)
    assert [(p["a"], p["b"]) for p in pairs] == [("ann", "bob"), ("ann", "cat"), ("bob", "cat"), ("bob", "dan")]
    by_pair = {(p["a"], p["b"]): p for p in pairs}
    # ann/bob on 1, 2, 5: all agree; p_e = (2*2 + 1*1) / 9 -> kappa 1
    assert by_pair["ann", "bob"] == {"a": "ann", "b": "bob", "items": 3, "agreement": 1.0, "kappa": 1.0}
    # ann/cat on 1, 3, 5: ann all accept, cat reject/accept/accept: p_o = 2/3, p_e = 3*2/9 = 2/3 -> kappa 0
    assert by_pair["ann", "cat"]["items"] == 3
    assert by_pair["ann", "cat"]["agreement"] == pytest.approx(2 / 3)
    assert by_pair["ann", "cat"]["kappa"] == 0.0
    # bob/cat on 1, 5: p_o = 1/2, p_e = 2*1/4 = 1/2 -> kappa 0
    assert by_pair["bob", "cat"] == {"a": "bob", "b": "cat", "items": 2, "agreement": 0.5, "kappa": 0.0}
    # bob/dan share one item only: no kappa
    assert by_pair["bob", "dan"] == {"a": "bob", "b": "dan", "items": 1, "agreement": 0.0, "kappa": None}


def test_pairwise_agreement_empty():
    assert pairwise_agreement({}) == []
    assert pairwise_agreement({1: {"ann": "accept"}, 2: {"bob": "reject"}}) == []


def test_round_agreement():
    summary = round_agreement(DECISIONS)
    assert summary["items_with_overlap"] == 5  # item 6 has a single decision
    assert summary["disagreements"] == [1, 4]
    # Within-item pair agreement: 1/3, 1, 1, 0, 1 -> mean 2/3
    assert summary["percent_agreement"] == pytest.approx(2 / 3)
    # P-bar = 2/3; ratings 8 accept, 4 reject of 12 -> P_e = 5/9; kappa = (1/9) / (4/9) = 0.25
    assert summary["fleiss_kappa"] == 0.25
    assert summary["pairs"] == pairwise_agreement(DECISIONS)


def test_round_agreement_without_overlap():
    assert round_agreement({1: {"ann": "accept"}}) == {
        "items_with_overlap": 0,
        "fleiss_kappa": None,
        "percent_agreement": None,
        "pairs": [],
        "disagreements": [],
    }


# --- interpretation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "band"),
    [
        (None, "n/a"),
        (-0.01, "poor"),
        (-1.0, "poor"),
        (0.0, "slight"),
        (0.20, "slight"),
        (0.21, "fair"),
        (0.40, "fair"),
        (0.4, "fair"),
        (0.41, "moderate"),
        (0.60, "moderate"),
        (0.61, "substantial"),
        (0.80, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
    ],
)
def test_interpret_kappa(k, band):
    assert interpret_kappa(k) == band
