"""An annotator's own page: decisions by action, time per item, agreement with others, history; and who may see it.
The numbers come from reviews written into the database with known times, so each is asserted exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation import selectors, views
from annotation.models import Review
from tests.factories import CandidateFactory, RoundFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = timezone.now() - timedelta(days=1)


@pytest.fixture
def reviews():
    """ann: in round A accept c1 (10 s), edit c2 (20 s), reject c3 (30 s), accept c4 (40 s) then undo it, skip c5
    (5 s); in round B accept d1 (50 s), reject d2 (100 s). bob: accept c1, c2, c3, reject c4, accept d1 then undo.
    cat: reject c1 and d2."""
    ann, bob, cat = (UserFactory(username=n, role="annotator") for n in ("ann", "bob", "cat"))
    a, b = RoundFactory(state="review"), RoundFactory(state="review")
    c = [CandidateFactory(round=a, status="kept", instruction=f"Question c{i}?") for i in range(1, 6)]
    d = [CandidateFactory(round=b, status="kept", instruction=f"Question d{i}?") for i in range(1, 3)]
    clock = iter(range(100))

    def review(user, cand, action, seconds=None, **kw):
        return Review.objects.create(
            candidate=cand,
            reviewer=user,
            action=action,
            seconds_spent=seconds,
            created_at=T0 + timedelta(minutes=next(clock)),
            **kw,
        )

    review(ann, c[0], "accept", 10)
    review(ann, c[1], "edit", 20, after={"instruction": "Question c2, edited by ann?", "response": "Better."})
    review(ann, c[2], "reject", 30, reason="unsafe")
    undone = review(ann, c[3], "accept", 40)
    review(ann, c[3], "undo", undoes=undone)
    review(ann, c[4], "skip", 5)
    review(ann, d[0], "accept", 50)
    review(ann, d[1], "reject", 100, reason="factual_error", reason_text="wrong year")
    for cand in c[:3]:
        review(bob, cand, "accept", 7)
    review(bob, c[3], "reject", 7, reason="unsafe")
    review(bob, d[0], "undo", undoes=review(bob, d[0], "accept", 7))
    review(cat, c[0], "reject", 9, reason="unsafe")
    review(cat, d[1], "reject", 9, reason="unsafe")
    return {"ann": ann, "bob": bob, "cat": cat, "a": a, "b": b, "c": c, "d": d}


def test_decisions_by_action_and_time_per_item(reviews):
    stats = selectors.annotator_stats(reviews["ann"])
    # Standing decisions: 10, 20, 30, 50, 100 s (the undone accept's 40 s and the skip do not count).
    # percentile_cont: median 30; p90 at rank 0.9 × 4 = 3.6 → 50 + 0.6 × (100 − 50) = 80.
    assert stats["totals"] == {
        "accept": 2,
        "edit": 1,
        "reject": 2,
        "skip": 1,
        "undo": 1,
        "decisions": 5,
        "timed": 5,
        "median_s": 30.0,
        "p90_s": 80.0,
    }
    a, b = reviews["a"].number, reviews["b"].number
    assert stats["rounds"] == [
        {"number": b, "accept": 1, "edit": 0, "reject": 1, "skip": 0, "undo": 0, "decisions": 2, "timed": 2}
        | {"median_s": 75.0, "p90_s": 95.0},
        {"number": a, "accept": 1, "edit": 1, "reject": 1, "skip": 1, "undo": 1, "decisions": 3, "timed": 3}
        | {"median_s": 20.0, "p90_s": 28.0},
    ]
    nobody = selectors.annotator_stats(UserFactory(role="annotator"))
    assert nobody["rounds"] == [] and nobody["totals"]["decisions"] == 0 and nobody["totals"]["median_s"] is None


def test_agreement_with_the_others_on_shared_pairs(reviews):
    ann, bob, cat = reviews["ann"], reviews["bob"], reviews["cat"]
    # Shared: c1 (bob accept ✓, cat reject ✗), c2 (bob accept = ann's edit ✓), c3 (bob accept ✗), d2 (cat ✓).
    # Not shared: c4 (ann's accept was undone), d1 (bob's accept was undone).
    agreement = selectors.annotator_agreement(ann, reveal_names=True)
    assert agreement == {
        "items_with_overlap": 4,
        "comparisons": 5,
        "agreement": 0.6,
        "colleagues": [
            {"name": "bob", "pk": bob.pk, "items": 3, "agreement": 2 / 3, "kappa": 0.0, "kappa_label": "slight"},
            {"name": "cat", "pk": cat.pk, "items": 2, "agreement": 0.5, "kappa": 0.0, "kappa_label": "slight"},
        ],
    }
    hidden = selectors.annotator_agreement(ann, reveal_names=False)["colleagues"]
    assert [(c["name"], c["pk"], c["items"]) for c in hidden] == [("colleague 1", None, 3), ("colleague 2", None, 2)]
    # cat: c1 ✗ with ann and ✗ with bob, d2 ✓ with ann.
    assert selectors.annotator_agreement(cat, reveal_names=True)["agreement"] == 1 / 3


def test_my_page_shows_my_numbers_and_history_newest_first(client, reviews, monkeypatch):
    client.force_login(reviews["ann"])
    html = client.get(reverse("review-me")).content.decode()
    assert "<h1>Your reviews</h1>" in html
    assert "<div><dt>Decisions</dt><dd>5</dd></div>" in html and "<div><dt>Undone</dt><dd>1</dd></div>" in html
    assert "<div><dt>Median time per item</dt><dd>30.0 s</dd></div>" in html
    assert "<div><dt>90th percentile</dt><dd>80.0 s</dd></div>" in html
    assert "decided like them in <strong>60%</strong> of 5 comparisons" in html
    assert "colleague 1" in html and ">bob<" not in html and ">cat<" not in html, "annotators see no colleague's name"
    monkeypatch.setattr(views, "HISTORY_PER_PAGE", 3)
    first = client.get(reverse("review-me")).content.decode().split('id="annotator-history"')[1]
    links = [reverse("review-item", args=[cand.pk]) for cand in (reviews["d"][1], reviews["d"][0], reviews["c"][4])]
    assert [first.index(link) for link in links] == sorted(first.index(link) for link in links), "newest first"
    assert "Page 1 of 3" in first and "wrong year" in first
    third = client.get(reverse("review-me") + "?page=3").content.decode().split('id="annotator-history"')[1]
    assert "Question c2, edited by ann?" in third and reverse("review-item", args=[reviews["c"][0].pk]) in third
    assert third.count("<tr") == 3, "the header and ann's first two reviews"
    page_2 = client.get(reverse("review-me") + "?page=2").content.decode()
    assert 'class="undone"' in page_2 and "Question c4?" in page_2, "the undone accept is marked"


def test_an_annotator_sees_only_their_own_page_and_admins_anyones(client, reviews):
    ann, bob = reviews["ann"], reviews["bob"]
    client.force_login(bob)
    assert client.get(reverse("annotator-page", args=[ann.pk])).status_code == 403
    assert client.get(reverse("annotator-page", args=[bob.pk])).status_code == 200
    client.force_login(UserFactory(role="curator"))
    assert client.get(reverse("annotator-page", args=[ann.pk])).status_code == 403
    client.force_login(UserFactory(role="admin"))
    html = client.get(reverse("annotator-page", args=[ann.pk])).content.decode()
    assert "<h1>Reviews of ann</h1>" in html and "<div><dt>Decisions</dt><dd>5</dd></div>" in html
    assert f'<a href="{reverse("annotator-page", args=[bob.pk])}">bob</a>' in html, "admins see the names"
    assert client.get(reverse("annotator-page", args=[10**12])).status_code == 404
    client.logout()
    assert client.get(reverse("review-me")).status_code == 302


def test_a_pair_read_only_for_those_who_reviewed_it(client, reviews):
    c1 = reviews["c"][0]
    client.force_login(reviews["ann"])
    html = client.get(reverse("review-item", args=[c1.pk])).content.decode()
    assert "Question c1?" in html and "Your reviews of this pair" in html
    assert "<form" not in html.split("<main")[1], "read-only"
    assert html.count('<span class="badge">') == 1 and ">bob<" not in html, "only ann's own review of it"
    client.force_login(UserFactory(role="annotator"))  # never saw it
    assert client.get(reverse("review-item", args=[c1.pk])).status_code == 404
    assert client.get(reverse("review-item", args=[10**12])).status_code == 404
    client.force_login(UserFactory(role="curator"))
    html = client.get(reverse("review-item", args=[c1.pk])).content.decode()
    assert [name in html for name in (">ann<", ">bob<", ">cat<")] == [True, True, True]


def test_the_page_reads_in_a_fixed_number_of_queries(client, reviews, django_assert_max_num_queries):
    client.force_login(reviews["ann"])
    # session, user, stats by round, totals, agreement (2), history count and page, and nothing per row
    with django_assert_max_num_queries(8):
        assert client.get(reverse("review-me")).status_code == 200
