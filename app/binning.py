"""Histograms counted by PostgreSQL: `sql_bins` groups a column into the bins of `app.charts.bin_values` and reads
back one count per bin, not one row per value.

Not `width_bucket`: its arithmetic differs from the chart's (no epsilon, bound1 + count × fraction), so a value on
an inner bin edge could land one bin lower than the Python figure. The query repeats `charts._scale` step by step in
float8 (IEEE 754, like Python floats), with the same constants as parameters, so the counts are identical."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import Case, Count, F, FloatField, IntegerField, Max, Min, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Floor, Greatest, Least

from app.charts import BIN_EPSILON, Bins, histogram_range


def finite(queryset: QuerySet[Any], field: str) -> QuerySet[Any]:
    """Rows whose `field` is a finite number (not NULL, NaN or ±infinity: the chart skips those)."""
    return queryset.filter(**{f"{field}__isnull": False}).exclude(**{f"{field}__in": [math.nan, math.inf, -math.inf]})


def sql_range(queryset: QuerySet[Any], field: str) -> tuple[float, float] | None:
    """(min, max) of the finite values of `field`, or None when there are none."""
    agg = finite(queryset, field).aggregate(lo=Min(field), hi=Max(field))
    return None if agg["lo"] is None else (agg["lo"], agg["hi"])


def _float(value: float) -> Value:
    return Value(float(value), output_field=FloatField())


def sql_bins(queryset: QuerySet[Any], field: str, *, bins: int, lo: float, hi: float) -> Bins | None:
    """`charts.bin_values(values of field, bins=bins, lo=lo, hi=hi)`, counted in one grouped query; None when
    `field` holds no finite value."""
    low, high = histogram_range(float(lo), float(hi))
    half_span = high / 2 - low / 2
    value = F(field)
    # charts._scale: t = (v/2 - lo/2) / (hi/2 - lo/2), clamped to [0, 1]; bin = min(bins - 1, int(t * bins + ε)).
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
