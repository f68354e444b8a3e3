"""Curation signals and the keep rule (generation/pipeline/signals.py): pure, no database, no model."""

from __future__ import annotations

import math
import random

import pytest

from generation.pipeline.signals import (
    KEEP_RULES,
    LogLik,
    keep_decisions,
    keep_score,
    likelihood_signals,
    oriented,
    signal_aucs,
    validate_curation,
)
from generation.pipeline.statistics import auc

# --------------------------------------------------------------------------------------------------------------
# LogLik and likelihood_signals
# --------------------------------------------------------------------------------------------------------------


def test_nll_is_the_mean_negative_log_probability_per_token():
    assert LogLik(total=-6.0, tokens=3).nll == 2.0
    assert LogLik(total=-1.5, tokens=1).nll == 1.5


def test_nll_of_an_empty_text_is_none():
    assert LogLik(total=0.0, tokens=0).nll is None


def test_agreement_is_the_loss_the_instruction_saves_and_ifd_the_loss_ratio():
    # log p(y | x̂): 3 tokens, 1 nat each; log p(y): 4 tokens, 2 nats each.
    result = likelihood_signals(LogLik(total=-3.0, tokens=3), LogLik(total=-8.0, tokens=4))
    assert result == {"agreement": 1.0, "ifd": 0.5, "nll_conditional": 1.0, "nll_unconditional": 2.0}


def test_an_instruction_that_does_not_help_has_negative_agreement_and_ifd_above_one():
    result = likelihood_signals(LogLik(total=-7.5, tokens=3), LogLik(total=-6.0, tokens=3))
    assert result == {"agreement": -0.5, "ifd": 1.25, "nll_conditional": 2.5, "nll_unconditional": 2.0}


def test_signals_are_rounded_to_six_decimals():
    result = likelihood_signals(LogLik(total=-1.0, tokens=3), LogLik(total=-2.0, tokens=3))
    assert result == {"agreement": 0.333333, "ifd": 0.5, "nll_conditional": 0.333333, "nll_unconditional": 0.666667}


def test_an_empty_response_has_no_signals():
    result = likelihood_signals(LogLik(total=0.0, tokens=0), LogLik(total=-8.0, tokens=4))
    assert result == {"agreement": None, "ifd": None, "nll_conditional": None, "nll_unconditional": 2.0}
    result = likelihood_signals(LogLik(total=-3.0, tokens=3), LogLik(total=0.0, tokens=0))
    assert result == {"agreement": None, "ifd": None, "nll_conditional": 1.0, "nll_unconditional": None}


def test_a_non_finite_loss_gives_no_signals():
    result = likelihood_signals(LogLik(total=-math.inf, tokens=3), LogLik(total=-8.0, tokens=4))
    assert (result["agreement"], result["ifd"]) == (None, None)


def test_ifd_is_undefined_when_the_unconditional_loss_is_zero():
    result = likelihood_signals(LogLik(total=-3.0, tokens=3), LogLik(total=0.0, tokens=3))
    assert result == {"agreement": -1.0, "ifd": None, "nll_conditional": 1.0, "nll_unconditional": 0.0}


# --------------------------------------------------------------------------------------------------------------
# auc
# --------------------------------------------------------------------------------------------------------------


def test_auc_of_a_perfect_separation_is_one_and_of_a_reversed_one_zero():
    labels = [False, False, True, True]
    assert auc([1.0, 2.0, 3.0, 4.0], labels) == 1.0
    assert auc([4.0, 3.0, 2.0, 1.0], labels) == 0.0


def test_auc_counts_ties_half():
    assert auc([1.0, 1.0], [True, False]) == 0.5
    # positives 2, 3 against negatives 1, 2: 1 + 0.5 + 1 + 1 of 4 pairs.
    assert auc([1.0, 2.0, 2.0, 3.0], [False, True, False, True]) == 0.875


def test_auc_is_none_when_a_class_is_empty():
    assert auc([1.0, 2.0], [True, True]) is None
    assert auc([1.0, 2.0], [False, False]) is None
    assert auc([], []) is None


def test_auc_leaves_out_items_without_a_score():
    # Without the None and the NaN: negatives 5, 1 against the positive 2.
    assert auc([5.0, None, 1.0, 2.0, math.nan], [False, True, False, True, True]) == 0.5
    assert auc([None, 1.0, 2.0], [True, False, False]) is None, "the only positive has no score"


def test_auc_rejects_scores_and_labels_of_different_lengths():
    with pytest.raises(ValueError):
        auc([1.0, 2.0], [True])


