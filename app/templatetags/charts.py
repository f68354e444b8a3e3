"""Template tags for the inline SVG charts of :mod:`app.charts`.

Usage::

    {% load charts %}
    {% line_chart points label="loss" x_label="step" y_label="loss" %}
    {% line_chart series_by_name title="Loss" %}            {# a dict {name: points} draws several series #}
    {% stacked_bar parts colors="#009E73,#BBBBBB,#D55E00" %}
    {% histogram scores bins=20 lo=0 hi=1 x_label="score" marker=threshold %}
    {% sparkline win_rates width=100 %}

Arguments may come straight from JSON (lists of ``[x, y]`` pairs, or a JSON string of them); malformed entries are
skipped instead of breaking the page. Every tag also supports ``as name`` like any ``simple_tag``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence

from django import template
from django.utils.safestring import SafeString, mark_safe

from app import charts

register = template.Library()


def _loaded(value: object) -> object:
    """``value``, JSON-decoded when it is a string (an unreadable string counts as no data)."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return []
    return value


def _items(value: object) -> list[object]:
    """``value`` as a list: a mapping's ``(key, value)`` pairs, any other iterable's items, or ``[]``."""
    value = _loaded(value)
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    return []


def _pairs(value: object) -> list[tuple[object, object]]:
    """The two-item entries of ``value`` (points or label/value parts); anything else is dropped."""
    return [
        (item[0], item[1])
        for item in _items(value)
        if isinstance(item, Sequence) and not isinstance(item, str | bytes) and len(item) == 2
    ]


def _number(value: object, default: float) -> float:
    """``value`` as a finite float, or ``default`` when it is missing or not a finite number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default
    return number if math.isfinite(number) else default


def _optional(value: object) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, empty or not a number."""
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


@register.simple_tag(name="line_chart")
def line_chart_tag(
    points: object,
    label: str = "",
    x_label: str = "",
    y_label: str = "",
    title: str = "",
    width: object = 480,
    height: object = 160,
) -> SafeString:
    """``{% line_chart points label="loss" x_label="step" y_label="loss" %}``: one series of ``[x, y]`` pairs.

    ``points`` may also be a mapping ``{series name: [[x, y], ...]}`` to draw several series with a legend.
    """
    loaded = _loaded(points)
    if isinstance(loaded, Mapping):
        series = [(str(name), _pairs(pts)) for name, pts in loaded.items()]
    else:
        series = [(str(label), _pairs(loaded))]
    svg = charts.line_chart(
        series,  # type: ignore[arg-type]  # non-numeric entries are skipped by the chart
        width=_number(width, 480),
        height=_number(height, 160),
        x_label=str(x_label),
        y_label=str(y_label),
        title=str(title),
    )
    return mark_safe(svg)  # every caller-provided string is escaped by app.charts


@register.simple_tag(name="stacked_bar")
def stacked_bar_tag(parts: object, width: object = 480, height: object = 28, colors: object = None) -> SafeString:
    """``{% stacked_bar parts %}``: a 100% bar of ``[label, value]`` pairs (or a ``{label: value}`` mapping).

    ``colors`` is a list or a comma-separated string of CSS colours.
    """
    if isinstance(colors, str):
        palette = [c.strip() for c in colors.split(",") if c.strip()]
    else:
        palette = [str(c) for c in _items(colors)]
    svg = charts.stacked_bar(
        [(str(name), value) for name, value in _pairs(parts)],  # type: ignore[misc]
        width=_number(width, 480),
        height=_number(height, 28),
        colors=palette or None,
    )
    return mark_safe(svg)  # every caller-provided string is escaped by app.charts


@register.simple_tag(name="histogram")
def histogram_tag(
    values: object,
    bins: object = 10,
    lo: object = None,
    hi: object = None,
    width: object = 480,
    height: object = 140,
    x_label: str = "",
    marker: object = None,
) -> SafeString:
    """``{% histogram values bins=20 lo=0 hi=1 x_label="score" marker=threshold %}``; ``values`` may also be counts
    already binned (:class:`app.charts.Bins`, e.g. from app/binning.py), which carry their own bins and range."""
    if isinstance(values, charts.Bins):
        svg = charts.histogram_binned(
            values,
            width=_number(width, 480),
            height=_number(height, 140),
            x_label=str(x_label),
            marker=_optional(marker),
        )
        return mark_safe(svg)  # every caller-provided string is escaped by app.charts
    svg = charts.histogram(
        _items(values),  # type: ignore[arg-type]  # non-numeric entries are skipped by the chart
        bins=int(_number(bins, 10)),
        lo=_optional(lo),
        hi=_optional(hi),
        width=_number(width, 480),
        height=_number(height, 140),
        x_label=str(x_label),
        marker=_optional(marker),
    )
    return mark_safe(svg)  # every caller-provided string is escaped by app.charts


@register.simple_tag(name="sparkline")
def sparkline_tag(values: object, width: object = 120, height: object = 28) -> SafeString:
    """``{% sparkline values %}``: a tiny axis-less trend line for table cells."""
    svg = charts.sparkline(
        _items(values),  # type: ignore[arg-type]  # non-numeric entries are skipped by the chart
        width=_number(width, 120),
        height=_number(height, 28),
    )
    return mark_safe(svg)  # every caller-provided string is escaped by app.charts
