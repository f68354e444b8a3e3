"""The review screen a person reads, in chromium at a laptop's and a phone's size: the instruction, the rewritten
response and the original web text are all on screen (side by side, or the long two in tabs that keep their
choice), the diff is a remembered toggle, and the round's guidelines are one key away, sanitised. Screenshots go
to the test's tmp_path and to var/screenshots/ (git-ignored)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation.queue import queue_build
from generation.pipeline.config import validate
from tests.factories import CandidateFactory, RoundFactory, SegmentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

WEB_TEXT = (
    "Home | About | Contact\n\nThe Bay of Fundy has the highest tides in the world: the water can rise by more "
    "than 16 metres between low and high tide. Twice a day about 160 billion tonnes of seawater flow in and out "
    "of the bay. The shape of the bay makes the water slosh back and forth with a period close to that of the "
    "tides, so each tide is amplified.\n\nVisitors can walk on the ocean floor at low tide at Hopewell Rocks "
    "and come back six hours later to kayak around the same rock formations. Book your tour today!"
)
REWRITE = (
    "The Bay of Fundy, between New Brunswick and Nova Scotia, has the largest tidal range on Earth, over 16 "
    "metres. Two things cause it. First, the bay is funnel-shaped, so water entering it is squeezed upwards. "
    "Second, the bay's natural period of oscillation, about 13 hours, is close to the 12.4-hour period of the "
    "tides, so each tide is reinforced by resonance.\n\nAt low tide you can walk on the sea floor around "
    "Hopewell Rocks; six hours later the same place is deep enough to kayak."
)
INSTRUCTION = "Why are the tides in the Bay of Fundy so high?"
GUIDELINES = """# Be strict about facts

Accept a pair when **every** fact in the response is in the web text.

| key | means |
| --- | --- |
| A | accept |

<script>window.__pwned = 1</script>
<img src="x" onerror="window.__pwned = 2">
[a bad link](javascript:window.__pwned=3) and
<a href="javascript:window.__pwned=4" onclick="window.__pwned=5">another</a>
"""

# The element's first line is on screen and nothing (the sticky action bar, the guidelines panel) covers it.
ON_SCREEN = """(el) => {
  const r = el.getBoundingClientRect();
  const x = r.left + Math.min(24, r.width / 2), y = r.top + Math.min(10, r.height / 2);
  const hit = document.elementFromPoint(x, y);
  return { top: r.top, left: r.left, right: r.right, height: r.height, covered: !(hit && el.contains(hit)),
           vw: window.innerWidth, vh: window.innerHeight };
}"""

CSP_WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));"""


def _review_round(guidelines: str = "", n: int = 2):
    rnd = RoundFactory(
        state="review", config=validate({"curation": {"keep": "rubric", "threshold": 4.5}}), guidelines=guidelines
    )
    first = CandidateFactory(
        round=rnd,
        segment=SegmentFactory(corpus=rnd.corpus, text=WEB_TEXT, url="https://example.org/fundy"),
        status="kept",
        score=4.6,
        score_distribution=[0.0, 0.05, 0.1, 0.1, 0.75],
        signals={"agreement": 0.41, "ifd": 0.62, "rubric": 4.6},
        instruction=INSTRUCTION,
        rewritten_response=REWRITE,
    )
    rest = [
        CandidateFactory(
            round=rnd,
            status="kept",
            score=3.9 - i / 10,
            instruction=f"What does pair {i} say?",
            rewritten_response=f"It says thing number {i}, rewritten.",
        )
        for i in range(n - 1)
    ]
    queue_build(round=rnd)
    return rnd, [first, *rest]


def _open(browser, live_server, rnd, width: int, height: int):
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.add_init_script(CSP_WATCH)
    page.goto(f"{reverse('login')}?next={reverse('review-queue', args=[rnd.number])}")
    page.get_by_label("Username").fill("reader")
    page.get_by_label("Password").fill("pw-for-tests")
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"**{reverse('review-queue', args=[rnd.number])}")
    return context, page


