"""Small server-side charts as inline SVG: no JavaScript, no CDN, no stylesheet required.

Every function returns one ``<svg>`` element as a string. All text that comes from the caller (series names, labels,
titles, colours) is XML-escaped, so the result is safe to pass through ``mark_safe``. Non-finite numbers (NaN, ±inf)
and values that cannot be read as numbers are skipped rather than drawn.

Elements carry CSS classes (``chart``, ``chart-axis``, ``chart-grid``, ``chart-tick``, ``chart-line series-N``,
``chart-dot``, ``chart-bar``, ``chart-marker``, ``chart-empty`` ...) so a stylesheet can restyle them, and inline
default ``stroke``/``fill`` attributes so they look right without one. Colours come from the Okabe–Ito palette, which
stays distinguishable under the common forms of colour blindness.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence

from app.binning import Bins, bin_values, histogram_range

__all__ = [
    "PALETTE",
    "WIN_TIE_LOSS_COLORS",
    "Bins",
    "bin_values",
    "histogram",
    "histogram_binned",
    "histogram_range",
    "line_chart",
    "sparkline",
    "stacked_bar",
]

#: Okabe–Ito colour-blind-friendly palette (yellow last: it is the hardest to see on white).
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)
#: Suggested ``colors`` for a win / tie / loss :func:`stacked_bar`.
WIN_TIE_LOSS_COLORS: tuple[str, ...] = ("#009E73", "#BBBBBB", "#D55E00")

_SVG_NS = "http://www.w3.org/2000/svg"
_FONT = "system-ui, sans-serif"
_TEXT = "#333333"
_MUTED = "#888888"
_AXIS = "#666666"
_GRID = "#E5E5E5"
_EMPTY = "#DDDDDD"
_BAR = "#56B4E9"
_MARKER = "#D55E00"
_FONT_SIZE = 10.0
_CHAR_WIDTH = 0.6  # average glyph width as a fraction of the font size, for layout estimates

# Characters XML 1.0 forbids (C0 controls other than tab/newline/return, lone surrogates, U+FFFE/U+FFFF).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_Attr = str | float | int | None


# --- formatting helpers ---------------------------------------------------------------------------------------------


def _esc(text: object) -> str:
    """XML-escape ``text`` (quotes included) after dropping characters that are not allowed in XML at all."""
    return html.escape(_XML_INVALID.sub("", str(text)), quote=True)


def _num(value: float) -> str:
    """Format a coordinate compactly: at most one decimal, no trailing zeros, never ``-0``."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _fmt(value: float, digits: int = 4) -> str:
    """Format a value for a human-readable label with about ``digits`` significant digits: ``0.25``, ``1250``,
    ``12.5k``, ``3M``, ``1e-05``."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4:
        precision = max(1, digits - 1)
        rounded = float(f"{value:.{precision}g}")
        for divisor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if divisor <= abs(rounded) < divisor * 1e3:
                return f"{rounded / divisor:.{precision}g}{suffix}"
        return f"{value:.{precision}g}".replace("e+", "e")
    return f"{value:.{digits}g}"


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for ``ticks``: as compact as possible while still telling every tick apart."""
    for digits in range(4, 18):
        labels = [_fmt(tick, digits) for tick in ticks]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def _pct(fraction: float) -> str:
    """Format a fraction of 1 as a percentage: ``40%``, ``2.5%``, ``<0.1%``."""
    percent = fraction * 100
    if percent == 0:
        return "0%"
    if percent < 0.05:
        return "<0.1%"
    if percent >= 10 or abs(percent - round(percent)) < 0.05:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%"


def _text_width(text: str, font_size: float = _FONT_SIZE) -> float:
    """Rough rendered width of ``text`` in pixels (no font metrics on the server)."""
    return len(text) * font_size * _CHAR_WIDTH


