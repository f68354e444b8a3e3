"""Pure unit tests of the evaluation math (no database access)."""

import math

import pytest

from generation.pipeline.evaluation import (
    JUDGE_MIN_CONSISTENCY,
    PromptFileError,
    curation_agreement,
    headline,
    judge_consistency,
    pairwise_verdict,
    parse_prompts_jsonl,
    win_rates,
)
from generation.pipeline.statistics import average_ranks, length_controlled_win_rate, nll_comparison, spearman

# --------------------------------------------------------------------------------------------------------------
# pairwise_verdict
# --------------------------------------------------------------------------------------------------------------


def test_consistent_preference_for_the_candidate_is_a_win():
    # Order 1: candidate is A; order 2: candidate is B.
    result = pairwise_verdict([0.9, 0.1], [0.2, 0.8])
    assert result["verdict"] == "win"
    assert result["p_candidate"] == pytest.approx((0.9 + 0.8) / 2)


def test_consistent_preference_for_the_reference_is_a_loss():
    result = pairwise_verdict([0.1, 0.9], [0.7, 0.3])
    assert result["verdict"] == "loss"
    assert result["p_candidate"] == pytest.approx((0.1 + 0.3) / 2)


def test_position_biased_judge_gives_a_tie():
    # The judge always prefers whatever is shown first: inconsistent across orders, so it cancels out.
    result = pairwise_verdict([0.8, 0.2], [0.8, 0.2])
    assert result["verdict"] == "tie"
    assert result["p_candidate"] == pytest.approx(0.5)
    # Always prefers "B": also a tie.
    assert pairwise_verdict([0.3, 0.7], [0.3, 0.7])["verdict"] == "tie"


def test_probabilities_are_normalised_before_comparing():
    # [0.3, 0.1] -> [0.75, 0.25]; [0.02, 0.06] -> [0.25, 0.75]
    result = pairwise_verdict([0.3, 0.1], [0.02, 0.06])
    assert result["verdict"] == "win"
    assert result["p_candidate"] == pytest.approx(0.75)


def test_zero_mass_is_uniform_and_equal_probabilities_are_no_preference():
    # Order 1 has no mass -> 0.5/0.5 -> no preference -> tie even though order 2 prefers the candidate.
    result = pairwise_verdict([0, 0], [0, 1])
    assert result["verdict"] == "tie"
    assert result["p_candidate"] == pytest.approx((0.5 + 1.0) / 2)
    result = pairwise_verdict([0.4, 0.4], [0.1, 0.9])
    assert result["verdict"] == "tie"
    assert result["p_candidate"] == pytest.approx((0.5 + 0.9) / 2)


def test_mapping_input_is_accepted():
    result = pairwise_verdict({"A": 0.6, "B": 0.2}, {"A": 0.1, "B": 0.3})
    assert result["verdict"] == "win"
    assert result["p_candidate"] == pytest.approx((0.75 + 0.75) / 2)


# --------------------------------------------------------------------------------------------------------------
# win_rates / length_controlled_win_rate
# --------------------------------------------------------------------------------------------------------------


def _v(verdict, p):
    return {"verdict": verdict, "p_candidate": p}


def test_win_rate_arithmetic():
    verdicts = [_v("win", 0.9), _v("win", 0.8), _v("tie", 0.5), _v("loss", 0.2), _v("win", 0.7)]
    result = win_rates(verdicts, [100, 120, 80, 90, 110], [100, 100, 100, 100, 100])
    assert (result["n"], result["wins"], result["losses"], result["ties"]) == (5, 3, 1, 1)
    assert result["win_rate"] == pytest.approx(0.6)
    assert result["tie_rate"] == pytest.approx(0.2)
    assert result["loss_rate"] == pytest.approx(0.2)
    assert result["win_rate_ties_half"] == pytest.approx((3 + 0.5) / 5)
    assert result["mean_p_candidate"] == pytest.approx(3.1 / 5)
    assert result["mean_length_candidate"] == pytest.approx(100.0)
    assert result["mean_length_reference"] == pytest.approx(100.0)
    assert result["lc_win_rate"] == pytest.approx(0.6362708254662952, abs=1e-6)


def test_win_rates_with_no_items():
    result = win_rates([], [], [])
    assert (result["n"], result["wins"], result["losses"], result["ties"]) == (0, 0, 0, 0)
    for key in ("win_rate", "tie_rate", "loss_rate", "win_rate_ties_half", "lc_win_rate", "mean_p_candidate"):
        assert result[key] is None
    assert length_controlled_win_rate([], []) is None