def test_auc_equals_the_share_of_correctly_ordered_pairs():
    rng = random.Random(7)
    for _ in range(20):
        scores = [float(rng.randint(0, 5)) for _ in range(30)]
        labels = [rng.random() < 0.4 for _ in range(30)]
        pos = [s for s, y in zip(scores, labels, strict=True) if y]
        neg = [s for s, y in zip(scores, labels, strict=True) if not y]
        pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
        assert auc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))


# --------------------------------------------------------------------------------------------------------------
# oriented and signal_aucs
# --------------------------------------------------------------------------------------------------------------


def test_oriented_negates_ifd_only():
    assert oriented("ifd", 0.4) == -0.4
    assert oriented("agreement", 0.4) == 0.4
    assert oriented("rubric", 4.5) == 4.5
    assert oriented("ifd", None) is None


def test_signal_aucs_reward_low_ifd_and_high_agreement():
    rows = [
        {"rubric": 3.0, "agreement": 0.8, "ifd": 0.3},
        {"rubric": 3.0, "agreement": 0.6, "ifd": 0.5},
        {"rubric": 3.0, "agreement": 0.1, "ifd": 0.9},
        {"rubric": 3.0, "agreement": -0.2, "ifd": 1.1},
    ]
    labels = [True, True, False, False]
    assert signal_aucs(rows, labels) == {"rubric": 0.5, "agreement": 1.0, "ifd": 1.0}


def test_signal_aucs_of_a_missing_signal_is_none():
    rows = [{"rubric": 5.0}, {"rubric": 1.0}]
    assert signal_aucs(rows, [True, False]) == {"rubric": 1.0, "agreement": None, "ifd": None}
    assert signal_aucs(rows, [True, False], signals=("rubric",)) == {"rubric": 1.0}


# --------------------------------------------------------------------------------------------------------------
# keep_score
# --------------------------------------------------------------------------------------------------------------

SIGNALS = {"rubric": 4.2, "agreement": 0.3, "ifd": 0.7}


@pytest.mark.parametrize(
    ("curation", "expected"),
    [
        ({"keep": "rubric"}, 4.2),
        ({"keep": "agreement"}, 0.3),
        ({"keep": "ifd"}, 0.7),
        ({"keep": "agreement_rubric"}, 4.2),
        ({}, 4.2),  # a legacy config ranks by the rubric
        ({"keep": None}, 4.2),
    ],
)
def test_keep_score_is_the_rule_s_signal(curation, expected):
    assert keep_score(SIGNALS, curation) == expected


def test_keep_score_is_none_without_a_finite_value():
    assert keep_score({"rubric": 4.0}, {"keep": "agreement"}) is None
    assert keep_score({"agreement": None}, {"keep": "agreement"}) is None
    assert keep_score({"agreement": math.nan}, {"keep": "agreement"}) is None
    assert keep_score({"agreement": 1}, {"keep": "agreement"}) == 1.0


# --------------------------------------------------------------------------------------------------------------
# keep_decisions
# --------------------------------------------------------------------------------------------------------------


def _rows(**columns: list) -> list[dict]:
    n = len(next(iter(columns.values())))
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def test_every_keep_rule_is_covered_here():
    assert set(KEEP_RULES) == {"rubric", "agreement", "ifd", "agreement_rubric"}


def test_rubric_threshold_keeps_scores_at_or_above_it():
    rows = _rows(rubric=[4.6, 4.5, 4.4, None])
    assert keep_decisions(rows, [False] * 4, {"keep": "rubric", "threshold": 4.5}) == [True, True, False, False]


def test_agreement_threshold_keeps_agreement_at_or_above_it():
    rows = _rows(agreement=[0.2, 0.05, -0.1, None], rubric=[1.0, 5.0, 5.0, 5.0])
    assert keep_decisions(rows, [False] * 4, {"keep": "agreement", "threshold": 0.05}) == [True, True, False, False]


def test_top_k_keeps_the_highest_and_breaks_ties_by_position():
    rows = _rows(rubric=[4.0, 5.0, 4.0, 4.0, None])
    assert keep_decisions(rows, [False] * 5, {"keep": "rubric", "top_k": 2}) == [True, True, False, False, False]
    assert keep_decisions(rows, [False] * 5, {"keep": "rubric", "top_k": 3}) == [True, True, True, False, False]


def test_top_k_larger_than_the_eligible_rows_keeps_them_all():
    rows = _rows(agreement=[0.1, None, 0.3])
    assert keep_decisions(rows, [False] * 3, {"keep": "agreement", "top_k": 10}) == [True, False, True]


