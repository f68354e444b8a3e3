"""Curation signals and the keep rule (DESIGN.md "Signals and gates"). Pure: no Django, no torch.

Three signals per (instruction x̂, response y), all from the curation model:
- rubric: Humpback's 5-point rating read as Σ s·P(s) (pipeline/scoring.py). Needs a model that can follow a
  rubric; on a 135M model it is noise.
- agreement: mean log p(y | x̂) − mean log p(y), in nats per token: how much the instruction explains the
  response. Mismatched pairs score near zero or below.
- ifd: Instruction-Following Difficulty, loss(y | x̂) / loss(y) (Li et al., NAACL 2024, "From Quantity to
  Quality"; Superfiltering, ACL 2024, showed a small model's IFD selects data for large models). Below 1 the
  instruction helps; at or above 1 it does not (those pairs are filtered out in both papers).

The keep rule (frozen in the round config as `curation`) names the signal that ranks pairs and optional floors:
- "rubric" / "agreement": keep score >= threshold, or the top_k.
- "ifd": keep pairs inside ifd_band [lo, hi); with top_k, the highest IFD inside the band (Superfiltering picks
  the hardest pairs the instruction still explains).
- "agreement_rubric": drop pairs under min_agreement (default 0), then threshold / top_k on the rubric.
`min_agreement` and `ifd_band`, when set, are floors under every rule. Gated pairs are never kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from generation.pipeline.frozen import Section
from generation.pipeline.statistics import auc

SIGNALS = ("rubric", "agreement", "ifd")
# Which way is better, for ranking and for AUC against "this pair is good": +1 higher, −1 lower.
DIRECTION = {"rubric": 1, "agreement": 1, "ifd": -1}
LABELS = {
    "rubric": "rubric score (1–5)",
    "agreement": "agreement (nats/token)",
    "ifd": "IFD (loss ratio)",
}
KeepRule = Literal["agreement", "rubric", "ifd", "agreement_rubric"]
KEEP_RULES: tuple[KeepRule, ...] = ("agreement", "rubric", "ifd", "agreement_rubric")
# The signal each rule ranks by (and whose scale `threshold` is on).
RANK_SIGNAL: dict[str, str] = {"agreement": "agreement", "rubric": "rubric", "ifd": "ifd", "agreement_rubric": "rubric"}
# The rule a round uses when its frozen config predates keep rules (they all ranked by the rubric).
LEGACY_RULE: KeepRule = "rubric"


@dataclass(frozen=True)
class CurationConfig(Section):
    """The keep rule, frozen in a round's config as `curation` (see the module's docstring). The defaults are the
    rounds' own: agreement works at every model size, the rubric needs a model that follows it."""

    keep: KeepRule = "agreement"
    # On the ranking signal's scale; a round takes a threshold or a top_k, not both.
    threshold: float | None = 0.1
    top_k: int | None = None
    # Floors under every rule.
    min_agreement: float | None = None
    ifd_band: tuple[float | None, float | None] | None = None
    # Ask the curation model for a written rationale and a parsed score too.
    rationale: bool = False

    # Before keep rules a round ranked by the rubric; any key it left out was unset.
    LEGACY = {"keep": LEGACY_RULE, "threshold": None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, path: str = "") -> Self:
        cur = super().from_dict(data, path=path)
        return cur if cur.keep else dataclasses.replace(cur, keep=LEGACY_RULE)  # a null rule: the legacy one


@dataclass(frozen=True)
class LogLik:
    """Sum of log-probabilities of a text's tokens, and how many tokens it has."""

    total: float
    tokens: int

    @property
    def nll(self) -> float | None:
        """Mean negative log-likelihood per token (nats), None for an empty text."""
        return -self.total / self.tokens if self.tokens > 0 else None


def likelihood_signals(conditional: LogLik, unconditional: LogLik) -> dict[str, float | None]:
    """agreement, ifd and both losses from log p(y | x̂) and log p(y). None where a value is undefined."""
    nll_c, nll_u = conditional.nll, unconditional.nll
    if nll_c is None or nll_u is None or not (math.isfinite(nll_c) and math.isfinite(nll_u)):
        return {"agreement": None, "ifd": None, "nll_conditional": nll_c, "nll_unconditional": nll_u}
    return {
        "agreement": round(nll_u - nll_c, 6),
        "ifd": round(nll_c / nll_u, 6) if nll_u > 0 else None,
        "nll_conditional": round(nll_c, 6),
        "nll_unconditional": round(nll_u, 6),
    }


def oriented(signal: str, value: float | None) -> float | None:
    """The value with "higher is better" for every signal (IFD negated)."""
    if value is None:
        return None
    return DIRECTION.get(signal, 1) * value


