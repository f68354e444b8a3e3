"""Evaluation for the instruction-tuning loop (Humpback / AlpacaEval style). Pure: no Django, no torch.

- Pairwise judging of a candidate (new model) against a reference (previous model), asked in both orders so that
  position bias cancels out (MT-Bench convention: inconsistent judgements are ties), and the judge's consistency.
- Win rates, including AlpacaEval's "ties count half" and the length-controlled win rate
  (`statistics.length_controlled_win_rate`).
- Agreement of the model's curation decisions with human review (confusion counts, precision/recall/F1, Spearman).
- The headline measure of a round's page (the win rate, or the held-out NLL of `statistics.nll_comparison`).
- Parsing of an uploaded JSONL file of evaluation prompts, with line-numbered error messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from generation.pipeline.statistics import length_controlled_win_rate, spearman

__all__ = [
    "PromptFileError",
    "curation_agreement",
    "headline",
    "judge_consistency",
    "pairwise_verdict",
    "parse_prompts_jsonl",
    "win_rates",
]

VERDICTS = ("win", "loss", "tie")

PROMPT_KEYS = ("prompt", "instruction", "text")
MAX_REPORTED_ERRORS = 20

# Below this share of pairs judged the same in both orders, a win rate says more about the judge's position bias
# than about the models (MT-Bench reports 65–70% consistency for strong judges).
JUDGE_MIN_CONSISTENCY = 0.5


# --------------------------------------------------------------------------------------------------------------
# Pairwise judging
# --------------------------------------------------------------------------------------------------------------


def _option_probs(probs: Mapping[str, float] | Sequence[float]) -> tuple[float, float]:
    """Normalised (P(A), P(B)) from a [P(A), P(B)] list or an {"A": .., "B": ..} mapping.

    Negative, NaN and infinite values count as 0; when both are 0 the result is (0.5, 0.5).
    """
    if isinstance(probs, Mapping):
        raw = [probs.get("A", 0.0), probs.get("B", 0.0)]
    else:
        raw = list(probs)
        if len(raw) != 2:
            raise ValueError(f"expected [P(A), P(B)], got {len(raw)} values")
    clean = [float(p) if p is not None and math.isfinite(float(p)) and float(p) > 0 else 0.0 for p in raw]
    total = clean[0] + clean[1]
    if total <= 0:
        return 0.5, 0.5
    return clean[0] / total, clean[1] / total


def pairwise_verdict(
    p_first: Mapping[str, float] | Sequence[float], p_second: Mapping[str, float] | Sequence[float]
) -> dict[str, str | float]:
    """Combine a judge's two order-swapped comparisons of candidate vs reference into one verdict.

    Args:
        p_first: the judge's probabilities over ("A", "B") when the candidate is shown as "A" and the reference
            as "B"; a [P(A), P(B)] list or an {"A": .., "B": ..} mapping, not necessarily normalised.
        p_second: the same with the order swapped (reference "A", candidate "B").

    Returns:
        {"verdict": "win" | "loss" | "tie", "p_candidate": float}: "win" when the candidate is strictly preferred
        in both orders, "loss" when the reference is strictly preferred in both, otherwise "tie" (a
        position-inconsistent judge, or exactly equal probabilities in an order). p_candidate is the mean over
        both orders of the normalised probability that the candidate is preferred.
    """
    a1, b1 = _option_probs(p_first)  # candidate = A
    a2, b2 = _option_probs(p_second)  # candidate = B
    p_candidate = (a1 + b2) / 2.0
    if a1 > b1 and b2 > a2:
        verdict = "win"
    elif a1 < b1 and b2 < a2:
        verdict = "loss"
    else:
        verdict = "tie"
    return {"verdict": verdict, "p_candidate": p_candidate}


# --------------------------------------------------------------------------------------------------------------
# Win rates
# --------------------------------------------------------------------------------------------------------------


def win_rates(
    verdicts: Sequence[Mapping[str, Any]],
    candidate_lengths: Sequence[int],
    reference_lengths: Sequence[int],
) -> dict[str, int | float | None]:
    """Aggregate per-prompt pairwise verdicts (as returned by :func:`pairwise_verdict`) into win rates.

    Args:
        verdicts: one {"verdict": "win"|"loss"|"tie", "p_candidate": float} per prompt.
        candidate_lengths: length of the candidate response per prompt (any consistent unit: tokens, characters).
        reference_lengths: length of the reference response per prompt.

    Returns:
        {"n", "wins", "losses", "ties", "win_rate", "tie_rate", "loss_rate", "win_rate_ties_half", "lc_win_rate",
        "mean_p_candidate", "mean_length_candidate", "mean_length_reference"}. Rates are fractions in [0, 1];
        win_rate_ties_half = (wins + ties/2) / n (AlpacaEval convention); lc_win_rate is
        :func:`length_controlled_win_rate` of the p_candidate values. With n == 0 the counts are 0 and every rate
        and mean is None.
    """
    n = len(verdicts)
    if len(candidate_lengths) != n or len(reference_lengths) != n:
        raise ValueError(
            f"{n} verdicts but {len(candidate_lengths)} candidate and {len(reference_lengths)} reference lengths"
        )
    counts = dict.fromkeys(VERDICTS, 0)
    probs: list[float] = []
    for i, v in enumerate(verdicts):
        label = v.get("verdict")
        if label not in counts:
            raise ValueError(f"verdict {i}: unknown verdict {label!r}")
        counts[label] += 1
        probs.append(float(v["p_candidate"]))
    wins, losses, ties = counts["win"], counts["loss"], counts["tie"]
    if n == 0:
        return {
            "n": 0,
            "wins": 0,
            "losses": 0,
            "ties": 0,
            "win_rate": None,
            "tie_rate": None,
            "loss_rate": None,
            "win_rate_ties_half": None,
            "lc_win_rate": None,
            "mean_p_candidate": None,
            "mean_length_candidate": None,
            "mean_length_reference": None,
        }
    diffs = [float(c) - float(r) for c, r in zip(candidate_lengths, reference_lengths, strict=True)]
    return {
        "n": n,
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "win_rate": wins / n,
        "tie_rate": ties / n,
        "loss_rate": losses / n,
        "win_rate_ties_half": (wins + 0.5 * ties) / n,
        "lc_win_rate": length_controlled_win_rate(probs, diffs),
        "mean_p_candidate": sum(probs) / n,
        "mean_length_candidate": sum(candidate_lengths) / n,
        "mean_length_reference": sum(reference_lengths) / n,
    }


# --------------------------------------------------------------------------------------------------------------
# Agreement with human review
# --------------------------------------------------------------------------------------------------------------


def curation_agreement(
    scores: Sequence[float], kept: Sequence[bool], human_accept: Sequence[bool]
) -> dict[str, int | float | None]:
    """Agreement between the model's curation decisions and human review on the same candidates.

    Positive = the model kept the item / the human accepted it (the human decision is the ground truth).

    Args:
        scores: the model's curation score per item.
        kept: whether curation kept the item.
        human_accept: whether the human reviewer accepted the item.

    Returns:
        {"n", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "accuracy", "spearman"}. precision, recall,
        f1 and accuracy are None when their denominator is 0; spearman is the rank correlation between the score
        and the human decision (1 accept / 0 reject), None when n < 2 or either side is constant.
    """
    n = len(scores)
    if len(kept) != n or len(human_accept) != n:
        raise ValueError(f"{n} scores but {len(kept)} keep decisions and {len(human_accept)} human decisions")
    tp = sum(1 for k, h in zip(kept, human_accept, strict=True) if k and h)
    fp = sum(1 for k, h in zip(kept, human_accept, strict=True) if k and not h)
    fn = sum(1 for k, h in zip(kept, human_accept, strict=True) if not k and h)
    tn = n - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / n if n else None,
        "spearman": spearman([float(s) for s in scores], [1.0 if h else 0.0 for h in human_accept]),
    }


# --------------------------------------------------------------------------------------------------------------
# Prompt files
# --------------------------------------------------------------------------------------------------------------


class PromptFileError(ValueError):
    """An uploaded evaluation prompt file could not be parsed; the message names every bad line."""


def _prompt_from_object(obj: object) -> tuple[str | None, str | None]:
    """(prompt, None) for a valid JSONL record, (None, problem) otherwise."""
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    key = next((k for k in PROMPT_KEYS if k in obj), None)
    if key is None:
        return None, "no 'prompt', 'instruction' or 'text' field"
    value = obj[key]
    if not isinstance(value, str):
        return None, f"'{key}' is not a string"
    prompt = value.strip()
    if not prompt:
        return None, f"empty prompt ('{key}' is blank)"
    if key == "instruction":
        extra = obj.get("input")
        if extra is not None and not isinstance(extra, str):
            return None, "'input' is not a string"
        if extra and extra.strip():
            prompt = f"{prompt}\n\n{extra.strip()}"
    return prompt, None


def parse_prompts_jsonl(text: str) -> list[str]:
    """Parse an evaluation prompt file: one JSON object per line.

    The prompt is read from the first present of "prompt", "instruction" or "text"; for "instruction", a
    non-empty "input" field is appended after a blank line (Alpaca format). Blank lines are ignored, prompts are
    stripped, and identical prompts are deduplicated keeping the first.

    Raises:
        PromptFileError: naming every bad line (up to 20, 1-based), e.g.
            "line 3: invalid JSON (Expecting value); line 7: no 'prompt', 'instruction' or 'text' field",
            or when the file holds no prompts at all.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    prompts: list[str] = []
    seen: set[str] = set()
    errors: list[str] = []
    n_errors = 0
    prompt: str | None
    problem: str | None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            prompt, problem = None, f"invalid JSON ({exc.msg})"
        else:
            prompt, problem = _prompt_from_object(obj)
        if problem is not None:
            n_errors += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(f"line {lineno}: {problem}")
            continue
        assert prompt is not None
        if prompt not in seen:
            seen.add(prompt)
            prompts.append(prompt)
    if errors:
        message = "; ".join(errors)
        if n_errors > len(errors):
            message += f"; ... and {n_errors - len(errors)} more bad lines"
        raise PromptFileError(message)
    if not prompts:
        raise PromptFileError("the file contains no prompts")
    return prompts