def test_win_rates_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"^1 verdicts but 2 candidate and 1 reference lengths$"):
        win_rates([_v("win", 0.9)], [1, 2], [1])
    with pytest.raises(ValueError, match=r"^verdict 0: unknown verdict 'victory'$"):
        win_rates([_v("victory", 0.9)], [1], [1])


def test_lc_win_rate_is_the_plain_mean_when_lengths_are_equal():
    p = [0.9, 0.8, 0.5, 0.2, 0.7, 0.65]
    assert length_controlled_win_rate(p, [0] * len(p)) == pytest.approx(sum(p) / len(p))
    # Equal (nonzero) differences: sd == 0, phi fixed at 0, same answer.
    assert length_controlled_win_rate(p, [40] * len(p)) == pytest.approx(sum(p) / len(p))
    verdicts = [_v("win" if x > 0.5 else "loss", x) for x in p]
    result = win_rates(verdicts, [50] * len(p), [50] * len(p))
    assert result["lc_win_rate"] == pytest.approx(result["mean_p_candidate"])


def test_lc_win_rate_corrects_wins_that_come_only_from_length():
    # The candidate wins (p=0.9) exactly when it is longer and loses (p=0.1) when shorter; it is longer 8/10 times.
    p = [0.9] * 8 + [0.1] * 2
    diffs = [100] * 8 + [-100] * 2
    verdicts = [_v("win" if x > 0.5 else "loss", x) for x in p]
    result = win_rates(verdicts, [200 + d for d in diffs], [200] * 10)
    assert result["win_rate"] == pytest.approx(0.8)
    assert result["mean_p_candidate"] == pytest.approx(0.74)
    # At zero length difference the judge is indifferent: theta ~ 0 (only the tiny L2 on phi pulls it off).
    assert result["lc_win_rate"] == pytest.approx(0.50079, abs=1e-5)


def test_lc_win_rate_unbiased_by_length_when_preference_is_independent_of_it():
    # Same preference whether longer or shorter -> no length effect, lc == mean p.
    p = [0.7, 0.7, 0.7, 0.7]
    assert length_controlled_win_rate(p, [-30, 10, 50, 200]) == pytest.approx(0.7, abs=1e-6)


def test_lc_win_rate_matches_an_independent_gradient_descent_fit():
    p = [0.9, 0.3, 0.8, 0.6, 0.2, 0.95, 0.4, 0.7]
    diffs = [120, -40, 60, 10, -150, 300, -20, 0]
    lc = length_controlled_win_rate(p, diffs)

    n = len(diffs)
    mean_d = sum(diffs) / n
    sd = math.sqrt(sum((d - mean_d) ** 2 for d in diffs) / n)
    x = [math.tanh(d / sd) for d in diffs]
    theta = phi = 0.0
    for _ in range(20000):
        g_t = g_p = 0.0
        for pi, xi in zip(p, x, strict=True):
            r = 1 / (1 + math.exp(-(theta + phi * xi))) - pi
            g_t += r
            g_p += r * xi
        g_p += 1e-3 * phi
        theta -= 0.2 * g_t / n
        phi -= 0.2 * g_p / n
    assert lc == pytest.approx(1 / (1 + math.exp(-theta)), abs=1e-6)


def test_lc_win_rate_degenerate_targets():
    assert length_controlled_win_rate([1.0, 1.0, 1.0], [10, -5, 30]) == 1.0
    assert length_controlled_win_rate([0.0, 0.0], [10, -5]) == 0.0
    # Hard, length-separable targets stay finite and deterministic thanks to the L2 on phi.
    first = length_controlled_win_rate([1.0, 1.0, 0.0, 0.0], [50, 40, -40, -50])
    assert first == pytest.approx(0.5, abs=1e-6)
    assert length_controlled_win_rate([1.0, 1.0, 0.0, 0.0], [50, 40, -40, -50]) == first


# --------------------------------------------------------------------------------------------------------------
# Ranks, Spearman, curation agreement
# --------------------------------------------------------------------------------------------------------------


def test_average_ranks_with_ties():
    assert average_ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert average_ranks([1, 1, 1]) == [2.0, 2.0, 2.0]
    assert average_ranks([]) == []


def test_spearman_hand_computed():
    assert spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # No ties: 1 - 6*sum(d^2)/(n(n^2-1)), ranks y = [2, 1, 4, 3, 5] -> sum d^2 = 4 -> 1 - 24/120 = 0.8
    assert spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50]) == pytest.approx(0.8)
    # Ties in y: ranks [1, 2, 3.5, 5, 3.5] -> r = 8 / sqrt(10 * 9.5) (scipy.stats.spearmanr: 0.8207826816681233)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)


