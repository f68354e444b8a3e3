"""Chart tags. Each renders ``templates/charts/_chart.html``: a ``<canvas>`` that ``static/backforth/charts.js``
draws with Chart.js (``static/vendor/chartjs/``), the chart's data as a ``json_script`` block beside it (the CSP
allows no inline script), and the same numbers as a table under ``<details>``, for screen readers, text browsers and
tests. The canvas's ``aria-label`` sums the chart up in one sentence.

Usage (a page with charts includes ``charts/_scripts.html`` in its ``scripts`` block)::

    {% load charts %}
    {% histogram bins x_label="score" marker=threshold %}      {# bins: app.binning.Bins, or None #}
    {% line_chart points label="loss" x_label="step" y_label="loss" %}
    {% stacked_bar parts label="verdict" colors="#009E73,#BBBBBB,#D55E00" %}
    {% sparkline points label="loss" x_label="step" %}

``points`` are ``[x, y]`` pairs and ``parts`` ``[name, value]`` pairs (or a ``{name: value}`` mapping), as they come
from JSON metrics: malformed entries and non-finite numbers are skipped instead of breaking the page. Series names and
labels are text: the table escapes them, ``json_script`` escapes them, and Chart.js draws them on the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django import template

from app.binning import Bins, finite_float

register = template.Library()

TEMPLATE = "charts/_chart.html"


def _fmt(value: float) -> str:
    """A number for people: whole numbers without a decimal point, others to 6 significant digits."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _pct(fraction: float) -> str:
    """A fraction of 1 as a percentage: ``40%``, ``2.5%``, ``<0.1%``."""
    percent = fraction * 100
    if percent == 0:
        return "0%"
    if percent < 0.05:
        return "<0.1%"
    if percent >= 10 or abs(percent - round(percent)) < 0.05:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%"


