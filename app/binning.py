"""Histogram counts: `bin_values` counts values into equal bins in Python, `sql_bins` counts a column into the same
bins in PostgreSQL and reads back one count per bin, not one row per value. The chart tags
(app/templatetags/charts.py) draw the resulting `Bins`.

Not `width_bucket`: its arithmetic differs from ours (no epsilon, bound1 + count × fraction), so a value on an inner
bin edge could land one bin lower than the Python count. The query repeats `_scale` step by step in float8
(IEEE 754, like Python floats), with the same constants as parameters, so the counts are identical."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, F, FloatField, IntegerField, Max, Min, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Floor, Greatest, Least

__all__ = ["BIN_EPSILON", "Bins", "bin_values", "finite", "histogram_range", "sql_bins", "sql_range"]

#: Added before truncating to a bin: keeps a value on a bin edge (0.3 with ten bins over [0, 1]) out of the bin below.
BIN_EPSILON = 1e-9


@dataclass(frozen=True)
class Bins:
    """A histogram's counts: ``counts[i]`` values in bin i of ``len(counts)`` equal bins over ``[lo, hi]`` (the last
    bin closed), and how many finite values fell ``outside`` that range."""

    counts: tuple[int, ...]
    lo: float
    hi: float
    outside: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def edges(self) -> list[float]:
        """The ``len(counts) + 1`` bin edges, from ``lo`` to ``hi``."""
        n = len(self.counts)
        return [self.lo + (self.hi - self.lo) * i / n for i in range(n)] + [self.hi]


# --- Python ---------------------------------------------------------------------------------------------------------


def finite_float(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` when it is missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _scale(value: float, lo: float, hi: float, start: float, end: float) -> float:
    """Map ``value`` from ``[lo, hi]`` onto ``[start, end]``, clamped; the middle when the domain is empty.

    Works on halves so that a domain spanning most of the float range cannot overflow.
    """
    half_span = hi / 2 - lo / 2
    t = (value / 2 - lo / 2) / half_span if half_span > 0 else 0.5
    return start + min(1.0, max(0.0, t)) * (end - start)


def histogram_range(lo: float, hi: float) -> tuple[float, float]:
    """The range a histogram over ``[lo, hi]`` really bins: ordered, and widened when it is (nearly) a single value."""
    lo, hi = sorted((lo, hi))
    if hi - lo > max(abs(lo), abs(hi)) * 1e-9:
        return lo, hi
    middle = lo / 2 + hi / 2
    pad = abs(middle) * 0.1 or 1.0
    return middle - pad, middle + pad


def bin_values(
    values: Iterable[object],
    *,
    bins: int = 10,
    lo: float | None = None,
    hi: float | None = None,
    marker: float | None = None,
) -> Bins | None:
    """``values`` counted into ``bins`` equal bins over ``[lo, hi]`` (default: the data's range, widened to include
    ``marker``); non-finite values are skipped. None when there is no finite value at all."""
    data = [v for v in map(finite_float, values) if v is not None]
    if not data:
        return None
    requested = finite_float(bins)
    bins = 10 if requested is None else max(1, min(int(requested), 1000))
    mark = finite_float(marker)
    low, high = finite_float(lo), finite_float(hi)
    extra = [] if mark is None else [mark]
    low = min(data + extra) if low is None else low
    high = max(data + extra) if high is None else high
    low, high = histogram_range(low, high)
    counts = [0] * bins
    outside = 0
    for value in data:
        if value < low or value > high:
            outside += 1
            continue
        counts[min(bins - 1, int(_scale(value, low, high, 0, bins) + BIN_EPSILON))] += 1
    return Bins(tuple(counts), low, high, outside)


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


def finite(queryset: QuerySet[Any], field: str) -> QuerySet[Any]:
    """Rows whose `field` is a finite number (not NULL, NaN or ±infinity: the binning skips those)."""
    return queryset.filter(**{f"{field}__isnull": False}).exclude(**{f"{field}__in": [math.nan, math.inf, -math.inf]})


def sql_range(queryset: QuerySet[Any], field: str) -> tuple[float, float] | None:
    """(min, max) of the finite values of `field`, or None when there are none."""
    agg = finite(queryset, field).aggregate(lo=Min(field), hi=Max(field))
    return None if agg["lo"] is None else (agg["lo"], agg["hi"])


def _float(value: float) -> Value:
    return Value(float(value), output_field=FloatField())


def sql_bins(queryset: QuerySet[Any], field: str, *, bins: int, lo: float, hi: float) -> Bins | None:
    """`bin_values(values of field, bins=bins, lo=lo, hi=hi)`, counted in one grouped query; None when `field` holds
    no finite value."""
    low, high = histogram_range(float(lo), float(hi))
    half_span = high / 2 - low / 2
    value = F(field)
    # _scale: t = (v/2 - lo/2) / (hi/2 - lo/2), clamped to [0, 1]; bin = min(bins - 1, int(t * bins + ε)).
    t = Least(_float(1.0), Greatest(_float(0.0), (value / _float(2.0) - _float(low / 2)) / _float(half_span)))
    index = Least(Value(bins - 1), Cast(Floor(t * _float(bins) + _float(BIN_EPSILON)), IntegerField()))
    bucket = Case(
        When(Q(**{f"{field}__lt": low}) | Q(**{f"{field}__gt": high}), then=Value(-1)),
        default=index,
        output_field=IntegerField(),
    )
    rows = finite(queryset, field).annotate(bucket=bucket).values_list("bucket").annotate(n=Count("*")).order_by()
    counted = dict(rows)
    if not counted:
        return None
    counts = tuple(counted.get(i, 0) for i in range(bins))
    return Bins(counts, low, high, counted.get(-1, 0))