def test_spearman_undefined_cases():
    assert spearman([1.0], [2.0]) is None
    assert spearman([], []) is None
    assert spearman([1, 2, 3], [4, 4, 4]) is None
    with pytest.raises(ValueError, match=r"^length mismatch: 2 vs 1$"):
        spearman([1, 2], [1])


def test_curation_agreement_small_example():
    scores = [4.8, 4.5, 4.1, 3.0, 2.2, 1.5]
    kept = [True, True, True, False, False, False]
    human = [True, False, True, True, False, False]
    result = curation_agreement(scores, kept, human)
    assert (result["n"], result["tp"], result["fp"], result["fn"], result["tn"]) == (6, 2, 1, 1, 2)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(4 / 6)
    # Score ranks [6, 5, 4, 3, 2, 1]; human ranks (3 ties each) [5, 2, 5, 5, 2, 2]:
    # deviations x [2.5, 1.5, .5, -.5, -1.5, -2.5], y [1.5, -1.5, 1.5, 1.5, -1.5, -1.5]
    # sxy = 3.75 - 2.25 + .75 - .75 + 2.25 + 3.75 = 7.5; sxx = 17.5; syy = 13.5
    assert result["spearman"] == pytest.approx(7.5 / math.sqrt(17.5 * 13.5))


def test_curation_agreement_undefined_metrics():
    result = curation_agreement([1.0, 2.0], [False, False], [False, False])
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (0, 0, 0, 2)
    assert result["precision"] is None
    assert result["recall"] is None
    assert result["f1"] is None
    assert result["accuracy"] == 1.0
    assert result["spearman"] is None  # human side is constant
    empty = curation_agreement([], [], [])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["spearman"] is None
    # Kept nothing but the human accepted something: recall 0, precision undefined, f1 0.
    result = curation_agreement([1.0, 2.0], [False, False], [True, False])
    assert result["precision"] is None
    assert result["recall"] == 0.0
    assert result["f1"] == 0.0
    assert result["spearman"] == pytest.approx(-1.0)


def test_curation_agreement_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"^2 scores but 1 keep decisions and 2 human decisions$"):
        curation_agreement([1.0, 2.0], [True], [True, False])


# --------------------------------------------------------------------------------------------------------------
# parse_prompts_jsonl
# --------------------------------------------------------------------------------------------------------------


def test_parse_prompts_reads_the_supported_keys():
    text = "\n".join(
        [
            '{"prompt": "  Write a haiku.  "}',
            "",
            '{"instruction": "Translate to French.", "input": "Good morning"}',
            '{"instruction": "Name a colour.", "input": ""}',
            '{"text": "Explain tides.", "prompt": "Preferred key wins."}',
            "   ",
            '{"prompt": "Write a haiku."}',
        ]
    )
    assert parse_prompts_jsonl(text) == [
        "Write a haiku.",
        "Translate to French.\n\nGood morning",
        "Name a colour.",
        "Preferred key wins.",
    ]


def test_parse_prompts_handles_bom_and_crlf():
    assert parse_prompts_jsonl('\ufeff{"prompt": "a"}\r\n{"prompt": "b"}\r\n') == ["a", "b"]


def test_parse_prompts_reports_every_bad_line_with_its_number():
    text = "\n".join(
        [
            '{"prompt": "ok"}',
            "",
            "not json",
            "[1, 2]",
            '{"prompt": "   "}',
            '{"prompt": "fine"}',
            '{"question": "where is the prompt?"}',
            '{"prompt": 42}',
        ]
    )
    with pytest.raises(PromptFileError) as info:
        parse_prompts_jsonl(text)
    message = str(info.value)
    assert message == (
        "line 3: invalid JSON (Expecting value); "
        "line 4: not a JSON object; "
        "line 5: empty prompt ('prompt' is blank); "
        "line 7: no 'prompt', 'instruction' or 'text' field; "
        "line 8: 'prompt' is not a string"
    )
    assert isinstance(info.value, ValueError)


def test_parse_prompts_caps_the_number_of_reported_errors():
    text = "\n".join(["oops"] * 25)
    with pytest.raises(PromptFileError) as info:
        parse_prompts_jsonl(text)
    message = str(info.value)
    assert message.count("invalid JSON") == 20
    assert "line 20: invalid JSON" in message
    assert "line 21:" not in message
    assert "5 more" in message