def signal_aucs(
    rows: Sequence[Mapping[str, Any]], labels: Sequence[bool], *, signals: Sequence[str] = SIGNALS
) -> dict[str, float | None]:
    """Each signal's AUC for telling good pairs (label True) from bad, oriented so that 1.0 is perfect."""
    return {s: auc([oriented(s, r.get(s)) for r in rows], labels) for s in signals}


# The keep rule as a round's typed config holds it, or as a plain dict (a stored `curation`, a bench's rule).
Curation = CurationConfig | Mapping[str, Any]


def rule_of(curation: Curation) -> KeepRule:
    return CurationConfig.of(curation).keep


def keep_score(signals: Mapping[str, Any], curation: Curation) -> float | None:
    """The number the keep rule ranks a pair by (on its signal's own scale)."""
    value = signals.get(RANK_SIGNAL[rule_of(curation)])
    return float(value) if value is not None and math.isfinite(value) else None


def _passes_floors(signals: Mapping[str, Any], curation: CurationConfig) -> bool:
    floor = curation.min_agreement
    if floor is None and curation.keep == "agreement_rubric":
        floor = 0.0
    if floor is not None:
        agreement = signals.get("agreement")
        if agreement is None or agreement < floor:
            return False
    band = curation.ifd_band
    if band is not None:
        ifd = signals.get("ifd")
        lo, hi = band
        if ifd is None or (lo is not None and ifd < lo) or (hi is not None and ifd >= hi):
            return False
    return True


def keep_decisions(rows: Sequence[Mapping[str, Any]], gated: Sequence[bool], curation: Curation) -> list[bool]:
    """Which pairs the round keeps under its keep rule. `rows` are each pair's signals. Deterministic: ties in
    top-k are broken by position."""
    cur = CurationConfig.of(curation)
    rule = cur.keep
    scores = [keep_score(r, cur) for r in rows]
    # The eligible pairs (ungated, scored, above the floors) and their scores.
    eligible: dict[int, float] = {
        i: s
        for i, (r, g, s) in enumerate(zip(rows, gated, scores, strict=True))
        if not g and s is not None and _passes_floors(r, cur)
    }
    if cur.top_k is not None:
        sign = 1 if rule == "ifd" else DIRECTION[RANK_SIGNAL[rule]]  # ifd: the hardest pairs inside the band
        ranked = sorted(eligible, key=lambda i: (-sign * eligible[i], i))
        chosen = set(ranked[: max(cur.top_k, 0)])
        return [i in chosen for i in range(len(rows))]
    if cur.threshold is not None:
        sign, cut = DIRECTION[RANK_SIGNAL[rule]], cur.threshold
        return [i in eligible and sign * eligible[i] >= sign * cut for i in range(len(rows))]
    return [i in eligible for i in range(len(rows))]


def validate_curation(cur: dict[str, Any]) -> None:
    """Raise ValueError naming the key when the keep rule is wrong."""
    rule = cur.get("keep")
    if rule not in KEEP_RULES:
        raise ValueError(f"curation.keep must be one of {', '.join(KEEP_RULES)}, got {rule!r}")
    threshold, top_k = cur.get("threshold"), cur.get("top_k")
    if threshold is not None and top_k is not None:
        raise ValueError("curation takes a threshold or a top_k, not both")
    if rule == "ifd":
        if threshold is not None:
            raise ValueError(
                "curation.keep 'ifd' keeps the pairs inside curation.ifd_band (and its top_k): no threshold"
            )
        if cur.get("ifd_band") is None:
            raise ValueError("curation.keep 'ifd' needs curation.ifd_band, e.g. [0, 1]")
    elif threshold is None and top_k is None:
        raise ValueError(f"curation.keep {rule!r} needs a threshold or a top_k")
    if threshold is not None:
        if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
            raise ValueError(f"curation.threshold must be a number, got {threshold!r}")
        if RANK_SIGNAL[rule] == "rubric" and not 1 <= threshold <= 5:
            raise ValueError(f"curation.threshold is on the rubric's scale for {rule!r}: 1–5, got {threshold!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"curation.top_k must be a positive integer, got {top_k!r}")
    floor = cur.get("min_agreement")
    if floor is not None and (
        not isinstance(floor, int | float) or isinstance(floor, bool) or not math.isfinite(floor)
    ):
        raise ValueError(f"curation.min_agreement must be a number or null, got {floor!r}")
    band = cur.get("ifd_band")
    if band is not None:
        ok = isinstance(band, list | tuple) and len(band) == 2
        ok = ok and all(b is None or (isinstance(b, int | float) and not isinstance(b, bool)) for b in band)
        if not ok or (band[0] is not None and band[1] is not None and band[0] >= band[1]):
            raise ValueError(
                f"curation.ifd_band must be [low, high] with low < high (either may be null), got {band!r}"
            )
