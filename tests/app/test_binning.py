"""Histograms binned by PostgreSQL (app/binning.py) count exactly what the Python binning counts, and the round and
dashboard pages draw the same figures from those counts."""

from __future__ import annotations

import math
import random

import pytest
from django.template import Context, Template
from django.urls import reverse

from annotation.models import Candidate
from app.binning import bin_values, histogram_range, sql_bins, sql_range
from generation import selectors
from tests.factories import RoundFactory, SegmentFactory

pytestmark = pytest.mark.django_db


def _histogram(bins, x_label: str, marker: float | None = None) -> str:
    return Template("{% load charts %}{% histogram bins x_label=x_label marker=marker %}").render(
        Context({"bins": bins, "x_label": x_label, "marker": marker})
    )


def _scores(rng: random.Random, bins: int = 16, lo: float = 1, hi: float = 5) -> list[float | None]:
    """200 values over the histogram's range: random ones, the ends, every bin edge, values a hair either side of
    edges, values outside, NULLs and non-finite ones (which both binnings skip)."""
    low, high = histogram_range(lo, hi)
    edges = [low + (high - low) * i / bins for i in range(bins + 1)]
    special = [*edges, *(e + 1e-12 for e in edges), *(math.nextafter(e, -math.inf) for e in edges)]
    special += [low - 0.5, high + 0.5, math.nextafter(high, math.inf), None, None, None, math.nan, math.inf, -math.inf]
    randoms = [round(rng.uniform(low, high), rng.choice([1, 2, 3, 6, 12])) for _ in range(200 - len(special))]
    return [*special, *randoms]


def _round_with(values: list[float | None], field: str):
    rnd = RoundFactory()
    segments = SegmentFactory.create_batch(len(values), corpus=rnd.corpus)
    Candidate.objects.bulk_create(
        [Candidate(round=rnd, segment=s, instruction="Q?", **{field: v}) for s, v in zip(segments, values, strict=True)]
    )
    return rnd


@pytest.mark.parametrize(("bins", "lo", "hi"), [(16, 1, 5), (10, 0, 1), (7, 1.37, 4.91), (16, 5, 1), (3, 2, 2)])
def test_sql_bins_count_exactly_what_the_python_binning_counts(bins, lo, hi):
    values = _scores(random.Random(12), bins, lo, hi)
    rnd = _round_with(values, "keep_score")  # keep_score takes any float (score is held to [1, 5])
    python = bin_values(values, bins=bins, lo=lo, hi=hi)
    sql = sql_bins(rnd.candidates.all(), "keep_score", bins=bins, lo=lo, hi=hi)
    # 200 rows less 3 NULLs and 3 non-finite values: 194, of which 5 lie outside (0.5 and a hair below the bottom
    # edge; 1e-12, a hair and 0.5 above the top one).
    assert (python.total, python.outside) == (189, 5), "the comparison counts real values"
    assert sql == python


def test_the_figures_drawn_from_sql_counts_are_identical_to_the_python_ones():
    values = [v for v in _scores(random.Random(7)) if v is None or 1 <= v <= 5]  # the score's check constraint
    rnd = _round_with(values, "score")
    finite = [v for v in values if v is not None]
    for marker in (None, 4.5):
        python_html = _histogram(bin_values(finite, bins=16, lo=1, hi=5), "rubric", marker)
        sql_html = _histogram(selectors.round_scores(rnd), "rubric", marker)
        assert sql_html == python_html and 'data-chart="histogram"' in sql_html


def test_the_keep_score_histogram_matches_the_python_one_over_the_data_range():
    rng = random.Random(3)
    values = [rng.gauss(0.2, 0.4) for _ in range(190)] + [None] * 5 + [0.1, 0.1, -0.3, 1.25, 0.0]
    rnd = _round_with(values, "keep_score")
    keep = selectors.round_keep_scores(rnd)
    finite = [v for v in values if v is not None]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.05
    assert (keep["lo"], keep["hi"]) == (round(lo - pad, 3), round(hi + pad, 3))
    python = bin_values(finite, bins=16, lo=keep["lo"], hi=keep["hi"])
    assert keep["bins"] == python and python.total == 195 and python.outside == 0
    assert sql_range(rnd.candidates.all(), "keep_score") == (lo, hi)


def test_no_score_gives_no_histogram_and_the_pages_still_render(admin_client):
    rnd = _round_with([None, None], "score")
    assert selectors.round_scores(rnd) is None and selectors.round_keep_scores(rnd) is None
    assert admin_client.get(reverse("round-detail", args=[rnd.number])).status_code == 200
    assert admin_client.get(reverse("round-dashboard", args=[rnd.number])).status_code == 200


def test_the_round_page_and_dashboard_draw_the_sql_counts(admin_client):
    rnd = _round_with([1.0, 1.1, 2.6, 5.0, 5.0, None], "score")
    Candidate.objects.filter(round=rnd, score__isnull=False).update(keep_score=0.3)
    label = "rubric: expected score (1–5)"
    expected = _histogram(bin_values([1.0, 1.1, 2.6, 5.0, 5.0], bins=16, lo=1, hi=5), label)
    dashboard = admin_client.get(reverse("round-dashboard", args=[rnd.number])).content.decode()
    assert expected in dashboard and f'aria-label="{label}: 5 values"' in dashboard
    page = admin_client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert f'aria-label="{label}: 5 values"' in page
    assert '<tr><th scope="row">[1, 1.25)</th><td>2</td></tr>' in page and "[4.75, 5]</th><td>2</td>" in page