def _on_screen(page, selector: str) -> None:
    locator = page.locator(selector)
    expect(locator).to_be_visible()
    box = locator.evaluate(ON_SCREEN)
    assert box["top"] >= 0 and box["top"] + 20 <= box["vh"], (selector, box)
    assert box["left"] >= 0 and box["right"] <= box["vw"] + 1, (selector, box)
    assert not box["covered"], (selector, box)


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, "a real picture of the page"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)
    return path


def test_at_1366x768_the_three_texts_are_side_by_side_on_screen(browser, live_server, tmp_path):
    UserFactory(username="reader", role="annotator")
    rnd, _ = _review_round()
    context, page = _open(browser, live_server, rnd, 1366, 768)
    try:
        expect(page.locator("#t-instruction")).to_have_text(INSTRUCTION)
        expect(page.locator("#t-response")).to_contain_text("funnel-shaped")
        expect(page.locator("#t-web")).to_contain_text("160 billion tonnes")
        for selector in ("#t-instruction", "#t-response", "#t-web"):
            _on_screen(page, selector)
        boxes = [page.locator(s).bounding_box() for s in ("#h-instruction", "#h-response", "#h-web")]
        assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"], "left to right: instruction, rewrite, web text"
        assert abs(boxes[0]["y"] - boxes[2]["y"]) < 2, "… on one row"
        expect(page.get_by_role("tablist")).to_be_hidden()
        # The labels that used to hang under the texts are gone; the fields are named by the headings.
        expect(page.locator("#decision label:not(.inline)")).to_have_count(0)
        expect(page.get_by_role("textbox", name="Instruction")).to_be_hidden()
        _on_screen(page, "#btn-accept")
        _screenshot(page, tmp_path, "review-1366x768")
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


def test_at_390x844_the_long_texts_are_tabs_that_keep_their_choice(browser, live_server, tmp_path):
    UserFactory(username="reader", role="annotator")
    rnd, _ = _review_round(n=3)
    context, page = _open(browser, live_server, rnd, 390, 844)
    try:
        tabs = page.get_by_role("tablist", name="Text shown")
        expect(tabs).to_be_visible()
        _on_screen(page, "#t-instruction")
        _on_screen(page, "#t-response")
        expect(page.locator("#t-web")).to_be_hidden()
        expect(tabs.get_by_role("tab", name="Rewritten response")).to_have_attribute("aria-selected", "true")
        _screenshot(page, tmp_path, "review-390x844")

        tabs.get_by_role("tab", name="Original web text").click()
        _on_screen(page, "#t-instruction")
        _on_screen(page, "#t-web")
        expect(page.locator("#t-response")).to_be_hidden()
        expect(tabs.get_by_role("tab", name="Original web text")).to_have_attribute("aria-selected", "true")
        _screenshot(page, tmp_path, "review-390x844-web-text")

        page.keyboard.press("a")  # the next item keeps the tab …
        expect(page.locator("#t-instruction")).to_have_text("What does pair 0 say?")
        _on_screen(page, "#t-web")
        expect(page.get_by_role("tab", name="Original web text")).to_have_attribute("aria-selected", "true")
        page.reload()  # … and so does the next visit
        expect(page.locator("#t-instruction")).to_have_text("What does pair 0 say?")
        _on_screen(page, "#t-web")
        page.keyboard.press("t")  # T switches back
        _on_screen(page, "#t-response")
        page.keyboard.press("e")  # editing shows the response's field
        expect(page.locator("#f-response")).to_be_visible()
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


def test_the_diff_is_off_until_asked_for_and_then_remembered(browser, live_server, tmp_path):
    UserFactory(username="reader", role="annotator")
    rnd, _ = _review_round(n=3)
    context, page = _open(browser, live_server, rnd, 1366, 768)
    try:
        toggle = page.get_by_role("button", name="Diff")
        expect(toggle).to_have_attribute("aria-pressed", "false")
        expect(page.locator(".response-diff")).to_be_hidden()
        expect(page.locator(".response-plain")).to_be_visible()
        page.keyboard.press("d")
        expect(toggle).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".response-diff del").first).to_be_visible()
        expect(page.locator(".response-plain")).to_be_hidden()
        _on_screen(page, "#t-web")  # the web text stays readable beside the diff
        _screenshot(page, tmp_path, "review-diff-1366x768")
        page.keyboard.press("a")
        expect(page.locator("#t-instruction")).to_have_text("What does pair 0 say?")
        expect(page.locator(".response-diff")).to_be_visible()
        page.reload()
        expect(page.get_by_role("button", name="Diff")).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".response-diff")).to_be_visible()
        page.get_by_role("button", name="Diff").click()
        expect(page.locator(".response-diff")).to_be_hidden()
        expect(page.locator(".response-plain")).to_be_visible()
    finally:
        context.close()


