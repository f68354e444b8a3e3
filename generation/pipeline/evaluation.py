"""Evaluation math for the instruction-tuning loop (Humpback / AlpacaEval style). Pure: no Django, no torch.

- Pairwise judging of a candidate (new model) against a reference (previous model), asked in both orders so that
  position bias cancels out (MT-Bench convention: inconsistent judgements are ties).
- Win rates, including AlpacaEval's "ties count half" and a length-controlled win rate in the spirit of
  AlpacaEval 2.0 LC (a logistic fit that regresses the length difference out of the judge's preference).
- Agreement of the model's curation decisions with human review (confusion counts, precision/recall/F1, Spearman).
- Parsing of an uploaded JSONL file of evaluation prompts, with line-numbered error messages.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PromptFileError",
    "average_ranks",
    "curation_agreement",
    "headline",
    "judge_consistency",
    "nll_comparison",
    "length_controlled_win_rate",
    "pairwise_verdict",
    "parse_prompts_jsonl",
    "spearman",
    "win_rates",
]

VERDICTS = ("win", "loss", "tie")

# Length-controlled fit: L2 penalty on phi (keeps the fit finite when the length term separates the data),
# and the Newton-CG stopping rules (scipy.optimize.minimize).
LC_L2_PHI = 1e-3
LC_MAX_ITER = 100
LC_XTOL = 1e-10

PROMPT_KEYS = ("prompt", "instruction", "text")
MAX_REPORTED_ERRORS = 20


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


def length_controlled_win_rate(p: Sequence[float], length_diffs: Sequence[float]) -> float | None:
    """Length-controlled win rate, in the spirit of AlpacaEval 2.0 LC.

    Fits ``logit(p_i) = theta + phi * tanh(d_i / sd)`` where d_i = len(candidate_i) - len(reference_i) and sd is
    the population standard deviation of the d_i, by minimising binary cross-entropy against the soft targets p_i
    (plus a tiny L2 penalty on phi) with scipy's Newton-CG (exact gradient and Hessian), and returns
    sigmoid(theta): the predicted probability that the candidate wins when both responses have the same length.
    If sd == 0, phi is fixed at 0 and the result is exactly mean(p). Deterministic.

    Args:
        p: per-item probability that the candidate is preferred (in [0, 1]).
        length_diffs: per-item candidate length minus reference length.

    Returns:
        The length-controlled win rate in [0, 1], or None when there are no items.
    """
    if len(p) != len(length_diffs):
        raise ValueError(f"{len(p)} probabilities but {len(length_diffs)} length differences")
    n = len(p)
    if n == 0:
        return None
    targets = [min(max(float(pi), 0.0), 1.0) for pi in p]
    mean_p = sum(targets) / n
    diffs = np.asarray(length_diffs, dtype=float)
    sd = float(diffs.std())
    # All targets 0 (or all 1): the optimum is at theta = -inf (+inf) whatever phi; the limit is mean(p).
    # sd == 0: phi is fixed at 0 and the optimum is theta = logit(mean(p)) in closed form.
    if sd == 0 or mean_p <= 0.0 or mean_p >= 1.0:
        return mean_p

    from scipy.optimize import minimize  # imported here: scipy takes a while to load and only this needs it
    from scipy.special import expit

    target = np.asarray(targets)
    design = np.column_stack([np.ones(n), np.tanh(diffs / sd)])  # columns: theta's 1, phi's x
    penalty = np.array([0.0, LC_L2_PHI])  # L2 on phi only

    def loss(w: np.ndarray) -> float:
        """Soft-target binary cross-entropy of logit = theta + phi*x (up to a constant), plus l2/2 * phi^2."""
        z = design @ w
        return float(np.logaddexp(0.0, z).sum() - target @ z + 0.5 * (penalty @ (w * w)))

    def gradient(w: np.ndarray) -> np.ndarray:
        return design.T @ (expit(design @ w) - target) + penalty * w

    def hessian(w: np.ndarray) -> np.ndarray:
        s = expit(design @ w)
        return (design.T * (s * (1.0 - s))) @ design + np.diag(penalty)

    start = np.array([math.log(mean_p / (1.0 - mean_p)), 0.0])
    fit = minimize(
        loss,
        start,
        jac=gradient,
        hess=hessian,
        method="Newton-CG",
        options={"xtol": LC_XTOL, "maxiter": LC_MAX_ITER},
    )
    return float(expit(fit.x[0]))


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
# Ranks and agreement
# --------------------------------------------------------------------------------------------------------------


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of the values, ties sharing the average of the ranks they span (e.g. [10, 20, 20] ->
    [1.0, 2.5, 2.5])."""
    from scipy.stats import rankdata  # imported here: scipy takes a while to load

    return [float(r) for r in rankdata(np.asarray(values, dtype=float), method="average")]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (scipy.stats.spearmanr: the Pearson correlation of the average ranks).

    Returns None when there are fewer than two items, either side is constant or a value is NaN.
    """
    if len(x) != len(y):
        raise ValueError(f"length mismatch: {len(x)} vs {len(y)}")
    if len(x) < 2:
        return None
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.all(a == a[0]) or np.all(b == b[0]):  # constant side: undefined (spearmanr would warn and give nan)
        return None
    from scipy.stats import spearmanr  # imported here: scipy takes a while to load

    r = float(spearmanr(a, b).statistic)
    if not math.isfinite(r):  # a NaN among the values
        return None
    return max(-1.0, min(1.0, r))


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
# Judge reliability and held-out likelihood
# --------------------------------------------------------------------------------------------------------------

# Below this share of pairs judged the same in both orders, a win rate says more about the judge's position bias
# than about the models (MT-Bench reports 65–70% consistency for strong judges).
JUDGE_MIN_CONSISTENCY = 0.5
BOOTSTRAP_SAMPLES = 1000


def judge_consistency(verdicts: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of pairs where the judge preferred the same response in both orders (a win or a loss; a tie is an
    order flip or an exact draw). None without pairs."""
    if not verdicts:
        return None
    return sum(1 for v in verdicts if v.get("verdict") in ("win", "loss")) / len(verdicts)