@pytest.mark.parametrize("text", ["", "\n\n   \n"])
def test_parse_prompts_empty_file_is_an_error(text):
    with pytest.raises(PromptFileError, match="no prompts"):
        parse_prompts_jsonl(text)


# --------------------------------------------------------------------------------------------------------------
# judge_consistency
# --------------------------------------------------------------------------------------------------------------


def test_judge_consistency_is_the_share_of_wins_and_losses():
    verdicts = [{"verdict": "win"}, {"verdict": "loss"}, {"verdict": "tie"}, {"verdict": "tie"}]
    assert judge_consistency(verdicts) == 0.5
    assert judge_consistency([{"verdict": "win"}] * 3) == 1.0
    assert judge_consistency([{"verdict": "tie"}, {}]) == 0.0


def test_judge_consistency_without_pairs_is_none():
    assert judge_consistency([]) is None


def test_judge_consistency_of_real_verdicts():
    consistent = pairwise_verdict([0.9, 0.1], [0.2, 0.8])
    position_biased = pairwise_verdict([0.8, 0.2], [0.8, 0.2])
    assert judge_consistency([consistent, position_biased, position_biased]) == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------------------------
# nll_comparison
# --------------------------------------------------------------------------------------------------------------


def _texts(nlls: list[float], tokens: int = 10) -> list[tuple[float, int]]:
    """(sum of log-probabilities, tokens) of texts with the given per-token NLL each."""
    return [(-nll * tokens, tokens) for nll in nlls]


# Reference texts of very different difficulty: the spread between texts dwarfs the difference between models.
OLD = [1.0, 4.0, 1.5, 3.5, 2.0, 3.0, 2.5, 1.2, 3.8, 2.7]


def test_nll_comparison_is_per_token_and_deterministic():
    new = _texts([x - 0.1 for x in OLD])
    result = nll_comparison(new, _texts(OLD))
    assert result == nll_comparison(new, _texts(OLD)), "same seed, same intervals"
    assert (result["n"], result["tokens"]) == (10, 100)
    assert result["old"]["nll"] == pytest.approx(sum(OLD) / 10)
    assert result["new"]["nll"] == pytest.approx(sum(OLD) / 10 - 0.1)
    assert result["delta"]["nll"] == -0.1


def test_nll_comparison_weights_texts_by_their_tokens():
    new = [(-1.0, 1), (-30.0, 10)]  # 1 nat on a 1-token text, 3 nats/token on a 10-token one
    old = [(-2.0, 1), (-30.0, 10)]
    result = nll_comparison(new, old)
    assert result["new"]["nll"] == round(31 / 11, 6)
    assert result["old"]["nll"] == round(32 / 11, 6)


def test_the_delta_is_paired():
    # The same 0.1 nats/token better on every text: each model's own interval is wide (the texts differ), but
    # both models are measured on the same resample, so the delta's interval is exactly [-0.1, -0.1].
    result = nll_comparison(_texts([x - 0.1 for x in OLD]), _texts(OLD))
    assert result["delta"]["ci"] == [-0.1, -0.1]
    new_ci, old_ci = result["new"]["ci"], result["old"]["ci"]
    assert (new_ci, old_ci) == ([1.79, 3.05], [1.89, 3.15]), "each wide, and the unpaired intervals overlap"
    assert result["improved"] is True


def test_a_worse_new_model_is_not_improved():
    result = nll_comparison(_texts([x + 0.2 for x in OLD]), _texts(OLD))
    assert result["delta"]["nll"] == 0.2
    assert result["delta"]["ci"] == [0.2, 0.2]
    assert result["improved"] is False


def test_a_mixed_change_straddles_zero():
    new = _texts([x + (0.5 if i % 2 else -0.5) for i, x in enumerate(OLD)])
    result = nll_comparison(new, _texts(OLD))
    assert result["delta"]["nll"] == 0.0
    assert result["delta"]["ci"] == [-0.3, 0.3]
    assert result["improved"] is None


def test_texts_without_tokens_are_dropped_from_both_models():
    new = [(-2.0, 2), (0.0, 0), (-3.0, 3), (-4.0, 4)]
    old = [(-4.0, 2), (-5.0, 5), (-6.0, 3), (0.0, 0)]
    result = nll_comparison(new, old)
    assert (result["n"], result["tokens"]) == (2, 5)
    assert result["new"]["nll"] == 1.0
    assert result["old"]["nll"] == 2.0
    assert result["delta"]["nll"] == -1.0


