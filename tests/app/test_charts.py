"""The inline SVG charts: well-formed XML, the right number of marks, escaping, degenerate input, and geometry that
stays inside the viewBox. Pure functions; no database."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest
from django.template import Context, Engine

from app import charts

XSS = "<script>alert(1)</script>"
NUMERIC_ATTRS = ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy")


def parse(svg: str) -> ET.Element:
    """Parse ``svg`` (fails the test unless it is well-formed XML) and strip the SVG namespace from tags."""
    root = ET.fromstring(svg)
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    assert root.tag == "svg"
    assert root.get("role") == "img"
    assert root[0].tag == "title" and root[0].text
    return root


def find(root: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    """Elements named ``tag`` (anywhere below ``root``), optionally having the CSS class ``cls``."""
    return [el for el in root.iter(tag) if cls is None or cls in (el.get("class") or "").split()]


def polyline_points(element: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in element.get("points", "").split()]  # type: ignore[misc]


def texts(root: ET.Element, cls: str | None = None) -> list[str]:
    return [el.text or "" for el in find(root, "text", cls)]


def assert_inside_viewbox(root: ET.Element) -> None:
    """Every coordinate, rectangle and polyline point lies within the viewBox, and the viewBox matches the size."""
    x0, y0, width, height = map(float, root.get("viewBox", "").split())
    assert (x0, y0) == (0, 0)
    assert (float(root.get("width", "nan")), float(root.get("height", "nan"))) == (width, height)

    def inside(x: float, y: float) -> None:
        assert math.isfinite(x) and math.isfinite(y)
        assert -0.05 <= x <= width + 0.05, (x, width)
        assert -0.05 <= y <= height + 0.05, (y, height)

    for element in root.iter():
        coords = {name: float(element.get(name)) for name in NUMERIC_ATTRS if element.get(name) is not None}
        for name, value in coords.items():
            inside(value, 0) if name.startswith("x") or name == "cx" else inside(0, value)
        if element.tag == "rect":
            w, h = float(element.get("width", "nan")), float(element.get("height", "nan"))
            assert w >= 0 and h >= 0
            inside(coords["x"] + w, coords["y"] + h)
        if element.tag == "polyline":
            for x, y in polyline_points(element):
                inside(x, y)


# --- line_chart -----------------------------------------------------------------------------------------------------


def test_line_chart_draws_one_polyline_per_series_with_every_point_and_a_legend():
    train = [(step, 2.5 / (1 + step / 100)) for step in range(0, 1001, 50)]
    evals = [(0, 2.6), (500, 1.0), (1000, 0.8)]
    root = parse(charts.line_chart([("train", train), ("eval", evals)], x_label="step", y_label="loss", title="Loss"))

    lines = find(root, "polyline", "chart-line")
    assert [len(polyline_points(line)) for line in lines] == [len(train), 3]
    assert [line.get("class") for line in lines] == ["chart-line series-0", "chart-line series-1"]
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert all(line.get("fill") == "none" for line in lines)
    assert texts(root, "chart-legend-label") == ["train", "eval"]
    assert texts(root, "chart-axis-label") == ["step", "loss"]
    assert root[0].text == "Loss"
    assert texts(root, "chart-tick-x") == ["0", "250", "500", "750", "1000"]
    assert texts(root, "chart-tick-y") == ["0", "1", "2", "3"]
    assert len(find(root, "line", "chart-axis")) == 7  # a mark per x tick and the two axis lines
    assert_inside_viewbox(root)


def test_line_chart_points_are_drawn_in_x_order_and_lower_y_is_higher_up():
    root = parse(charts.line_chart([("loss", [(2, 1.0), (0, 3.0), (1, 2.0)])]))
    (line,) = find(root, "polyline")
    points = polyline_points(line)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert points[0][1] < points[-1][1]  # y = 3 (first in x order) is drawn above y = 1: smaller SVG y
    assert not find(root, "g", "chart-legend")  # a single series needs no legend


QUARTERS = ["0", "0.25", "0.5", "0.75", "1"]


@pytest.mark.parametrize(
    ("points", "x_ticks", "y_ticks"),
    [
        ([(0, 1), (1, 3)], QUARTERS, ["1", "1.5", "2", "2.5", "3"]),
        (
            [(0, 0.001), (1, 0.0015), (2, 0.0012)],
            ["0", "0.5", "1", "1.5", "2"],
            ["0.001", "0.0012", "0.0014", "0.0016"],
        ),
        ([(-50, -1e6), (50, 2e6)], ["-50", "-25", "0", "25", "50"], ["-1M", "0", "1M", "2M"]),
        ([(1e9, 5), (2e9, 7)], ["1G", "1.25G", "1.5G", "1.75G", "2G"], ["5", "5.5", "6", "6.5", "7"]),
        ([(0, 1e300), (1, -1e300)], QUARTERS, ["-1e300", "-5e299", "0", "5e299", "1e300"]),
        # a narrow range gets more digits rather than repeated labels
        (
            [(0.3, 0.7), (0.30000000001, 0.7000001)],
            ["0.26", "0.28", "0.3", "0.32", "0.34"],
            ["0.7", "0.70000002", "0.70000005", "0.70000007", "0.7000001"],
        ),
    ],
)
def test_line_chart_ticks_and_geometry_for_various_ranges(points, x_ticks, y_ticks):
    root = parse(charts.line_chart([("s", points)]))
    assert len(polyline_points(find(root, "polyline")[0])) == len(points)
    assert texts(root, "chart-tick-x") == x_ticks
    assert texts(root, "chart-tick-y") == y_ticks
    assert_inside_viewbox(root)


def test_line_chart_tick_labels_are_compact():
    root = parse(charts.line_chart([("tokens", [(0, 0), (40000, 12000)])]))
    assert texts(root, "chart-tick-y") == ["0", "5000", "10k", "15k"]  # under 1e4 a number is short enough
    assert texts(root, "chart-tick-x") == ["0", "10k", "20k", "30k", "40k"]


def test_line_chart_escapes_names_titles_and_axis_labels():
    svg = charts.line_chart([(XSS, [(0, 1), (1, 2)]), ("b", [(0, 2), (1, 1)])], x_label=XSS, y_label=XSS, title=XSS)
    assert "<script" not in svg
    root = parse(svg)
    assert root[0].text == XSS
    assert root.get("aria-label") == XSS
    assert texts(root).count(XSS) == 4  # title, legend, x label, y label
    assert find(root, "polyline")[0][0].text == XSS  # the series' tooltip


def test_line_chart_without_points_says_no_data():
    for series in ([], [("loss", [])], [("loss", [(math.nan, 1), (1, math.inf), (2, -math.inf)])]):
        root = parse(charts.line_chart(series))
        assert texts(root, "chart-empty") == ["no data"]
        assert not find(root, "polyline") and not find(root, "circle")
        assert_inside_viewbox(root)


def test_line_chart_single_point_is_a_dot():
    root = parse(charts.line_chart([("loss", [(10, 0.5)])]))
    assert not find(root, "polyline")
    (dot,) = find(root, "circle", "chart-dot")
    assert dot.get("r") == "3"
    assert dot[0].text == "loss: (10, 0.5)"
    assert_inside_viewbox(root)


def test_line_chart_constant_y_is_a_flat_line_inside_the_plot():
    root = parse(charts.line_chart([("acc", [(0, 0.5), (1, 0.5), (2, 0.5)])]))
    points = polyline_points(find(root, "polyline")[0])
    assert len({y for _, y in points}) == 1
    assert texts(root, "chart-tick-y") == ["0.45", "0.475", "0.5", "0.525", "0.55"]
    assert_inside_viewbox(root)

    root = parse(charts.line_chart([("zero", [(5, 0), (5, 0)])]))  # constant x and y, and zero
    assert_inside_viewbox(root)


def test_line_chart_skips_non_finite_and_malformed_points():
    points = [(0, 1.0), (1, math.nan), (2, math.inf), (math.nan, 2), (3, 0.5), (4,), ("x", 1), (5, 0.25)]
    root = parse(charts.line_chart([("loss", points)]))  # type: ignore[list-item]
    assert len(polyline_points(find(root, "polyline")[0])) == 3
    assert not re.search(r"\b(nan|inf)\b", ET.tostring(root, encoding="unicode"), re.IGNORECASE)
    assert_inside_viewbox(root)


def test_line_chart_legend_wraps_many_series_and_tiny_sizes_stay_consistent():
    series = [(f"series number {i}", [(0, i), (1, i + 1)]) for i in range(8)]
    root = parse(charts.line_chart(series, width=10, height=10))
    assert len(find(root, "polyline")) == 8
    assert len(texts(root, "chart-legend-label")) == 8
    assert_inside_viewbox(root)


# --- stacked_bar ----------------------------------------------------------------------------------------------------


def test_stacked_bar_parts_fill_the_width_in_proportion():
    root = parse(charts.stacked_bar([("win", 0.4), ("tie", 0.5), ("loss", 0.1)], colors=charts.WIN_TIE_LOSS_COLORS))
    bars = find(root, "rect", "chart-bar")
    assert len(bars) == 3
    widths = [float(bar.get("width", "0")) for bar in bars]
    assert widths == pytest.approx([192, 240, 48], abs=0.1)
    assert sum(widths) == pytest.approx(480, abs=0.2)
    assert [bar.get("fill") for bar in bars] == list(charts.WIN_TIE_LOSS_COLORS)
    assert [bar[0].text for bar in bars] == ["win: 0.4 (40%)", "tie: 0.5 (50%)", "loss: 0.1 (10%)"]
    assert texts(root, "chart-bar-label") == ["win 40%", "tie 50%", "10%"]  # the narrow part: the share only
    assert root[0].text == "win 40%, tie 50%, loss 10%"
    assert_inside_viewbox(root)


def test_stacked_bar_counts_narrow_and_zero_parts():
    root = parse(charts.stacked_bar([("win", 30), ("tie", 0), ("loss", 1)], width=200))
    bars = find(root, "rect", "chart-bar")
    assert [bar.get("class") for bar in bars] == ["chart-bar part-0", "chart-bar part-2"]  # zero part skipped
    assert bars[1].get("fill") == charts.PALETTE[2]  # colour follows the position, not the drawn index
    assert texts(root, "chart-bar-label") == ["win 97%"]  # 1/31 is too narrow for a label
    assert bars[1][0].text == "loss: 1 (3.2%)"
    assert_inside_viewbox(root)


def test_stacked_bar_zero_total_is_an_empty_gray_bar():
    for parts in ([], [("win", 0), ("loss", 0)], [("win", math.nan), ("loss", -3)]):
        root = parse(charts.stacked_bar(parts))
        (bar,) = find(root, "rect")
        assert bar.get("class") == "chart-bar chart-empty" and root[0].text == "No data"
        assert float(bar.get("width", "0")) == 480
        assert_inside_viewbox(root)


def test_stacked_bar_escapes_labels_and_colors():
    svg = charts.stacked_bar([(XSS, 1), ("b", 1)], colors=['red" onclick="x', "#000"])
    assert "<script" not in svg
    root = parse(svg)
    bars = find(root, "rect", "chart-bar")
    assert bars[0].get("fill") == 'red" onclick="x'
    assert bars[0].get("onclick") is None
    assert bars[0][0].text == f"{XSS}: 1 (50%)"
    assert root[0].text == f"{XSS} 50%, b 50%"


# --- histogram ------------------------------------------------------------------------------------------------------


def test_histogram_bins_counts_and_marker():
    values = [0.05, 0.12, 0.15, 0.3, 0.31, 0.55, 0.7, 0.7, 0.95, 1.0]
    root = parse(charts.histogram(values, bins=10, lo=0, hi=1, x_label="score", marker=0.6))
    bars = find(root, "rect", "chart-bar")
    assert len(bars) == 10
    counts = [int((bar[0].text or "").rsplit(": ", 1)[1]) for bar in bars]
    assert counts == [1, 2, 0, 2, 0, 1, 0, 2, 0, 2]  # 0.3 on an edge goes up; 1.0 is in the closed last bin
    assert bars[0][0].text == "[0, 0.1): 1" and bars[-1][0].text == "[0.9, 1]: 2"
    heights = [float(bar.get("height", "0")) for bar in bars]
    assert heights[1] == pytest.approx(heights[3]) and heights[1] > heights[0] > heights[2] == 0
    assert sorted(map(int, texts(root, "chart-count"))) == [1, 1, 2, 2, 2, 2]
    (marker,) = find(root, "line", "chart-marker")
    assert marker.get("x1") == marker.get("x2")
    left, right = float(bars[0].get("x", "0")), float(bars[-1].get("x", "0")) + float(bars[-1].get("width", "0"))
    assert float(marker.get("x1", "0")) == pytest.approx(left + (right - left) * 0.6, abs=1)
    assert texts(root, "chart-marker-label") == ["0.6"]
    assert texts(root, "chart-axis-label") == ["score"]
    assert_inside_viewbox(root)


def test_histogram_default_range_includes_the_marker_and_explicit_range_excludes_outliers():
    root = parse(charts.histogram([0.2, 0.3, 0.4], bins=4, marker=0.9))
    assert len(find(root, "line", "chart-marker")) == 1
    assert find(root, "rect", "chart-bar")[-1][0].text == "[0.725, 0.9]: 0"  # the range was widened to the marker

    root = parse(charts.histogram([-1, 0.5, 2], bins=2, lo=0, hi=1, marker=5))
    assert not find(root, "line", "chart-marker")  # outside an explicit range
    assert sum(int((bar[0].text or "").rsplit(": ", 1)[1]) for bar in find(root, "rect", "chart-bar")) == 1
    assert root[0].text == "Histogram: 1 values (2 outside 0–1), marker at 5"
    assert_inside_viewbox(root)


def test_histogram_empty_and_all_equal_values():
    for values in ([], [math.nan, math.inf]):
        root = parse(charts.histogram(values, marker=0.5))
        assert texts(root, "chart-empty") == ["no data"]
        assert not find(root, "rect")

    root = parse(charts.histogram([0.7] * 5, bins=10))
    bars = find(root, "rect", "chart-bar")
    assert len(bars) == 10
    assert sum(float(bar.get("height", "0")) > 0 for bar in bars) == 1
    assert texts(root, "chart-count") == ["5"]
    assert_inside_viewbox(root)

    root = parse(charts.histogram([0, 0, 0], bins=1, lo=0, hi=0))
    assert len(find(root, "rect", "chart-bar")) == 1
    assert_inside_viewbox(root)


@pytest.mark.parametrize("bins", [0, -3, 1, 200])
def test_histogram_bin_count_is_sanitised(bins):
    root = parse(charts.histogram([float(i) for i in range(100)], bins=bins))
    assert len(find(root, "rect", "chart-bar")) == max(1, bins)
    assert_inside_viewbox(root)


def test_histogram_escapes_the_axis_label():
    svg = charts.histogram([1, 2, 3], x_label=XSS)
    assert "<script" not in svg
    root = parse(svg)
    assert texts(root, "chart-axis-label") == [XSS]
    assert root[0].text == f"{XSS}: 3 values"


# --- sparkline ------------------------------------------------------------------------------------------------------


def test_sparkline_has_one_point_per_value_and_no_axes():
    values = [0.5, 0.55, 0.52, 0.6, 0.58, 0.65]
    root = parse(charts.sparkline(values))
    (line,) = find(root, "polyline")
    points = polyline_points(line)
    assert len(points) == 6
    assert points[0][0] < points[-1][0]
    assert min(y for _, y in points) == points[-1][1]  # the highest value is drawn highest
    assert not find(root, "text") and not find(root, "line", "chart-axis")
    assert root.get("width") == "120" and root.get("height") == "28"
    assert_inside_viewbox(root)


def test_sparkline_degenerate_inputs():
    root = parse(charts.sparkline([]))
    assert len(find(root, "line", "chart-empty")) == 1 and not find(root, "polyline")
    assert_inside_viewbox(root)

    root = parse(charts.sparkline([3.0]))
    assert not find(root, "polyline") and len(find(root, "circle")) == 1
    assert_inside_viewbox(root)

    root = parse(charts.sparkline([2.0, 2.0, 2.0]))
    assert len({y for _, y in polyline_points(find(root, "polyline")[0])}) == 1
    assert_inside_viewbox(root)

    root = parse(charts.sparkline([1.0, math.nan, 3.0, math.inf, 2.0], width=50, height=10))
    assert len(polyline_points(find(root, "polyline")[0])) == 3
    assert_inside_viewbox(root)


# --- template tags --------------------------------------------------------------------------------------------------


def render(source: str, **context: object) -> str:
    engine = Engine(libraries={"charts": "app.templatetags.charts"})
    return engine.from_string("{% load charts %}" + source).render(Context(context))


def test_line_chart_tag_renders_unescaped_svg_for_json_points():
    html = render(
        '{% line_chart points label="loss" x_label="step" y_label="loss" %}',
        points=[[0, 2.0], [10, 1.5], [20, "bad"], [30, 1.0]],
    )
    root = parse(html)
    assert len(polyline_points(find(root, "polyline")[0])) == 3
    assert texts(root, "chart-axis-label") == ["step", "loss"]

    root = parse(render("{% line_chart points %}", points="[[0, 1], [1, 2]]"))  # a JSON string works too
    assert len(find(root, "polyline")) == 1
    root = parse(render('{% line_chart series title="t" %}', series={"train": [[0, 1], [1, 0.5]], "eval": [[1, 0.7]]}))
    assert len(find(root, "polyline")) == 1 and len(find(root, "circle")) == 1
    assert texts(parse(render("{% line_chart missing %}")), "chart-empty") == ["no data"]  # undefined variable


def test_chart_tags_escape_template_data():
    html = render(
        "{% line_chart points label=name %}{% stacked_bar parts %}", points=[[0, 1], [1, 2]], name=XSS, parts=[[XSS, 1]]
    )
    assert "<script" not in html
    assert html.count("<svg") == 2


def test_stacked_bar_histogram_and_sparkline_tags():
    root = parse(
        render('{% stacked_bar parts colors="#009E73, #BBBBBB,#D55E00" %}', parts={"win": 2, "tie": 1, "loss": 1})
    )
    assert [bar.get("fill") for bar in find(root, "rect", "chart-bar")] == list(charts.WIN_TIE_LOSS_COLORS)

    root = parse(
        render('{% histogram scores bins="5" lo=0 hi=1 x_label="score" marker=t %}', scores=[0.1, 0.5, 0.9], t="0.7")
    )
    assert len(find(root, "rect", "chart-bar")) == 5 and len(find(root, "line", "chart-marker")) == 1

    root = parse(render("{% sparkline values width=60 %}", values=[1, 2, 3]))
    assert root.get("width") == "60" and len(polyline_points(find(root, "polyline")[0])) == 3

    assert render("{% sparkline values as chart %}[{{ chart }}]", values=[1, 2]).startswith("[<svg")