@pytest.mark.parametrize(
    "curation",
    [
        {"keep": "rubric", "threshold": 1.0},
        {"keep": "rubric", "top_k": 3},
        {"keep": "agreement", "top_k": 3},
        {"keep": "ifd", "ifd_band": [None, None]},
        {"keep": "agreement_rubric", "top_k": 3, "min_agreement": -10.0},
    ],
)
def test_gated_rows_are_never_kept(curation):
    rows = _rows(rubric=[5.0, 4.0, 3.0], agreement=[0.9, 0.5, 0.1], ifd=[0.2, 0.5, 0.8])
    assert keep_decisions(rows, [True, False, True], curation) == [False, True, False]


def test_min_agreement_is_a_floor_under_the_rubric_rule():
    rows = _rows(rubric=[5.0, 5.0, 5.0, 2.0], agreement=[0.2, 0.05, None, 0.9])
    cur = {"keep": "rubric", "threshold": 3.0, "min_agreement": 0.1}
    assert keep_decisions(rows, [False] * 4, cur) == [True, False, False, False]


def test_the_floor_applies_before_top_k():
    rows = _rows(rubric=[5.0, 4.9, 4.0, 3.0], agreement=[-0.1, 0.3, 0.2, 0.4])
    cur = {"keep": "rubric", "top_k": 2, "min_agreement": 0.0}
    assert keep_decisions(rows, [False] * 4, cur) == [False, True, True, False]


def test_ifd_band_keeps_lo_inclusive_hi_exclusive():
    rows = _rows(ifd=[0.0, 0.5, 0.99, 1.0, 1.2, -0.1, None])
    cur = {"keep": "ifd", "ifd_band": [0.0, 1.0]}
    assert keep_decisions(rows, [False] * 7, cur) == [True, True, True, False, False, False, False]


def test_an_open_end_of_the_ifd_band_has_no_bound():
    rows = _rows(ifd=[-0.1, 0.5, 1.0, 3.0])
    assert keep_decisions(rows, [False] * 4, {"keep": "ifd", "ifd_band": [None, 1.0]}) == [True, True, False, False]
    assert keep_decisions(rows, [False] * 4, {"keep": "ifd", "ifd_band": [0.5, None]}) == [False, True, True, True]


def test_the_ifd_rule_s_top_k_picks_the_highest_ifd_inside_the_band():
    rows = _rows(ifd=[0.3, 0.9, 0.95, 1.5, 0.6, 0.9])
    cur = {"keep": "ifd", "ifd_band": [0.0, 1.0], "top_k": 2}
    assert keep_decisions(rows, [False] * 6, cur) == [False, True, True, False, False, False]
    cur = {"keep": "ifd", "ifd_band": [0.0, 1.0], "top_k": 3}
    assert keep_decisions(rows, [False] * 6, cur) == [False, True, True, False, False, True]


def test_the_ifd_band_is_a_floor_under_other_rules_too():
    rows = _rows(rubric=[5.0, 5.0, 5.0], ifd=[0.5, 1.2, None])
    cur = {"keep": "rubric", "threshold": 4.0, "ifd_band": [0.0, 1.0]}
    assert keep_decisions(rows, [False] * 3, cur) == [True, False, False]


def test_agreement_rubric_has_an_implicit_agreement_floor_of_zero():
    rows = _rows(rubric=[5.0, 5.0, 5.0, 5.0, 3.0], agreement=[0.1, -0.1, 0.0, None, 0.5])
    assert keep_decisions(rows, [False] * 5, {"keep": "agreement_rubric", "threshold": 4.0}) == [
        True,
        False,
        True,
        False,
        False,
    ]


def test_agreement_rubric_takes_an_explicit_floor():
    rows = _rows(rubric=[5.0, 5.0, 5.0, 5.0], agreement=[0.1, -0.1, 0.0, None])
    cur = {"keep": "agreement_rubric", "threshold": 4.0, "min_agreement": 0.05}
    assert keep_decisions(rows, [False] * 4, cur) == [True, False, False, False]
    cur = {"keep": "agreement_rubric", "threshold": 4.0, "min_agreement": -0.5}
    assert keep_decisions(rows, [False] * 4, cur) == [True, True, True, False]


def test_agreement_rubric_top_k_ranks_by_the_rubric():
    rows = _rows(rubric=[3.0, 4.0, 5.0, 4.5], agreement=[0.9, 0.2, -0.3, 0.1])
    cur = {"keep": "agreement_rubric", "top_k": 2}
    assert keep_decisions(rows, [False] * 4, cur) == [False, True, False, True]


def test_a_legacy_config_without_keep_behaves_as_the_rubric_rule():
    rows = _rows(rubric=[4.9, 4.0, 4.6, 3.0], agreement=[-0.5, 0.5, 0.1, 0.9], ifd=[2.0, 0.5, 0.4, 0.1])
    assert keep_decisions(rows, [False] * 4, {"threshold": 4.5}) == [True, False, True, False]
    assert keep_decisions(rows, [False] * 4, {"top_k": 1}) == [True, False, False, False]
    assert keep_decisions(rows, [False] * 4, {"threshold": 4.5}) == keep_decisions(
        rows, [False] * 4, {"keep": "rubric", "threshold": 4.5}
    )


