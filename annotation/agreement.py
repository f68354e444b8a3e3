"""Inter-annotator agreement for review decisions.

Pure Python (no Django, no numpy): every function takes plain sequences/mappings of categorical labels such as
``"accept"`` and ``"reject"`` and returns plain numbers/dicts, so it can be used from views, services, management
commands and tests alike.

Labels are compared as opaque strings. Callers are expected to normalise them first; in particular an ``"edit"``
decision means "accept, with changes" and must be mapped to ``"accept"`` *before* calling these functions, otherwise
an edit and an accept of the same item would count as a disagreement.

Arithmetic is done with :class:`fractions.Fraction` so that the results are exact up to the final ``float``
conversion (the textbook examples give exactly 0.4 and not 0.39999999999999997) and so that the degenerate case
"expected agreement equals 1" is detected exactly rather than with a tolerance.

Convention for the degenerate case: kappa is ``(p_o - p_e) / (1 - p_e)``, which is undefined when the expected
agreement ``p_e`` is 1 (every rating carries the same label, e.g. two raters who both accept everything). Both
:func:`cohen_kappa` and :func:`fleiss_kappa` then return ``1.0`` if the observed agreement is also 1 and ``0.0``
otherwise, instead of raising or returning NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from itertools import combinations
from typing import TypedDict

__all__ = [
    "PairAgreement",
    "RoundAgreement",
    "cohen_kappa",
    "fleiss_kappa",
    "interpret_kappa",
    "pairwise_agreement",
    "round_agreement",
]


class PairAgreement(TypedDict):
    """Agreement between two annotators over the items they both decided (a plain dict at runtime)."""

    a: str
    b: str
    items: int
    agreement: float
    kappa: float | None


class RoundAgreement(TypedDict):
    """Agreement summary for a whole round (a plain dict at runtime)."""

    items_with_overlap: int
    fleiss_kappa: float | None
    percent_agreement: float | None
    pairs: list[PairAgreement]
    disagreements: list[int]


def _kappa(p_o: Fraction, p_e: Fraction) -> float:
    """``(p_o - p_e) / (1 - p_e)``, with the documented convention when ``p_e == 1``."""
    if p_e == 1:
        return 1.0 if p_o == 1 else 0.0
    return float((p_o - p_e) / (1 - p_e))


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa for two raters who labelled the same items, in the same order.

    ``a[i]`` and ``b[i]`` are the two raters' labels for item ``i``. Returns ``None`` when there are fewer than two
    items (kappa is meaningless on a single item). When the expected agreement is 1 — both raters used one and the
    same label throughout — returns 1.0 if the observed agreement is 1 (it then necessarily is) and 0.0 otherwise.

    Raises ``ValueError`` if the two sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs equally long label sequences, got {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return None
    p_o = Fraction(sum(1 for x, y in zip(a, b, strict=True) if x == y), n)
    count_a, count_b = Counter(a), Counter(b)
    p_e = Fraction(sum(count_a[label] * count_b[label] for label in count_a), n * n)
    return _kappa(p_o, p_e)


def _item_agreement(labels: Sequence[str]) -> Fraction:
    """Share of agreeing ordered rater pairs within one item: ``(Σ n_j² − n) / (n (n − 1))``; needs ``n >= 2``."""
    n = len(labels)
    return Fraction(sum(c * c for c in Counter(labels).values()) - n, n * (n - 1))


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa for any number of raters per item.

    ``items[i]`` is the list of labels item ``i`` received (one per rater; which rater gave which label does not
    matter). Items with fewer than two ratings are ignored; returns ``None`` when no item is left.

    Items may have different numbers of raters. The standard generalisation is used: for an item with ``n_i``
    ratings of which ``n_ij`` carry label ``j``, ``P_i = (Σ_j n_ij² − n_i) / (n_i (n_i − 1))``; ``P̄`` is the mean
    of ``P_i`` over the usable items; ``p_j`` is label ``j``'s share of *all* ratings of the usable items and
    ``P_e = Σ_j p_j²``. With a constant number of raters this is exactly Fleiss' original formula.

    When ``P_e == 1`` (every rating carries the same label) returns 1.0 if ``P̄ == 1`` and 0.0 otherwise.
    """
    usable = [item for item in items if len(item) >= 2]
    if not usable:
        return None
    p_bar = sum((_item_agreement(item) for item in usable), Fraction(0)) / len(usable)
    totals: Counter[str] = Counter()
    for item in usable:
        totals.update(item)
    n_ratings = sum(totals.values())
    p_e = sum((Fraction(c, n_ratings) ** 2 for c in totals.values()), Fraction(0))
    return _kappa(p_bar, p_e)


