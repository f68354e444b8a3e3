import math

import pytest

from generation.pipeline.scoring import expected_score, from_logprobs, normalize


def test_expected_score_is_the_mean_under_the_renormalised_distribution():
    assert expected_score([0, 0, 0, 0, 1]) == 5.0
    assert expected_score([0.5, 0, 0, 0, 0.5]) == 3.0
    # Mass outside the five options (other tokens) is renormalised away.
    assert expected_score([0.1, 0, 0, 0, 0.1]) == pytest.approx(3.0)
    # (1 * 0.2 + 2 * 0.1 + 3 * 0.3 + 4 * 0.15 + 5 * 0.05) / 0.8
    assert expected_score([0.2, 0.1, 0.3, 0.15, 0.05]) == pytest.approx(2.6875)


def test_degenerate_distributions_are_uniform():
    assert normalize([0, 0, 0, 0, 0]) == [0.2] * 5
    assert normalize([float("nan"), -1, 0, 0, 0]) == [0.2] * 5
    assert expected_score([0, 0, 0, 0, 0]) == 3.0


def test_logprobs_to_probs_treats_missing_as_zero():
    assert from_logprobs([0.0, None, -math.inf, math.log(0.5), None]) == [1.0, 0.0, 0.0, 0.5, 0.0]
