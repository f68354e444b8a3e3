import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation.models import SeedExample
from generation.handlers import run_job
from generation.models import Job
from tests.browser.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_logs_in_with_the_keyboard_and_sends_a_job_without_a_page_load(page, redis_conn):
    UserFactory(username="ada", role="admin")
    login(page, "ada")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="System status")).to_be_visible()
    nav.get_by_role("link", name="System status").click()
    expect(page.get_by_role("heading", name="System status")).to_be_visible()
    # Rows of the checks table (the "Last errors" table below may mention the same words in its paths).
    expect(page.get_by_role("row", name=re.compile(r"^PostgreSQL"))).to_contain_text("OK")
    expect(page.get_by_role("row", name=re.compile(r"^Workers"))).to_contain_text("no worker listens")

    page.evaluate("window.__marker = 'same page'")
    page.get_by_role("button", name="Send a test job through the queue").click()
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text("queued")
    assert page.evaluate("window.__marker") == "same page", "htmx should swap the panel, not reload the page"
    assert Job.objects.filter(stage="ping", status="queued").count() == 1


def test_annotator_sees_only_their_pages_and_is_refused_the_rest(page):
    UserFactory(username="ann", role="annotator")
    login(page, "ann")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Overview")).to_be_visible()
    expect(nav.get_by_role("link", name="Seed set")).to_have_count(0)
    expect(nav.get_by_role("link", name="System status")).to_have_count(0)
    response = page.goto("/status/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_curator_searches_the_seed_set_as_they_type(page):
    UserFactory(username="cur", role="curator")
    SeedExample.objects.create(instruction="How do tides work?", response="The Moon's gravity…")
    SeedExample.objects.create(instruction="Write a haiku about rain", response="Cold rain on the roof")
    SeedExample.objects.create(
        instruction="<script>window.__pwned=1</script>", response="<img src=x onerror=window.__pwned=2>"
    )
    login(page, "cur")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Seed set").click()
    expect(page.locator("#seed-table tbody tr")).to_have_count(3)
    page.get_by_role("searchbox").fill("haiku")
    expect(page.locator("#seed-table tbody tr")).to_have_count(1)
    expect(page.locator("#seed-table")).to_contain_text("Write a haiku about rain")
    assert "q=haiku" in page.url
    page.get_by_role("searchbox").fill("script")
    expect(page.locator("#seed-table")).to_contain_text("<script>window.__pwned=1</script>")
    assert page.evaluate("window.__pwned") is None, "web text must be shown as text, never run"


def test_admin_launches_a_round_from_the_form_and_watches_it_fail_clearly(page, redis_conn):
    from generation.models import Round
    from tests.factories import ModelVersionFactory, SegmentFactory

    UserFactory(username="adm", role="admin")
    SegmentFactory(corpus__name="web sample")  # a corpus without segments is not launchable
    ModelVersionFactory(role="base", name="missing model", path="/nowhere/model")
    SeedExample.objects.create(instruction="Q?", response="A.")
    login(page, "adm")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rounds").click()
    page.get_by_role("link", name="Launch a round").click()
    page.get_by_label("Sample size").fill("4")
    page.get_by_label("top k", exact=True).check()
    page.get_by_label("Top k", exact=True).fill("2")
    page.get_by_role("button", name="Launch round").click()
    expect(page.get_by_role("heading", name="Round 1")).to_be_visible()
    expect(page.locator("ol.timeline li.tl-current")).to_have_text("train backward model")
    rnd = Round.objects.get()
    assert rnd.config["curation"]["top_k"] == 2 and rnd.config["sample_size"] == 4

    assert run_job(rnd.jobs.get().pk) == "failed"  # what a worker would do with it
    # The page polls with htmx: the failure appears without a reload.
    expect(page.get_by_role("alert").first).to_contain_text("/nowhere/model", timeout=15_000)
    expect(page.locator("ol.timeline li.tl-failed")).to_have_text("train backward model")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()


def test_annotator_reviews_with_the_keyboard_edits_undoes_and_sees_the_diff(page):
    from annotation.models import Candidate, Review
    from annotation.queue import queue_build
    from generation.pipeline.config import validate
    from tests.factories import CandidateFactory, RoundFactory, SegmentFactory

    UserFactory(username="ann", role="annotator")
    rnd = RoundFactory(state="review", config=validate({"curation": {"keep": "rubric", "threshold": 4.5}}))
    evil = SegmentFactory(
        corpus=rnd.corpus,
        text="Tides rise twice a day. <script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>",
    )
    first = CandidateFactory(
        round=rnd,
        segment=evil,
        status="kept",
        score=4.6,
        score_distribution=[0.0, 0.05, 0.1, 0.1, 0.75],
        instruction="Why are there two tides a day?",
        rewritten_response="Tides rise two times each day because of the Moon.",
    )
    second = CandidateFactory(round=rnd, status="kept", score=3.9, instruction="What is a tuple?")
    third = CandidateFactory(round=rnd, status="kept", score=3.0, instruction="Name a prime.")
    queue_build(round=rnd)  # threshold 4.5: 4.6 is the most uncertain, then 3.9, then 3.0

    login(page, "ann")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Review").click()
    page.get_by_role("link", name="Start reviewing").click()
    item = page.locator("#review-item")
    expect(item).to_contain_text("Why are there two tides a day?")
    expect(page.locator(".diff del").first).to_be_hidden()  # the diff is a toggle, off until asked for
    page.keyboard.press("d")
    expect(page.locator(".diff del").first).to_be_visible()
    expect(page.locator(".diff ins").first).to_have_text("two times each")
    expect(page.locator(".diff del").first).to_have_text("twice a")
    expect(page.locator("#t-web")).to_contain_text("<script>window.__pwned=1</script>")
    assert page.evaluate("window.__pwned") is None, "web text is shown as text and never runs"
    page.evaluate("window.__marker = 'same page'")

    page.keyboard.press("a")  # accept → the next item swaps in
    expect(item).to_contain_text("What is a tuple?")
    page.keyboard.press("e")  # edit inline
    expect(page.locator("#f-instruction")).to_be_focused()
    page.locator("#f-instruction").fill("What is a Python tuple, and when is it used?")
    page.keyboard.press("Control+Enter")
    expect(item).to_contain_text("Name a prime.")
    page.keyboard.press("r")
    page.keyboard.press("2")  # reason 2 rejects at once
    expect(item).to_contain_text("Nothing left for you")
    page.keyboard.press("u")  # undo the rejection
    expect(item).to_contain_text("Name a prime.")
    expect(item).to_contain_text("Undone")
    assert page.evaluate("window.__marker") == "same page", "no page load between items"

    first.refresh_from_db(), second.refresh_from_db(), third.refresh_from_db()
    assert first.status == Candidate.Status.ACCEPTED
    assert second.status == Candidate.Status.EDITED
    assert second.final_instruction == "What is a Python tuple, and when is it used?"
    assert third.status == Candidate.Status.KEPT and third.in_queue
    assert Review.objects.get(action="reject").reason == "not_helpful"
    assert Review.objects.filter(action="undo").count() == 1


CHARTS = """() => [...document.querySelectorAll("figure[data-chart]")].map((figure) => {
  const canvas = figure.querySelector("canvas");
  const chart = Chart.getChart(canvas);
  return { kind: figure.dataset.chart, width: canvas.width, height: canvas.height, drawn: Boolean(chart) };
})"""

# The histogram's geometry: bar i sits over bin i of the linear axis, and the marker's dashed line is drawn where
# the linear axis puts its value.
HISTOGRAM = """() => {
  const chart = Chart.getChart(document.querySelector('figure[data-chart="histogram"] canvas'));
  const slots = chart.scales.x, value = chart.scales.value;
  const spec = JSON.parse(document.querySelector('figure[data-chart="histogram"] script').textContent);
  const offsets = spec.counts.map((_, i) =>
    Math.abs(slots.getPixelForValue(i) - value.getPixelForValue((spec.edges[i] + spec.edges[i + 1]) / 2)));
  const ratio = chart.currentDevicePixelRatio;
  const x = Math.round(value.getPixelForValue(spec.marker) * ratio);
  const y = Math.round(((chart.chartArea.top + chart.chartArea.bottom) / 2) * ratio);
  const block = chart.ctx.getImageData(x - 1, y - 4, 3, 9).data;  // the line is 1.5 px wide, dashed 4 on 3 off
  const column = [...Array(27).keys()].map((i) => [...block.slice(4 * i, 4 * i + 4)]);
  return { bins: chart.data.labels.length, worst: Math.max(...offsets), markerPixels: column };
}"""


def test_the_round_page_draws_its_charts_with_chartjs_under_the_csp(page):
    from annotation.models import Candidate
    from generation.pipeline.config import validate
    from tests.factories import ModelVersionFactory, RoundFactory, SegmentFactory

    UserFactory(username="boss", role="admin")
    rnd = RoundFactory(state="closed", config=validate({"curation": {"keep": "rubric", "threshold": 4.5}}))
    scores = [1.0, 2.2, 3.9, 4.1, 4.6, 4.6, 5.0]
    segments = SegmentFactory.create_batch(len(scores), corpus=rnd.corpus)
    Candidate.objects.bulk_create(
        [Candidate(round=rnd, segment=s, instruction="Q?", score=v) for s, v in zip(segments, scores, strict=True)]
    )
    rnd.forward_model = ModelVersionFactory(
        role="forward", name="<b>fwd</b>", round=rnd, metrics={"loss_curve": [[1, 2.1], [2, 1.7], [3, 1.5]]}
    )
    rnd.metrics = {"evaluation": {"n": 4, "wins": 2, "ties": 1, "losses": 1, "win_rate": 0.5, "pairs": []}}
    rnd.save()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: (
            violations.append(f"{m.text} {m.location['url']}")
            if m.type in ("error", "warning") and not m.location["url"].endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda e: violations.append(str(e)))
    page.add_init_script(
        'document.addEventListener("securitypolicyviolation", (e) => console.error("CSP " + e.violatedDirective));'
    )
    login(page, "boss")
    page.goto(reverse("round-detail", args=[rnd.number]))
    page.wait_for_load_state("load")

    charts = page.evaluate(CHARTS)
    assert [c["kind"] for c in charts] == ["histogram", "line", "stacked-bar"]
    assert all(c["drawn"] and c["width"] > 0 and c["height"] > 0 for c in charts), charts
    geometry = page.evaluate(HISTOGRAM)
    assert geometry["bins"] == 16 and geometry["worst"] < 0.5, geometry
    marker = [213, 94, 0, 255]  # #D55E00, at 4.5 on the linear axis
    assert any(
        abs(p[0] - marker[0]) + abs(p[1] - marker[1]) + abs(p[2] - marker[2]) < 60 for p in geometry["markerPixels"]
    ), geometry
    assert not violations, violations

    # The numbers are on the page as text too: the histogram's table, one keyboard press away.
    figure = page.locator('figure[data-chart="histogram"]')
    expect(figure.get_by_role("img")).to_have_attribute(
        "aria-label", "rubric: expected score (1–5): 7 values, marker at 4.5"
    )
    figure.get_by_text("Data", exact=True).focus()
    page.keyboard.press("Enter")
    expect(figure.get_by_role("row", name="[4.5, 4.75) 2")).to_be_visible()
    expect(figure.get_by_role("row", name="[4.75, 5] 1")).to_be_visible()