def test_the_guidelines_open_with_g_rendered_and_sanitised(browser, live_server, tmp_path):
    UserFactory(username="reader", role="annotator")
    rnd, _ = _review_round(guidelines=GUIDELINES)
    context, page = _open(browser, live_server, rnd, 1366, 768)
    try:
        panel = page.get_by_role("complementary", name=f"Guidelines · round {rnd.number}")
        # The first visit shows them once by itself.
        expect(panel).to_be_visible()
        expect(panel.get_by_role("heading", name="Be strict about facts")).to_be_visible()
        expect(panel.locator("strong")).to_have_text("every")
        expect(panel.get_by_role("cell", name="accept")).to_be_visible()
        assert panel.locator("script, img, [onclick], [onerror]").count() == 0
        assert panel.locator("a[href^='javascript']").count() == 0
        expect(panel.get_by_role("link")).to_have_count(0)
        _screenshot(page, tmp_path, "review-guidelines-1366x768")
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        for selector in ("#t-instruction", "#t-response", "#t-web"):
            _on_screen(page, selector)
        page.keyboard.press("g")
        expect(panel).to_be_visible()
        expect(page.locator("#btn-guidelines")).to_have_attribute("aria-expanded", "true")
        page.keyboard.press("g")
        expect(panel).to_be_hidden()
        page.reload()  # seen: they stay closed until the admin changes them
        expect(page.locator("#t-instruction")).to_be_visible()
        expect(panel).to_be_hidden()
        page.get_by_role("button", name="Guidelines").click()
        expect(panel).to_be_visible()
        page.get_by_role("button", name="Close").click()
        expect(panel).to_be_hidden()
        assert page.evaluate("window.__pwned") is None, "nothing in the guidelines ran"
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


def test_the_annotators_page_after_a_few_decisions(browser, live_server, tmp_path):
    UserFactory(username="reader", role="annotator")
    rnd, [first, *_] = _review_round(n=3)
    context, page = _open(browser, live_server, rnd, 1366, 768)
    try:
        page.keyboard.press("a")
        expect(page.locator("#t-instruction")).to_have_text("What does pair 0 say?")
        page.keyboard.press("r")
        page.keyboard.press("3")
        expect(page.locator("#t-instruction")).to_have_text("What does pair 1 say?")
        page.get_by_role("link", name="reader").click()  # one's name in the top bar leads to one's page
        expect(page.get_by_role("heading", name="Your reviews")).to_be_visible()
        totals = page.locator("#annotator-totals")
        expect(totals).to_contain_text("Decisions2")
        expect(totals).to_contain_text("Accepted1")
        expect(totals).to_contain_text("Rejected1")
        history = page.locator("#annotator-history tbody tr")
        expect(history).to_have_count(2)
        expect(history.first).to_contain_text("What does pair 0 say?")
        expect(history.first).to_contain_text("factual_error")
        _screenshot(page, tmp_path, "annotator-page-1366x768")
        history.nth(1).get_by_role("link").click()
        expect(page.get_by_role("heading", name=f"Pair {first.pk}")).to_be_visible()
        expect(page.locator("#item-reviews tbody tr")).to_have_count(1)
        page.set_viewport_size({"width": 390, "height": 844})
        for heading in ("Instruction", "Rewritten response", "Original web text"):
            expect(page.get_by_role("region", name=heading)).to_be_visible()
        _screenshot(page, tmp_path, "review-item-390x844")
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()