def test_keep_decisions_are_deterministic_and_do_not_depend_on_dict_order():
    rng = random.Random(3)
    rows = [{"rubric": float(rng.randint(1, 5)), "agreement": rng.uniform(-1, 1)} for _ in range(50)]
    gated = [rng.random() < 0.2 for _ in range(50)]
    cur = {"keep": "agreement_rubric", "top_k": 10}
    first = keep_decisions(rows, gated, cur)
    assert first == keep_decisions([dict(reversed(r.items())) for r in rows], gated, dict(reversed(cur.items())))
    assert sum(first) == 10


# --------------------------------------------------------------------------------------------------------------
# validate_curation
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cur",
    [
        {"keep": "rubric", "threshold": 4.5},
        {"keep": "rubric", "top_k": 100},
        {"keep": "agreement", "threshold": -0.2},
        {"keep": "agreement", "top_k": 5, "min_agreement": 0},
        {"keep": "ifd", "ifd_band": [0, 1]},
        {"keep": "ifd", "ifd_band": [None, 1.0], "top_k": 10},
        {"keep": "agreement_rubric", "threshold": 4.0, "min_agreement": None},
        {"keep": "agreement_rubric", "top_k": 3, "ifd_band": (0.0, None)},
    ],
)
def test_valid_curation_configs_pass(cur):
    assert validate_curation(cur) is None


@pytest.mark.parametrize(
    ("cur", "message"),
    [
        ({"keep": "best"}, "curation.keep must be one of agreement, rubric, ifd, agreement_rubric, got 'best'"),
        ({"threshold": 4.5}, "curation.keep must be one of agreement, rubric, ifd, agreement_rubric, got None"),
        ({"keep": "rubric", "threshold": 4.5, "top_k": 3}, "curation takes a threshold or a top_k, not both"),
        (
            {"keep": "ifd", "threshold": 0.5, "ifd_band": [0, 1]},
            "curation.keep 'ifd' keeps the pairs inside curation.ifd_band (and its top_k): no threshold",
        ),
        ({"keep": "ifd", "top_k": 3}, "curation.keep 'ifd' needs curation.ifd_band, e.g. [0, 1]"),
        ({"keep": "agreement"}, "curation.keep 'agreement' needs a threshold or a top_k"),
        ({"keep": "rubric", "threshold": "4"}, "curation.threshold must be a number, got '4'"),
        ({"keep": "agreement", "threshold": True}, "curation.threshold must be a number, got True"),
        ({"keep": "agreement", "threshold": math.inf}, "curation.threshold must be a number, got inf"),
        ({"keep": "rubric", "threshold": 7}, "curation.threshold is on the rubric's scale for 'rubric': 1–5, got 7"),
        (
            {"keep": "agreement_rubric", "threshold": 0.5},
            "curation.threshold is on the rubric's scale for 'agreement_rubric': 1–5, got 0.5",
        ),
        ({"keep": "rubric", "top_k": 0}, "curation.top_k must be a positive integer, got 0"),
        ({"keep": "rubric", "top_k": 2.5}, "curation.top_k must be a positive integer, got 2.5"),
        ({"keep": "rubric", "top_k": True}, "curation.top_k must be a positive integer, got True"),
        (
            {"keep": "rubric", "top_k": 3, "min_agreement": "0"},
            "curation.min_agreement must be a number or null, got '0'",
        ),
        (
            {"keep": "ifd", "ifd_band": [1, 0]},
            "curation.ifd_band must be [low, high] with low < high (either may be null), got [1, 0]",
        ),
        (
            {"keep": "ifd", "ifd_band": [1, 1]},
            "curation.ifd_band must be [low, high] with low < high (either may be null), got [1, 1]",
        ),
        (
            {"keep": "ifd", "ifd_band": [0.5]},
            "curation.ifd_band must be [low, high] with low < high (either may be null), got [0.5]",
        ),
        (
            {"keep": "rubric", "top_k": 3, "ifd_band": [0, "1"]},
            "curation.ifd_band must be [low, high] with low < high (either may be null), got [0, '1']",
        ),
        (
            {"keep": "rubric", "top_k": 3, "ifd_band": "0,1"},
            "curation.ifd_band must be [low, high] with low < high (either may be null), got '0,1'",
        ),
    ],
)
def test_invalid_curation_configs_name_the_key(cur, message):
    with pytest.raises(ValueError) as excinfo:
        validate_curation(cur)
    assert str(excinfo.value) == message
