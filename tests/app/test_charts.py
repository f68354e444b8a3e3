"""The chart tags: a canvas for static/backforth/charts.js, the data it draws as json_script, and the same numbers as
a table a person (or a test) can read; malformed input is skipped and text is escaped everywhere. The vendored
Chart.js is the file its README records. No database."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template import Context, Template
from django.template.loader import render_to_string

from app.binning import Bins, bin_values

XSS = "</script><script>alert(1)</script>"
ESCAPED = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
WIN_TIE_LOSS = "#009E73,#BBBBBB,#D55E00"


def render(source: str, **context: object) -> str:
    return Template("{% load charts %}" + source).render(Context(context))


def payload(html: str) -> dict:
    """The chart's json_script data (strict JSON: NaN or Infinity would fail)."""
    blocks = re.findall(r'<script type="application/json">(.*?)</script>', html, re.S)
    assert len(blocks) == 1, html
    return json.loads(blocks[0], parse_constant=lambda name: pytest.fail(f"{name} in the chart's JSON"))


def table(html: str) -> list[list[str]]:
    """The data table's rows, header row first, as the cells' text."""
    body = re.search(r"<table[^>]*>(.*?)</table>", html, re.S)
    assert body, html
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def label(html: str) -> str:
    found = re.search(r'<canvas role="img" aria-label="([^"]*)">', html)
    assert found, html
    return found.group(1)


def caption(html: str) -> str:
    found = re.search(r"<caption>(.*?)</caption>", html, re.S)
    assert found, html
    return found.group(1)


# --- histogram ------------------------------------------------------------------------------------------------------


def test_histogram_gives_the_counts_per_bin_with_the_marker():
    bins = Bins((1, 0, 3, 2), lo=1.0, hi=5.0, outside=2)
    html = render('{% histogram bins x_label="score" marker=4.5 %}', bins=bins)
    assert 'data-chart="histogram"' in html and "<canvas" in html
    assert table(html) == [
        ["score", "count"],
        ["[1, 2)", "1"],
        ["[2, 3)", "0"],
        ["[3, 4)", "3"],
        ["[4, 5]", "2"],  # the last bin is closed
    ]
    assert label(html) == caption(html) == "score: 6 values (2 outside 1–5), marker at 4.5"
    assert payload(html) == {
        "kind": "histogram",
        "edges": [1.0, 2.0, 3.0, 4.0, 5.0],
        "counts": [1, 0, 3, 2],
        "marker": 4.5,
        "xLabel": "score",
        "yLabel": "count",
    }


def test_histogram_of_python_bins_labels_uneven_edges_readably():
    bins = bin_values([0.1, 0.2, 0.2, 0.9], bins=3, lo=0, hi=1)
    html = render("{% histogram bins %}", bins=bins)
    assert table(html)[1:] == [["[0, 0.333333)", "3"], ["[0.333333, 0.666667)", "0"], ["[0.666667, 1]", "1"]]
    assert label(html) == "Histogram: 4 values"
    assert payload(html)["marker"] is None and payload(html)["counts"] == [3, 0, 1]


@pytest.mark.parametrize("marker", ["", None, "n/a", math.nan])
def test_histogram_without_a_usable_marker_has_none(marker):
    html = render("{% histogram bins marker=marker %}", bins=Bins((1,), 0.0, 1.0), marker=marker)
    assert payload(html)["marker"] is None and "marker" not in label(html)


@pytest.mark.parametrize("bins", [None, ""])  # "" is what a missing template variable gives
def test_histogram_without_bins_says_no_data_and_draws_nothing(bins):
    html = render('{% histogram bins x_label="rubric" %}', bins=bins)
    assert "rubric: no data" in html
    assert "<canvas" not in html and "<script" not in html and "data-chart=" not in html


def test_histogram_refuses_raw_values():
    with pytest.raises(TypeError, match="Bins"):
        render("{% histogram values %}", values=[1, 2, 3])


# --- line_chart -----------------------------------------------------------------------------------------------------


def test_line_chart_lists_its_points_in_x_order_and_skips_malformed_ones():
    points = [[3, 1.5], [1, 2.1], [2, 1.7], [4, math.nan], ["x", 1], [5], None, [6, math.inf], "[7, 1]"]
    html = render('{% line_chart points label="training loss" x_label="step" y_label="loss" %}', points=points)
    assert 'data-chart="line"' in html
    assert table(html) == [["step", "loss"], ["1", "2.1"], ["2", "1.7"], ["3", "1.5"]]
    assert label(html) == "training loss: 3 points, step 1 to 3, loss 2.1 → 1.5 (min 1.5, max 2.1)"
    assert payload(html) == {
        "kind": "line",
        "series": [{"name": "training loss", "points": [[1.0, 2.1], [2.0, 1.7], [3.0, 1.5]]}],
        "xLabel": "step",
        "yLabel": "loss",
        "title": "",
    }


def test_line_chart_of_one_point_and_of_none():
    one = render('{% line_chart trend label="win rate %" x_label="round" %}', trend=[[1, 62.5]])
    assert table(one)[1:] == [["1", "62.5"]] and label(one).startswith("win rate %: 1 point, round 1 to 1")
    for empty in ([], None, "not a list", [[math.nan, 1]]):
        html = render('{% line_chart points label="loss" %}', points=empty)
        assert "loss: no data" in html and "<canvas" not in html