def _pairs(value: object) -> list[tuple[object, object]]:
    """The two-item entries of ``value`` (a mapping's items, or a list's ``[a, b]`` entries); anything else is
    dropped."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return []
    return [
        (item[0], item[1])
        for item in value
        if isinstance(item, Sequence) and not isinstance(item, str | bytes) and len(item) == 2
    ]


def _points(value: object) -> list[tuple[float, float]]:
    """The ``[x, y]`` pairs of ``value`` with two finite numbers, in x order."""
    points = [(finite_float(x), finite_float(y)) for x, y in _pairs(value)]
    return sorted(((x, y) for x, y in points if x is not None and y is not None), key=lambda p: p[0])


def _chart(
    kind: str, summary: str, spec: dict[str, Any], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> dict[str, Any]:
    """The context of ``_chart.html``: the first cell of each row is its header."""
    return {"kind": kind, "summary": summary, "spec": {"kind": kind, **spec}, "columns": columns, "rows": rows}


def _empty(kind: str, summary: str) -> dict[str, Any]:
    return {"kind": kind, "summary": summary, "empty": True}


@register.inclusion_tag(TEMPLATE, name="histogram")
def histogram(bins: Bins | None, x_label: str = "", marker: object = None) -> dict[str, Any]:
    """``{% histogram bins x_label="score" marker=threshold %}``: counts already binned (:class:`app.binning.Bins`,
    from ``bin_values`` or PostgreSQL's ``sql_bins``); None says "no data". ``marker`` (e.g. a curation threshold) is
    drawn as a dashed line when it lies in the range."""
    name = str(x_label) or "Histogram"
    if bins is not None and bins != "" and not isinstance(bins, Bins):  # "" is a missing template variable
        raise TypeError(f"histogram takes app.binning.Bins or None, not {type(bins).__name__}")
    if not bins or not bins.counts:
        return _empty("histogram", f"{name}: no data")
    mark = finite_float(marker)
    edges = bins.edges
    last = len(bins.counts) - 1
    rows = [
        [f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}{']' if i == last else ')'}", count]
        for i, count in enumerate(bins.counts)
    ]
    summary = f"{name}: {bins.total} values"
    if bins.outside:
        summary += f" ({bins.outside} outside {_fmt(bins.lo)}–{_fmt(bins.hi)})"
    if mark is not None:
        summary += f", marker at {_fmt(mark)}"
    spec = {"edges": edges, "counts": list(bins.counts), "marker": mark, "xLabel": name, "yLabel": "count"}
    return _chart("histogram", summary, spec, [name, "count"], rows)


@register.inclusion_tag(TEMPLATE, name="line_chart")
def line_chart(
    points: object, label: str = "", x_label: str = "", y_label: str = "", title: str = ""
) -> dict[str, Any]:
    """``{% line_chart points label="loss" x_label="step" y_label="loss" %}``: one series of ``[x, y]`` pairs."""
    label, x_label, y_label, title = str(label), str(x_label), str(y_label), str(title)
    data = _points(points)
    name = title or label or "Line chart"
    if not data:
        return _empty("line", f"{name}: no data")
    ys = [y for _, y in data]
    count = "1 point" if len(data) == 1 else f"{len(data)} points"
    summary = (
        f"{name}: {count}, {x_label or 'x'} {_fmt(data[0][0])} to {_fmt(data[-1][0])}, "
        f"{y_label or label or 'y'} {_fmt(ys[0])} → {_fmt(ys[-1])} (min {_fmt(min(ys))}, max {_fmt(max(ys))})"
    )
    spec = {"series": [{"name": label, "points": data}], "xLabel": x_label, "yLabel": y_label, "title": title}
    rows = [[_fmt(x), _fmt(y)] for x, y in data]
    return _chart("line", summary, spec, [x_label or "x", y_label or label or "y"], rows)


@register.inclusion_tag(TEMPLATE, name="stacked_bar")
def stacked_bar(parts: object, label: str = "", colors: object = None) -> dict[str, Any]:
    """``{% stacked_bar parts label="verdict" colors="#009E73,#BBBBBB,#D55E00" %}``: one 100% bar of ``[name, value]``
    pairs (counts or fractions). Negative and non-numeric values count as zero; a part keeps its colour (by position)
    when another is zero. ``colors`` is a list or a comma-separated string of CSS colours (default Okabe–Ito)."""
    values = [(str(name), max(0.0, finite_float(value) or 0.0)) for name, value in _pairs(parts)]
    total = sum(value for _, value in values)
    if not (math.isfinite(total) and total > 0):
        return _empty("stacked-bar", "No data")
    if isinstance(colors, str):
        palette = [c.strip() for c in colors.split(",") if c.strip()]
    else:
        palette = [str(c) for c in colors] if isinstance(colors, Iterable) else []
    shares = [_pct(value / total) for _, value in values]
    summary = ", ".join(f"{name} {share}" if name else share for (name, _), share in zip(values, shares, strict=True))
    spec = {
        "parts": [
            {"name": name, "value": value, "share": share} for (name, value), share in zip(values, shares, strict=True)
        ],
        "colors": palette,
    }
    rows = [[name, _fmt(value), share] for (name, value), share in zip(values, shares, strict=True)]
    return _chart("stacked-bar", summary, spec, [str(label) or "part", "count", "share"], rows)


@register.inclusion_tag(TEMPLATE, name="sparkline")
def sparkline(points: object, label: str = "", x_label: str = "") -> dict[str, Any]:
    """``{% sparkline points label="loss" x_label="step" %}``: a tiny trend line of ``[x, y]`` pairs for a table
    cell, without axes, with a dot on the last value."""
    label, x_label = str(label), str(x_label)
    data = _points(points)
    if not data:
        return _empty("sparkline", "No data")
    ys = [y for _, y in data]
    head = f"{label}: " if label else ""
    if len(ys) == 1:
        summary = f"{head}1 value, {_fmt(ys[0])}"
    else:
        summary = f"{head}{len(ys)} values, {_fmt(ys[0])} → {_fmt(ys[-1])} (min {_fmt(min(ys))}, max {_fmt(max(ys))})"
    rows = [[_fmt(x), _fmt(y)] for x, y in data]
    return _chart("sparkline", summary, {"points": data}, [x_label or "x", label or "y"], rows)