def test_nll_comparison_without_texts():
    empty = {"nll": None, "ci": None}
    expected = {"n": 0, "tokens": 0, "new": empty, "old": empty, "delta": empty, "improved": None}
    assert nll_comparison([], []) == expected
    assert nll_comparison([(0.0, 0)], [(-1.0, 1)]) == expected


def test_nll_comparison_of_one_text_has_no_interval():
    result = nll_comparison([(-3.0, 3)], [(-6.0, 3)])
    assert result == {
        "n": 1,
        "tokens": 3,
        "new": {"nll": 1.0, "ci": None},
        "old": {"nll": 2.0, "ci": None},
        "delta": {"nll": -1.0, "ci": None},
        "improved": None,
    }


def test_nll_comparison_rejects_texts_of_different_counts():
    with pytest.raises(ValueError, match="2 texts for the new model but 1 for the old one"):
        nll_comparison([(-1.0, 1), (-1.0, 1)], [(-1.0, 1)])


# --------------------------------------------------------------------------------------------------------------
# headline
# --------------------------------------------------------------------------------------------------------------

HELDOUT = {
    "n": 30,
    "old": {"nll": 2.0, "ci": [1.8, 2.2]},
    "new": {"nll": 1.95, "ci": [1.75, 2.15]},
    "delta": {"nll": -0.05, "ci": [-0.12, 0.02]},
    "improved": None,
}
HELDOUT_TEXT = (
    "held-out answer NLL 2.000 → 1.950 nats/token (Δ -0.050, 95% CI [-0.120, +0.020]) on 30 seed pairs: no clear change"
)


def test_headline_is_the_win_rate_when_the_judge_is_consistent():
    evaluation = {
        "win_rate": 0.55,
        "lc_win_rate": 0.52,
        "n": 40,
        "judge_consistency": 0.6,
        "heldout": {"forward": HELDOUT},
    }
    assert headline(evaluation) == {
        "measure": "win_rate",
        "text": "win rate 55% (LC 52%) over 40 prompts; the judge was order-consistent on 60%",
    }


def test_headline_takes_the_win_rate_at_exactly_the_minimum_consistency():
    evaluation = {"win_rate": 0.5, "lc_win_rate": 0.5, "n": 10, "judge_consistency": JUDGE_MIN_CONSISTENCY}
    assert headline(evaluation)["measure"] == "win_rate"


def test_headline_falls_back_to_heldout_nll_when_the_judge_is_inconsistent():
    evaluation = {
        "win_rate": 0.9,
        "lc_win_rate": 0.9,
        "n": 40,
        "judge_consistency": 0.45,
        "heldout": {"forward": HELDOUT},
    }
    assert headline(evaluation) == {"measure": "heldout_nll", "text": HELDOUT_TEXT}
    assert headline({**evaluation, "judge_consistency": None}) == {"measure": "heldout_nll", "text": HELDOUT_TEXT}
    assert headline({**evaluation, "judge_consistency": 0.9, "win_rate": None}) == {
        "measure": "heldout_nll",
        "text": HELDOUT_TEXT,
    }


def test_headline_of_a_real_heldout_comparison():
    forward = nll_comparison(_texts([1.9, 2.4, 1.4]), _texts([2.0, 2.5, 1.5]))
    assert headline({"judge_consistency": 0.2, "heldout": {"forward": forward}}) == {
        "measure": "heldout_nll",
        "text": "held-out answer NLL 2.000 → 1.900 nats/token (Δ -0.100, 95% CI [-0.100, -0.100]) on 3 seed pairs: "
        "better",
    }


def test_headline_of_one_heldout_pair_uses_the_delta_for_the_interval():
    forward = nll_comparison([(-6.0, 3)], [(-3.0, 3)])
    assert headline({"heldout": {"forward": forward}}) == {
        "measure": "heldout_nll",
        "text": "held-out answer NLL 1.000 → 2.000 nats/token (Δ +1.000, 95% CI [+1.000, +1.000]) on 1 seed pairs: "
        "no clear change",
    }


@pytest.mark.parametrize(
    "evaluation",
    [
        {},
        {"judge_consistency": 0.3, "win_rate": 0.7, "n": 10},
        {"judge_consistency": 0.3, "win_rate": 0.7, "heldout": {}},
        {"judge_consistency": 0.3, "win_rate": 0.7, "heldout": None},
        {"judge_consistency": 0.3, "heldout": {"forward": nll_comparison([], [])}},
    ],
)
def test_headline_without_a_reliable_measure(evaluation):
    assert headline(evaluation) == {"measure": None, "text": "no reliable measure for this round"}
