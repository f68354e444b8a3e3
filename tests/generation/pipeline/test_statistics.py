"""The scipy-based statistics (length-controlled win rate, Spearman, ROC AUC) give the numbers the hand-written
implementations they replaced gave on fixed datasets (pure, no database). The expected values were computed with
the hand-written code (damped Newton-Raphson for the logistic fit, average ranks + Pearson, rank-sum AUC)."""

from __future__ import annotations

import random
import warnings

import pytest

from generation.pipeline.statistics import auc, length_controlled_win_rate, spearman


def _lc_datasets() -> list[tuple[list[float], list[float]]]:
    sets = [
        ([0.9, 0.3, 0.8, 0.6, 0.2, 0.95, 0.4, 0.7], [120, -40, 60, 10, -150, 300, -20, 0]),
        ([0.9] * 8 + [0.1] * 2, [100] * 8 + [-100] * 2),
        ([1.0, 1.0, 0.0, 0.0], [50, 40, -40, -50]),  # hard targets, separable by length: only the L2 keeps phi finite
        ([1.0, 0.0, 1.0, 1.0, 0.5], [10, -10, 300, 5, 0]),
        ([0.99, 0.98, 0.97, 0.01], [400, 350, 300, -500]),
    ]
    rng = random.Random(13)
    for n in (5, 40, 300):
        d = [rng.gauss(0, 80) for _ in range(n)]
        p = [min(1.0, max(0.0, 0.6 + 0.002 * di + rng.gauss(0, 0.2))) for di in d]
        sets.append((p, [round(x) for x in d]))
    return sets


LC_BEFORE = [
    0.5759592173285613,
    0.5007899248250853,
    0.5000000000000037,
    0.6033927176222065,
    0.5318558842042655,
    0.663734367854453,
    0.6317922980683296,
    0.591728003504898,
]


def _spearman_datasets() -> list[tuple[list[float], list[float]]]:
    rng = random.Random(7)
    sets = [
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
        ([0.3, 0.1, 0.9, 0.4, 0.4, 0.2], [1, 0, 1, 1, 0, 0]),
        ([3, 1, 2], [1, 2, 3]),
        ([1, 1, 2, 2], [2, 2, 1, 1]),
    ]
    a = [rng.random() for _ in range(50)]
    sets.append((a, [x + rng.gauss(0, 0.3) for x in a]))
    b = [rng.randint(0, 5) for _ in range(60)]
    sets.append((b, [rng.randint(0, 3) for _ in range(60)]))
    return sets


SPEARMAN_BEFORE = [0.8207826816681233, 0.5940885257860046, -0.5, -1.0, 0.5059783913565427, -0.13154599955913857]


def _auc_datasets() -> list[tuple[list[float], list[bool]]]:
    rng = random.Random(11)
    sets = []
    s = [rng.randint(0, 9) / 2 for _ in range(80)]  # many ties
    sets.append((s, [rng.random() < 0.4 + x / 20 for x in s]))
    s = [rng.gauss(0, 1) for _ in range(200)]
    sets.append((s, [rng.random() < 0.5 + x / 5 for x in s]))
    return sets


AUC_BEFORE = [0.6286266924564797, 0.7389602569249297]


@pytest.mark.parametrize(("data", "expected"), list(zip(_lc_datasets(), LC_BEFORE, strict=True)))
def test_length_controlled_win_rate_matches_the_hand_written_fit(data, expected):
    p, diffs = data
    assert length_controlled_win_rate(p, diffs) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("data", "expected"), list(zip(_spearman_datasets(), SPEARMAN_BEFORE, strict=True)))
def test_spearman_matches_the_hand_written_one(data, expected):
    assert spearman(*data) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("data", "expected"), list(zip(_auc_datasets(), AUC_BEFORE, strict=True)))
def test_auc_matches_the_hand_written_one(data, expected):
    assert auc(*data) == pytest.approx(expected, abs=1e-12)


def test_undefined_cases_stay_none_and_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy must not warn (constant input, tiny samples, all scores tied)
        assert spearman([1, 2, 3], [4, 4, 4]) is None
        assert spearman([2, 2], [1, 3]) is None
        assert spearman([1], [1]) is None
        assert spearman([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0]) is None  # the hand-written one ranked NaN anywhere
        assert spearman([1, 2], [3, 4]) == pytest.approx(1.0)
        assert auc([1.0, 1.0, 1.0], [True, False, False]) == 0.5
        assert auc([1.0], [True]) is None
        assert length_controlled_win_rate([0.2, 0.9, 0.6], [5, 5, 5]) == pytest.approx(1.7 / 3)
        assert length_controlled_win_rate([1.0, 0.0, 1.0], [10, -10, 20]) == pytest.approx(0.5157723145618404, abs=1e-6)
