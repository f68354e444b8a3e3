"""Curation score math. Pure.

Score = Σ s·P(s) over the options "1".."5" at the score position, with P renormalised over the five options
(DESIGN.md step 3): always defined, calibrated, one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def normalize(probs: Sequence[float]) -> list[float]:
    """Renormalise option probabilities to sum to 1 (uniform when the model put ~no mass on any option)."""
    clean = [p if p > 0 and math.isfinite(p) else 0.0 for p in probs]
    total = sum(clean)
    if total <= 0:
        return [1.0 / len(clean)] * len(clean)
    return [p / total for p in clean]


def expected_score(probs: Sequence[float]) -> float:
    """E[s] for s = 1..len(probs) under the normalised distribution: a float in [1, len(probs)]."""
    dist = normalize(probs)
    return sum((i + 1) * p for i, p in enumerate(dist))


def from_logprobs(logprobs: Sequence[float | None]) -> list[float]:
    """Option log-probabilities (None = not among those returned) to probabilities."""
    return [math.exp(lp) if lp is not None and math.isfinite(lp) else 0.0 for lp in logprobs]