def _truncate(text: str, limit: int) -> str:
    """Shorten ``text`` to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


def _to_float(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` when it is missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _point(pair: object) -> tuple[float, float] | None:
    """An ``(x, y)`` pair as two finite floats, or ``None`` if it is malformed or not finite."""
    if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
        return None
    x, y = _to_float(pair[0]), _to_float(pair[1])
    return None if x is None or y is None else (x, y)


def _size(value: object, default: float, minimum: float) -> float:
    """A usable chart dimension: ``default`` when ``value`` is unreadable, never below ``minimum``."""
    number = _to_float(value)
    return max(minimum, default if number is None else number)


def _text_fill(color: str) -> str:
    """Dark or white text, whichever contrasts better with the background ``color`` (``#RGB`` / ``#RRGGBB``)."""
    digits = color.strip().lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    try:
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)] if len(digits) == 6 else None
    except ValueError:
        channels = None
    if channels is None:
        return "#111111"
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#FFFFFF" if 1.05 / (luminance + 0.05) > (luminance + 0.05) / 0.05 else "#111111"


# --- scales and ticks -----------------------------------------------------------------------------------------------


def _scale(value: float, lo: float, hi: float, start: float, end: float) -> float:
    """Map ``value`` from ``[lo, hi]`` onto ``[start, end]``, clamped; the middle when the domain is empty.

    Works on halves so that a domain spanning most of the float range cannot overflow.
    """
    half_span = hi / 2 - lo / 2
    t = (value / 2 - lo / 2) / half_span if half_span > 0 else 0.5
    return start + min(1.0, max(0.0, t)) * (end - start)


def _pad_range(lo: float, hi: float) -> tuple[float, float]:
    """Widen a degenerate (constant-value) range so that it can be scaled and ticked."""
    if hi - lo > max(abs(lo), abs(hi)) * 1e-9:
        return lo, hi
    middle = lo / 2 + hi / 2
    pad = abs(middle) * 0.1 or 1.0
    return middle - pad, middle + pad


def _ticks(lo: float, hi: float, *, extend: bool, integer: bool = False) -> tuple[float, float, list[float]]:
    """Round-number ticks for ``[lo, hi]`` with steps of 1, 2, 2.5 or 5 × 10ⁿ.

    With ``extend`` the domain grows to the outer ticks and there are 3–5 of them; without, the domain is kept and the
    (at most 5) ticks lie inside it. ``integer`` restricts steps to whole numbers (for counts).
    Returns ``(lo, hi, ticks)``.
    """
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return lo, hi, [lo, hi] if hi != lo else [lo]
    base = 10 ** math.floor(math.log10(span / 4))
    step, first, last = 1.0, math.ceil(lo), math.floor(hi)
    for multiple in (1, 2, 2.5, 5, 10, 20, 25, 50, 100):
        candidate = multiple * base
        if integer and (candidate < 1 or candidate != round(candidate)):
            continue
        if extend:
            lo_i, hi_i = math.floor(lo / candidate + 1e-9), math.ceil(hi / candidate - 1e-9)
        else:
            lo_i, hi_i = math.ceil(lo / candidate - 1e-9), math.floor(hi / candidate + 1e-9)
        step, first, last = candidate, lo_i, hi_i
        if hi_i - lo_i + 1 <= 5:
            break
    ticks = [0.0 if abs(i * step) < step * 1e-9 else i * step for i in range(first, last + 1)]
    if extend and ticks:
        lo, hi = ticks[0], ticks[-1]
    return lo, hi, ticks


# --- SVG building ---------------------------------------------------------------------------------------------------