# --- stacked_bar ----------------------------------------------------------------------------------------------------


def test_stacked_bar_gives_counts_and_shares_and_keeps_colours_by_position():
    parts = [["win", 2], ["tie", 0], ["loss", 1], ["bogus", -4], ["nan", math.nan]]
    html = render('{% stacked_bar parts label="verdict" colors=colors %}', parts=parts, colors=WIN_TIE_LOSS)
    assert table(html) == [
        ["verdict", "count", "share"],
        ["win", "2", "67%"],
        ["tie", "0", "0%"],
        ["loss", "1", "33%"],
        ["bogus", "0", "0%"],
        ["nan", "0", "0%"],
    ]
    assert label(html) == "win 67%, tie 0%, loss 33%, bogus 0%, nan 0%"
    data = payload(html)
    assert data["colors"] == ["#009E73", "#BBBBBB", "#D55E00"]
    assert [p["name"] for p in data["parts"]] == ["win", "tie", "loss", "bogus", "nan"], "zero parts keep their place"
    assert data["parts"][0] == {"name": "win", "value": 2.0, "share": "67%"}


def test_stacked_bar_takes_a_mapping_and_fractions():
    html = render("{% stacked_bar parts %}", parts={"accepted": 0.025, "rejected": 0.975})
    assert table(html)[0] == ["part", "count", "share"]
    assert label(html) == "accepted 2.5%, rejected 98%" and payload(html)["colors"] == []


@pytest.mark.parametrize("parts", [[], [["win", 0], ["loss", 0]], None, "win"])
def test_stacked_bar_with_nothing_to_show_says_so(parts):
    html = render("{% stacked_bar parts %}", parts=parts)
    assert "No data" in html and "<canvas" not in html


# --- sparkline ------------------------------------------------------------------------------------------------------


def test_sparkline_sums_up_the_trend_and_lists_the_values():
    curve = [[10, 2.0], [20, 1.25], [30, 1.5]]
    html = render('{% sparkline curve label="training loss" x_label="step" %}', curve=curve)
    assert 'data-chart="sparkline"' in html
    assert label(html) == "training loss: 3 values, 2 → 1.5 (min 1.25, max 2)"
    assert table(html) == [["step", "training loss"], ["10", "2"], ["20", "1.25"], ["30", "1.5"]]
    assert payload(html) == {"kind": "sparkline", "points": [[10.0, 2.0], [20.0, 1.25], [30.0, 1.5]]}
    assert label(render("{% sparkline curve %}", curve=[[1, 0.5]])) == "1 value, 0.5"
    assert "No data" in render("{% sparkline curve %}", curve=[])


# --- escaping -------------------------------------------------------------------------------------------------------


def _scripts(html: str) -> list[str]:
    return re.findall(r"<script[^>]*>", html)


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ("{% line_chart points label=xss x_label=xss y_label=xss title=xss %}", {"points": [[0, 1], [1, 2]]}),
        ("{% stacked_bar parts label=xss colors=xss %}", {"parts": [[XSS, 1], ["b", 1]]}),
        ("{% histogram bins x_label=xss %}", {"bins": Bins((1, 2), 0.0, 1.0)}),
    ],
)
def test_text_is_escaped_in_the_table_the_label_and_the_json(source, context):
    html = render(source, xss=XSS, **context)
    assert _scripts(html) == ['<script type="application/json">'], "only the data block, nothing injected"
    assert "<script>alert" not in html and ESCAPED in html
    assert XSS in json.dumps(payload(html)), "the JSON holds the text itself, for Chart.js to draw as text"
    assert "\\u003C/script\\u003E" in html, "json_script escapes < and > inside the data block"


def test_a_sparkline_shows_its_labels_only_in_the_table_and_the_summary():
    html = render("{% sparkline points label=xss x_label=xss %}", xss=XSS, points=[[0, 1], [1, 2]])
    assert _scripts(html) == ['<script type="application/json">'] and "<script>alert" not in html
    assert table(html)[0] == [ESCAPED, ESCAPED] and label(html).startswith(ESCAPED)
    assert "script" not in json.dumps(payload(html))


# --- the page side --------------------------------------------------------------------------------------------------

VENDOR = Path(settings.BASE_DIR) / "static" / "vendor" / "chartjs" / "4.6.1"


def test_the_scripts_partial_loads_chartjs_before_the_drawing_code_and_both_exist():
    html = render_to_string("charts/_scripts.html")
    sources = re.findall(r'<script src="/static/([^"]+)" defer></script>', html)
    assert sources == ["vendor/chartjs/4.6.1/chart.umd.js", "backforth/charts.js"]
    assert all(finders.find(path) for path in sources)


def test_the_vendored_chartjs_is_the_file_its_readme_records():
    script = (VENDOR / "chart.umd.js").read_bytes()
    readme = (VENDOR / "README.md").read_text()
    assert f"`chart.umd.js` here | {len(script):,} bytes, sha256 `{hashlib.sha256(script).hexdigest()}`" in readme
    assert script.startswith(b"/*!\n * Chart.js v4.6.1\n") and b"Released under the MIT License" in script
    assert b"sourceMappingURL" not in script, "collectstatic's manifest storage would look for the missing map"
    assert (VENDOR / "LICENSE.md").read_text().startswith("The MIT License (MIT)")
