"""In a real browser: the Content-Security-Policy is sent and nothing on any page breaks it (no inline script,
no inline handler), confirmations and select-all still work from static JS, and a `javascript:` URL from the
data is never a link."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation import queue
from generation.models import Round
from tests.browser.conftest import login
from tests.factories import CandidateFactory, RoundFactory, SeedExampleFactory, SegmentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def _pages(rnd, closed, ex, cand=None, person=None) -> list[str]:
    mine = [reverse("review-me")]
    if cand is not None:
        mine.append(reverse("review-item", args=[cand.pk]))
    if person is not None:
        mine.append(reverse("annotator-page", args=[person.pk]))
    return mine + [
        reverse("home"),
        reverse("review-rounds"),
        reverse("review-queue", args=[rnd.number]),
        reverse("seed-list"),
        reverse("seed-new"),
        reverse("seed-edit", args=[ex.pk]),
        reverse("audit-log"),
        reverse("adjudicate"),
        reverse("corpus-list"),
        reverse("corpus-detail", args=[rnd.corpus_id]),
        reverse("round-dashboard", args=[rnd.number]),
        reverse("status"),
        reverse("round-list"),
        reverse("round-launch"),
        reverse("round-detail", args=[rnd.number]),
        reverse("round-detail", args=[closed.number]),
        reverse("model-list"),
    ]


def test_every_page_sends_a_csp_and_breaks_none_of_it(page, redis_conn):
    rnd = RoundFactory(state="review", guidelines="# Rules\n\nAccept **only** what the web text says.")
    cand = CandidateFactory(round=rnd, status="kept", score=4.5, segment__url="javascript:window.__pwned=1")
    queue.queue_build(round=rnd)
    closed = RoundFactory(state="closed", corpus=rnd.corpus)
    SegmentFactory(corpus=rnd.corpus, url="https://example.org/page")
    ex = SeedExampleFactory()
    boss = UserFactory(username="boss", role="admin")
    page.add_init_script(WATCH)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, "boss")
    for url in _pages(rnd, closed, ex, cand, boss):
        response = page.goto(url)
        assert response.status == 200, url
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], url
        assert "no-store" in response.headers.get("cache-control", ""), url
        page.wait_for_load_state("load")
        assert page.evaluate("window.__csp") == [], (url, page.evaluate("window.__csp"))
    assert not console, console

    # A javascript: URL from a corpus record is text, an https one a link.
    page.goto(reverse("corpus-detail", args=[rnd.corpus_id]))
    expect(page.locator('a[href^="javascript:"]')).to_have_count(0)
    expect(page.get_by_text("javascript:window.__pwned=1")).to_have_count(1)
    expect(page.locator('a[href="https://example.org/page"]')).to_have_count(1)
    page.goto(reverse("review-queue", args=[rnd.number]))
    expect(page.locator("#review-item")).to_contain_text(cand.instruction)  # the pair whose segment has that url
    expect(page.get_by_text("source: javascript:window.__pwned=1")).to_have_count(1)
    expect(page.locator('a[href^="javascript:"]')).to_have_count(0)
    assert page.evaluate("window.__pwned") is None


def test_confirmations_and_select_all_work_without_inline_handlers(page, redis_conn):
    rnd = RoundFactory(state="review")
    for _ in range(3):
        SeedExampleFactory()
    UserFactory(username="boss", role="admin")
    login(page, "boss")
    page.goto(reverse("seed-list"))
    page.get_by_role("checkbox", name="Select all").check()
    expect(page.locator("#bulk input[name=ids]:checked")).to_have_count(3)
    page.get_by_role("checkbox", name="Select all").uncheck()
    expect(page.locator("#bulk input[name=ids]:checked")).to_have_count(0)

    page.goto(reverse("round-detail", args=[rnd.number]))
    asked: list[str] = []

    def dismiss(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Cancel round").click()
    page.wait_for_timeout(300)
    assert asked == [f"Cancel round {rnd.number}? Unfinished jobs stop; finished work is kept."]
    assert Round.objects.get(pk=rnd.pk).state == "review", "dismissed: nothing was cancelled"
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel round").click()
    page.wait_for_url(f"**{reverse('round-detail', args=[rnd.number])}")
    expect(page.get_by_text("cancelled").first).to_be_visible()
    assert Round.objects.get(pk=rnd.pk).state == "cancelled"