def _el(tag: str, attrs: Mapping[str, _Attr], content: str = "") -> str:
    """One SVG element. Numbers are formatted with :func:`_num`, strings escaped; ``content`` must be escaped markup."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None:
            continue
        text = _num(float(value)) if isinstance(value, int | float) else _esc(value)
        parts.append(f'{name}="{text}"')
    head = " ".join(parts)
    return f"<{head}>{content}</{tag}>" if content else f"<{head}/>"


def _text(x: float, y: float, label: str, *, cls: str, anchor: str = "start", **attrs: _Attr) -> str:
    """A ``<text>`` element with an escaped label, vertically centred on ``y``."""
    base: dict[str, _Attr] = {
        "class": cls,
        "x": x,
        "y": y,
        "text-anchor": anchor,
        "dominant-baseline": "central",
        "fill": _TEXT,
    }
    base.update({name.replace("_", "-"): value for name, value in attrs.items()})
    return _el("text", base, _esc(label))


def _svg(kind: str, width: float, height: float, title: str, body: Iterable[str]) -> str:
    """The root ``<svg>`` with accessibility attributes and an escaped ``<title>``."""
    head = _el(
        "svg",
        {
            "xmlns": _SVG_NS,
            "class": f"chart chart-{kind}",
            "viewBox": f"0 0 {_num(width)} {_num(height)}",
            "width": width,
            "height": height,
            "role": "img",
            "aria-label": title,
            "font-family": _FONT,
            "font-size": _FONT_SIZE,
        },
    )
    return head[:-2] + f"><title>{_esc(title)}</title>" + "".join(body) + "</svg>"


def _no_data(kind: str, width: float, height: float, title: str) -> str:
    """A chart of the given size that just says "no data"."""
    label = _text(width / 2, height / 2, "no data", cls="chart-empty", anchor="middle", fill=_MUTED)
    return _svg(kind, width, height, f"{title}: no data", [label])


def _legend(names: Sequence[str], left: float, top: float, right: float) -> tuple[list[str], float]:
    """Legend items (colour swatch + name) laid out in rows from ``(left, top)``; returns elements and height used."""
    items: list[str] = []
    x, y, row_height = left, top + 7, 14.0
    for index, name in enumerate(names):
        shown = _truncate(name, 32)
        item_width = 20 + _text_width(shown) + 12
        if x > left and x + item_width > right:
            x, y = left, y + row_height
        color = PALETTE[index % len(PALETTE)]
        swatch = {"x1": x, "x2": x + 16, "y1": y, "y2": y, "stroke": color, "stroke-width": 2}
        items.append(_el("line", {"class": f"chart-legend-swatch series-{index}", **swatch}))
        items.append(_text(x + 20, y, shown, cls=f"chart-legend-label series-{index}"))
        x += item_width
    return ['<g class="chart-legend">', *items, "</g>"], y - top + row_height / 2 + 4


# --- public charts --------------------------------------------------------------------------------------------------


def _y_grid(
    ticks: Sequence[float],
    labels: Sequence[str],
    lo: float,
    hi: float,
    left: float,
    right: float,
    top: float,
    bottom: float,
) -> list[str]:
    """Horizontal grid lines with their labels left of the plot."""
    out: list[str] = []
    for tick, label in zip(ticks, labels, strict=True):
        y = _scale(tick, lo, hi, bottom, top)
        out.append(_el("line", {"class": "chart-grid", "x1": left, "x2": right, "y1": y, "y2": y, "stroke": _GRID}))
        out.append(_text(left - 4, y, label, cls="chart-tick chart-tick-y", anchor="end", fill=_AXIS))
    return out


def _x_axis(
    ticks: Sequence[float],
    labels: Sequence[str],
    lo: float,
    hi: float,
    left: float,
    right: float,
    top: float,
    bottom: float,
    height: float,
    x_label: str,
) -> list[str]:
    """Tick marks and labels under the plot, both axis lines, and the x-axis title."""
    out: list[str] = []
    for tick, label in zip(ticks, labels, strict=True):
        x = _scale(tick, lo, hi, left, right)
        out.append(
            _el("line", {"class": "chart-axis", "x1": x, "x2": x, "y1": bottom, "y2": bottom + 4, "stroke": _AXIS})
        )
        out.append(_text(x, bottom + 11, label, cls="chart-tick chart-tick-x", anchor="middle", fill=_AXIS))
    axis = {"class": "chart-axis", "stroke": _AXIS}
    out.append(_el("line", {**axis, "x1": left, "x2": right, "y1": bottom, "y2": bottom}))
    out.append(_el("line", {**axis, "x1": left, "x2": left, "y1": top, "y2": bottom}))
    if x_label:
        out.append(
            _text((left + right) / 2, height - 7, x_label, cls="chart-axis-label chart-axis-label-x", anchor="middle")
        )
    return out


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    width: float = 480,
    height: float = 160,
    x_label: str = "",
    y_label: str = "",
    title: str = "",
) -> str:
    """A line chart of one or more named series of ``(x, y)`` points, e.g. training and eval loss by step.

    Each series is drawn in x order as a ``<polyline class="chart-line series-N">`` (a ``<circle class="chart-dot">``
    when it has a single point); points with a non-finite or non-numeric coordinate are skipped. Both axes get 3–5
    round-number ticks, a legend is drawn when there is more than one series, and a constant series sits in the middle
    of a padded range. ``width``/``height`` grow if needed to leave room for the plot. With no drawable point at all
    the chart just says "no data".
    """
    width, height = _size(width, 480, 120), _size(height, 160, 80)
    cleaned: list[tuple[str, list[tuple[float, float]]]] = []
    for name, points in series:
        valid = [p for p in map(_point, points or ()) if p is not None]
        cleaned.append((str(name), sorted(valid, key=lambda p: p[0])))
    names = [name for name, _ in cleaned]
    accessible = title or ", ".join(name for name in names if name) or "Line chart"
    xs = [x for _, points in cleaned for x, _ in points]
    ys = [y for _, points in cleaned for _, y in points]
    if not xs:
        return _no_data("line-chart", width, height, accessible)

    x_lo, x_hi, x_ticks = _ticks(*_pad_range(min(xs), max(xs)), extend=True)
    y_lo, y_hi, y_ticks = _ticks(*_pad_range(min(ys), max(ys)), extend=True)
    x_tick_labels = _tick_labels(x_ticks)
    y_tick_labels = _tick_labels(y_ticks)

    body: list[str] = []
    top = 4.0
    if title:
        body.append(_text(6, top + 8, title, cls="chart-title", font_weight="bold", font_size=11))
        top += 18
    left = 6 + (14 if y_label else 0) + max(map(_text_width, y_tick_labels)) + 6
    right_pad = max(12.0, _text_width(x_tick_labels[-1]) / 2 + 2)
    width = max(width, left + right_pad + 40)
    right = width - right_pad
    if len(cleaned) > 1:
        legend, used = _legend(names, left, top, width - 4)
        body.extend(legend)
        top += used
    top += 6  # half a tick label above the highest tick
    bottom_pad = 18 + (14 if x_label else 0)
    height = max(height, top + bottom_pad + 30)
    bottom = height - bottom_pad

    body.extend(_y_grid(y_ticks, y_tick_labels, y_lo, y_hi, left, right, top, bottom))
    body.extend(_x_axis(x_ticks, x_tick_labels, x_lo, x_hi, left, right, top, bottom, height, x_label))
    if y_label:
        middle = (top + bottom) / 2
        body.append(
            _text(
                10,
                middle,
                y_label,
                cls="chart-axis-label chart-axis-label-y",
                anchor="middle",
                transform=f"rotate(-90 10 {_num(middle)})",
            )
        )

    for index, (name, points) in enumerate(cleaned):
        color = PALETTE[index % len(PALETTE)]
        coords = [(_scale(x, x_lo, x_hi, left, right), _scale(y, y_lo, y_hi, bottom, top)) for x, y in points]
        if len(coords) == 1:
            (cx, cy), (px, py) = coords[0], points[0]
            tip = f"{name}: " if name else ""
            body.append(
                _el(
                    "circle",
                    {"class": f"chart-dot series-{index}", "cx": cx, "cy": cy, "r": 3, "fill": color},
                    f"<title>{_esc(f'{tip}({_fmt(px)}, {_fmt(py)})')}</title>",
                )
            )
        elif coords:
            attrs: dict[str, _Attr] = {
                "class": f"chart-line series-{index}",
                "points": " ".join(f"{_num(x)},{_num(y)}" for x, y in coords),
                "fill": "none",
                "stroke": color,
                "stroke-width": 1.5,
                "stroke-linejoin": "round",
                "stroke-linecap": "round",
            }
            body.append(_el("polyline", attrs, f"<title>{_esc(name)}</title>" if name else ""))
    return _svg("line-chart", width, height, accessible, body)


def stacked_bar(
    parts: Sequence[tuple[str, float]],
    *,
    width: float = 480,
    height: float = 28,
    colors: Sequence[str] | None = None,
) -> str:
    """A single horizontal 100% bar, e.g. ``[("win", 0.4), ("tie", 0.5), ("loss", 0.1)]`` (fractions or counts).

    Each part with a positive value becomes a ``<rect class="chart-bar part-N">`` (N is its position in ``parts``, so a
    part keeps its colour when another is zero) with a ``<title>`` tooltip, and shows "label 40%" — or just "40%" — when
    it is wide enough. Negative, non-finite and non-numeric values count as zero; a zero total draws an empty gray bar.
    ``colors`` defaults to :data:`PALETTE` (see :data:`WIN_TIE_LOSS_COLORS`).
    """
    width, height = _size(width, 480, 20), _size(height, 28, 8)
    palette = [str(c) for c in colors] if colors else list(PALETTE)
    values = [(str(label), max(0.0, _to_float(value) or 0.0)) for label, value in parts]
    total = sum(value for _, value in values)
    if not (math.isfinite(total) and total > 0):
        title = "No data"
        rect = {"class": "chart-bar chart-empty", "x": 0, "y": 0, "width": width, "height": height, "fill": _EMPTY}
        return _svg("stacked-bar", width, height, title, [_el("rect", rect, f"<title>{title}</title>")])

    body: list[str] = []
    summary: list[str] = []
    font_size = min(11.0, height * 0.6)
    cumulative = 0.0
    for index, (label, value) in enumerate(values):
        share = _pct(value / total)
        summary.append(f"{label} {share}" if label else share)
        if value <= 0:
            continue
        x0 = _scale(cumulative, 0, total, 0, width)
        cumulative += value
        x1 = _scale(cumulative, 0, total, 0, width)
        color = palette[index % len(palette)]
        tip = f"{label}: {_fmt(value)} ({share})" if label else f"{_fmt(value)} ({share})"
        rect = {"class": f"chart-bar part-{index}", "x": x0, "y": 0, "width": x1 - x0, "height": height, "fill": color}
        body.append(_el("rect", rect, f"<title>{_esc(tip)}</title>"))
        for text in (f"{label} {share}" if label else share, share):
            if _text_width(text, font_size) + 8 <= x1 - x0:
                body.append(
                    _text(
                        (x0 + x1) / 2,
                        height / 2,
                        text,
                        cls=f"chart-bar-label part-{index}",
                        anchor="middle",
                        fill=_text_fill(color),
                        font_size=font_size,
                        pointer_events="none",
                    )
                )
                break
    return _svg("stacked-bar", width, height, ", ".join(summary), body)


def histogram(
    values: Sequence[float],
    *,
    bins: int = 10,
    lo: float | None = None,
    hi: float | None = None,
    width: float = 480,
    height: float = 140,
    x_label: str = "",
    marker: float | None = None,
) -> str:
    """A histogram of ``values`` in ``bins`` equal bins over ``[lo, hi]`` (default: the data's range, widened to
    include ``marker``); the last bin is closed. Values outside an explicit range are left out (the title counts them).

    Every bin is a ``<rect class="chart-bar">`` (zero height when empty) with a ``<title>`` and, when it fits, its count
    above it. ``marker`` (e.g. a curation threshold) draws a dashed ``<line class="chart-marker">`` when it lies in the
    range. All-equal values land in one bin of a padded range; no finite value at all gives a "no data" chart.
    """
    binned = bin_values(values, bins=bins, lo=lo, hi=hi, marker=marker)
    return histogram_binned(binned, width=width, height=height, x_label=x_label, marker=marker)


def histogram_binned(
    binned: Bins | None,
    *,
    width: float = 480,
    height: float = 140,
    x_label: str = "",
    marker: float | None = None,
) -> str:
    """:func:`histogram` of counts already binned (:class:`Bins`; None or no bin draws a "no data" chart)."""
    width, height = _size(width, 480, 120), _size(height, 140, 70)
    mark = _to_float(marker)
    name = x_label or "Histogram"
    if binned is None or not binned.counts:
        return _no_data("histogram", width, height, name)
    counts, low, high, outside = list(binned.counts), binned.lo, binned.hi, binned.outside
    bins = len(counts)

    _, count_hi, count_ticks = _ticks(0, max(max(counts), 1), extend=True, integer=True)
    _, _, x_ticks = _ticks(low, high, extend=False)
    count_labels = _tick_labels(count_ticks)
    x_tick_labels = _tick_labels(x_ticks)
    show_marker = mark is not None and low <= mark <= high

    body: list[str] = []
    top = 6 + 12 + (12 if show_marker else 0)
    left = 6 + max(map(_text_width, count_labels)) + 6
    right = width - 12
    bottom = height - 18 - (14 if x_label else 0)

    body.extend(_y_grid(count_ticks, count_labels, 0, count_hi, left, right, top, bottom))

    bar_width = (right - left) / bins
    gap = 1.0 if bar_width > 3 else 0.0
    edges = [low + (high - low) * i / bins for i in range(bins)] + [high]
    for index, count in enumerate(counts):
        x = left + index * bar_width
        y = _scale(count, 0, count_hi, bottom, top)
        closing = "]" if index == bins - 1 else ")"
        tip = f"[{_fmt(edges[index])}, {_fmt(edges[index + 1])}{closing}: {count}"
        rect = {
            "class": "chart-bar",
            "x": x + gap / 2,
            "y": y,
            "width": bar_width - gap,
            "height": bottom - y,
            "fill": _BAR,
        }
        body.append(_el("rect", rect, f"<title>{_esc(tip)}</title>"))
        if count and _text_width(str(count), 9) <= bar_width:
            body.append(
                _text(x + bar_width / 2, y - 6, str(count), cls="chart-count", anchor="middle", fill=_AXIS, font_size=9)
            )

    body.extend(_x_axis(x_ticks, x_tick_labels, low, high, left, right, top, bottom, height, x_label))

    if show_marker and mark is not None:
        x = _scale(mark, low, high, left, right)
        line = {
            "class": "chart-marker",
            "x1": x,
            "x2": x,
            "y1": top - 14,
            "y2": bottom,
            "stroke": _MARKER,
            "stroke-width": 1.5,
            "stroke-dasharray": "4 3",
        }
        body.append(_el("line", line, f"<title>{_esc(f'marker: {_fmt(mark)}')}</title>"))
        on_right = x > (left + right) / 2
        body.append(
            _text(
                x - 3 if on_right else x + 3,
                10,
                _fmt(mark),
                cls="chart-marker-label",
                anchor="end" if on_right else "start",
                fill=_MARKER,
            )
        )

    title = f"{name}: {binned.total} values"
    if outside:
        title += f" ({outside} outside {_fmt(low)}–{_fmt(high)})"
    if mark is not None:
        title += f", marker at {_fmt(mark)}"
    return _svg("histogram", width, height, title, body)


def sparkline(values: Sequence[float], *, width: float = 120, height: float = 28) -> str:
    """A tiny trend line without axes, for table cells: a ``<polyline class="chart-line">`` and a dot on the last value.

    Non-finite values leave a gap in x (positions are by index). A single value is a dot, a constant series a flat
    line in the middle, and no finite value at all a faint dashed line.
    """
    width, height = _size(width, 120, 8), _size(height, 28, 4)
    pad = min(3.0, width / 4, height / 4)
    points = [(index, value) for index, value in enumerate(map(_to_float, values)) if value is not None]
    if not points:
        line = {
            "class": "chart-empty",
            "x1": pad,
            "x2": width - pad,
            "y1": height / 2,
            "y2": height / 2,
            "stroke": _EMPTY,
            "stroke-dasharray": "3 3",
        }
        return _svg("sparkline", width, height, "No data", [_el("line", line)])

    ys = [value for _, value in points]
    y_lo, y_hi = min(ys), max(ys)
    last_index = max(len(values) - 1, 1)
    coords = [(_scale(i, 0, last_index, pad, width - pad), _scale(v, y_lo, y_hi, height - pad, pad)) for i, v in points]
    body: list[str] = []
    if len(coords) > 1:
        attrs: dict[str, _Attr] = {
            "class": "chart-line series-0",
            "points": " ".join(f"{_num(x)},{_num(y)}" for x, y in coords),
            "fill": "none",
            "stroke": PALETTE[0],
            "stroke-width": 1.5,
            "stroke-linejoin": "round",
            "stroke-linecap": "round",
        }
        body.append(_el("polyline", attrs))
    cx, cy = coords[-1] if len(coords) > 1 else (width / 2, height / 2)
    body.append(
        _el("circle", {"class": "chart-dot series-0", "cx": cx, "cy": cy, "r": min(2.0, pad), "fill": PALETTE[0]})
    )
    if len(ys) == 1:
        title = f"1 value: {_fmt(ys[0])}"
    else:
        title = f"{len(ys)} values, {_fmt(ys[0])} → {_fmt(ys[-1])} (min {_fmt(y_lo)}, max {_fmt(y_hi)})"
    return _svg("sparkline", width, height, title, body)