# --------------------------------------------------------------------------------------------------------------
# Judge reliability and the headline
# --------------------------------------------------------------------------------------------------------------


def judge_consistency(verdicts: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of pairs where the judge preferred the same response in both orders (a win or a loss; a tie is an
    order flip or an exact draw). None without pairs."""
    if not verdicts:
        return None
    return sum(1 for v in verdicts if v.get("verdict") in ("win", "loss")) / len(verdicts)


def headline(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The one measure a round's page leads with: the judge's win rate when the judge is consistent enough to
    mean something, else the held-out NLL of reference answers (which a model of any size measures)."""
    consistency = evaluation.get("judge_consistency")
    heldout = (evaluation.get("heldout") or {}).get("forward") or {}
    if consistency is not None and consistency >= JUDGE_MIN_CONSISTENCY and evaluation.get("win_rate") is not None:
        return {
            "measure": "win_rate",
            "text": f"win rate {evaluation['win_rate']:.0%} (LC {evaluation.get('lc_win_rate') or 0:.0%}) over "
            f"{evaluation.get('n')} prompts; the judge was order-consistent on {consistency:.0%}",
        }
    if heldout.get("n"):
        delta = heldout["delta"]
        ci = delta["ci"] or [delta["nll"], delta["nll"]]
        verdict = {True: "better", False: "worse", None: "no clear change"}[heldout.get("improved")]
        return {
            "measure": "heldout_nll",
            "text": f"held-out answer NLL {heldout['old']['nll']:.3f} → {heldout['new']['nll']:.3f} nats/token "
            f"(Δ {delta['nll']:+.3f}, 95% CI [{ci[0]:+.3f}, {ci[1]:+.3f}]) on {heldout['n']} seed pairs: {verdict}",
        }
    return {"measure": None, "text": "no reliable measure for this round"}
