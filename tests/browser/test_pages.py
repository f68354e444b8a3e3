import re

import pytest
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
    expect(page.locator(".diff del").first).to_be_visible()
    expect(page.locator(".diff ins").first).to_have_text("two times each")
    expect(page.locator(".diff del").first).to_have_text("twice a")
    expect(page.locator(".original")).to_contain_text("<script>window.__pwned=1</script>")
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
