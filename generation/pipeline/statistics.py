"""Statistics for the evaluation and curation reports (scipy, imported where needed: it takes a while to load).
Pure: no Django, no torch.

- The length-controlled win rate, in the spirit of AlpacaEval 2.0 LC (a logistic fit that regresses the length
  difference out of the judge's preference).
- Rank statistics: average ranks, Spearman's rank correlation, ROC AUC (Mann–Whitney U).
- Held-out likelihood: per-token NLL of the same texts under two models, with paired bootstrap intervals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["auc", "average_ranks", "length_controlled_win_rate", "nll_comparison", "spearman"]

# Length-controlled fit: L2 penalty on phi (keeps the fit finite when the length term separates the data),
# and the Newton-CG stopping rules (scipy.optimize.minimize).
LC_L2_PHI = 1e-3
LC_MAX_ITER = 100
LC_XTOL = 1e-10

BOOTSTRAP_SAMPLES = 1000


# --------------------------------------------------------------------------------------------------------------
# Length-controlled win rate
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


# --------------------------------------------------------------------------------------------------------------
# Ranks
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


def auc(scores: Sequence[float | None], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for the positive `labels` (Mann–Whitney U, ties count half).
    Items without a score are left out; None when either class is empty."""
    pairs = [(s, y) for s, y in zip(scores, labels, strict=True) if s is not None and math.isfinite(s)]
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import mannwhitneyu  # imported here: scipy takes a while to load

    positives = [s for s, y in pairs if y]
    negatives = [s for s, y in pairs if not y]
    # U of the positives (average ranks over ties) over the number of (positive, negative) pairs; the p-value is
    # not used, the asymptotic method only avoids computing the exact distribution.
    u = mannwhitneyu(positives, negatives, alternative="two-sided", method="asymptotic").statistic
    return float(u) / (n_pos * n_neg)


# --------------------------------------------------------------------------------------------------------------
# Held-out likelihood
# --------------------------------------------------------------------------------------------------------------


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