def pairwise_agreement(decisions: Mapping[int, Mapping[str, str]]) -> list[PairAgreement]:
    """Agreement of every pair of annotators over the items both of them decided.

    ``decisions`` is ``{item_id: {annotator_name: label}}``. Returns one dict per unordered annotator pair that
    shares at least one item::

        {"a": name, "b": other_name, "items": n_shared, "agreement": observed_fraction, "kappa": cohen_or_None}

    with ``a < b``, sorted by ``(a, b)``. ``kappa`` is :func:`cohen_kappa` over the shared items (taken in item-id
    order), hence ``None`` when the pair shares only one item.
    """
    shared: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for item_id in sorted(decisions):
        by_annotator = decisions[item_id]
        for name_a, name_b in combinations(sorted(by_annotator), 2):
            labels_a, labels_b = shared.setdefault((name_a, name_b), ([], []))
            labels_a.append(by_annotator[name_a])
            labels_b.append(by_annotator[name_b])
    pairs: list[PairAgreement] = []
    for (name_a, name_b), (labels_a, labels_b) in sorted(shared.items()):
        agreeing = sum(1 for x, y in zip(labels_a, labels_b, strict=True) if x == y)
        pairs.append(
            {
                "a": name_a,
                "b": name_b,
                "items": len(labels_a),
                "agreement": agreeing / len(labels_a),
                "kappa": cohen_kappa(labels_a, labels_b),
            }
        )
    return pairs


def round_agreement(decisions: Mapping[int, Mapping[str, str]]) -> RoundAgreement:
    """Agreement summary for a round of review decisions.

    ``decisions`` is ``{item_id: {annotator_name: label}}``. Only items decided by at least two annotators
    ("overlap items") say anything about agreement. Returns::

        {
            "items_with_overlap": number of items with >= 2 decisions,
            "fleiss_kappa": fleiss_kappa over those items (None if there are none),
            "percent_agreement": mean over those items of the share of agreeing annotator pairs within the item
                                 (a fraction in [0, 1], None if there are none),
            "pairs": pairwise_agreement(decisions),
            "disagreements": sorted ids of the items whose labels are not all equal,
        }
    """
    overlap = {item_id: list(by_annotator.values()) for item_id, by_annotator in decisions.items()}
    overlap = {item_id: labels for item_id, labels in overlap.items() if len(labels) >= 2}
    percent: float | None = None
    if overlap:
        percent = float(sum((_item_agreement(labels) for labels in overlap.values()), Fraction(0)) / len(overlap))
    return {
        "items_with_overlap": len(overlap),
        "fleiss_kappa": fleiss_kappa(list(overlap.values())),
        "percent_agreement": percent,
        "pairs": pairwise_agreement(decisions),
        "disagreements": sorted(item_id for item_id, labels in overlap.items() if len(set(labels)) > 1),
    }


def interpret_kappa(k: float | None) -> str:
    """Landis & Koch (1977) verbal band for a kappa value.

    ``"poor"`` below 0, ``"slight"`` up to 0.20, ``"fair"`` up to 0.40, ``"moderate"`` up to 0.60,
    ``"substantial"`` up to 0.80, ``"almost perfect"`` above; ``"n/a"`` for ``None``. Upper bounds are inclusive.
    """
    if k is None:
        return "n/a"
    if k < 0:
        return "poor"
    for upper, band in ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial")):
        if k <= upper:
            return band
    return "almost perfect"