def _per_token(rows: Sequence[tuple[float, int]], idx: Sequence[int]) -> float | None:
    tokens = sum(rows[i][1] for i in idx)
    return -sum(rows[i][0] for i in idx) / tokens if tokens else None


def _interval(values: list[float]) -> list[float] | None:
    if not values:
        return None
    values = sorted(values)
    lo = values[int(0.025 * (len(values) - 1))]
    hi = values[int(math.ceil(0.975 * (len(values) - 1)))]
    return [round(lo, 6), round(hi, 6)]


def nll_comparison(
    new: Sequence[tuple[float, int]],
    old: Sequence[tuple[float, int]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-token NLL (nats) of the same reference texts under a new and an old model, with bootstrap 95%
    intervals (percentile, resampling the texts; the delta is paired: both models on the same resample).

    Args:
        new, old: per text, (sum of log-probabilities of its tokens, number of tokens), in the same order.

    Returns:
        {"n", "tokens", "new": {"nll", "ci"}, "old": {"nll", "ci"}, "delta": {"nll", "ci"}, "improved"}: delta is
        new − old (negative: the new model predicts the references better); improved is True when the whole
        interval of the delta is below 0, False when it is above, None when it straddles 0. Deterministic.
    """
    if len(new) != len(old):
        raise ValueError(f"{len(new)} texts for the new model but {len(old)} for the old one")
    keep = [i for i in range(len(new)) if new[i][1] > 0 and old[i][1] > 0]
    new = [new[i] for i in keep]
    old = [old[i] for i in keep]
    n = len(new)
    empty = {"nll": None, "ci": None}
    if n == 0:
        return {"n": 0, "tokens": 0, "new": empty, "old": empty, "delta": empty, "improved": None}
    everything = range(n)
    new_nll, old_nll = _per_token(new, everything), _per_token(old, everything)
    assert new_nll is not None and old_nll is not None  # n > 0 texts kept, each with tokens
    rng = random.Random(seed)
    boot_new, boot_old, boot_delta = [], [], []
    for _ in range(samples if n > 1 else 0):
        idx = [rng.randrange(n) for _ in range(n)]
        a, b = _per_token(new, idx), _per_token(old, idx)
        if a is not None and b is not None:
            boot_new.append(a)
            boot_old.append(b)
            boot_delta.append(a - b)
    delta_ci = _interval(boot_delta)
    improved = None
    if delta_ci is not None:
        improved = True if delta_ci[1] < 0 else False if delta_ci[0] > 0 else None
    return {
        "n": n,
        "tokens": sum(t for _, t in new),
        "new": {"nll": round(new_nll, 6), "ci": _interval(boot_new)},
        "old": {"nll": round(old_nll, 6), "ci": _interval(boot_old)},
        "delta": {"nll": round(new_nll - old_nll, 6), "ci": delta_ci},
        "improved": improved,
    }


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
