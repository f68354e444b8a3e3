"""A round's guidelines for annotators: set at launch (form and CLI), kept outside the frozen config and its hash,
edited by admins while the round runs (audited), shown rendered and sanitised on the review screen."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import AuditEvent
from annotation.queue import queue_build
from generation.models import Round
from generation.services.rounds import GuidelinesRefused, round_create, round_guidelines_update
from tests.factories import CandidateFactory, ModelVersionFactory, RoundFactory, SegmentFactory, UserFactory
from tests.generation.test_views import launch_data

pytestmark = pytest.mark.django_db

RULES = "# Rules\n\nAccept only what the **web text** says.\n\n<script>window.__pwned = 1</script>"


def test_the_launch_form_stores_the_guidelines_beside_the_config(admin_client, redis_conn):
    base, corpus = ModelVersionFactory(role="base"), SegmentFactory().corpus
    response = admin_client.post(reverse("round-launch"), launch_data(corpus, base, guidelines=RULES + "\r\n"))
    assert response.status_code == 302
    rnd = Round.objects.get()
    assert rnd.guidelines == RULES
    assert "guidelines" not in rnd.config
    form = admin_client.get(reverse("round-launch")).content.decode()
    assert 'name="guidelines"' in form and "Guidelines for annotators" in form


def test_guidelines_do_not_change_the_config_hash():
    base, corpus = ModelVersionFactory(role="base"), SegmentFactory().corpus
    plain = round_create(corpus=corpus, base_model=base, config={"sample_size": 3})
    guided = round_create(corpus=corpus, base_model=base, config={"sample_size": 3}, guidelines=RULES)
    assert (plain.guidelines, guided.guidelines) == ("", RULES)
    assert plain.config == guided.config and plain.config_hash == guided.config_hash


def test_launch_round_takes_a_markdown_file(tmp_path, redis_conn):
    SegmentFactory(corpus__name="web sample")
    rules = tmp_path / "rules.md"
    rules.write_text("## Reject ads\n\nA passage that sells something is `low_quality_text`.\n", encoding="utf-8")
    call_command("launch_round", "--corpus", "web sample", "--sample-size", "2", "--guidelines", str(rules))
    assert Round.objects.get().guidelines == "## Reject ads\n\nA passage that sells something is `low_quality_text`."
    with pytest.raises(CommandError, match="--guidelines .*missing.md"):
        call_command("launch_round", "--corpus", "web sample", "--guidelines", str(tmp_path / "missing.md"))
    (tmp_path / "long.md").write_text("x" * (Round.GUIDELINES_MAX_CHARS + 1))
    with pytest.raises(CommandError, match="longer than 50,000 characters"):
        call_command("launch_round", "--corpus", "web sample", "--guidelines", str(tmp_path / "long.md"))
    assert Round.objects.count() == 1


def test_admins_edit_the_guidelines_of_a_running_round_and_the_change_is_audited(client):
    admin = UserFactory(role="admin")
    rnd = RoundFactory(state="review", guidelines="Old rules.")
    client.force_login(admin)
    page = client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert '<section id="guidelines"' in page and "<p>Old rules.</p>" in page
    response = client.post(reverse("round-guidelines", args=[rnd.number]), {"guidelines": RULES})
    assert response.status_code == 302
    assert response["Location"] == reverse("round-detail", args=[rnd.number]) + "#guidelines"
    rnd.refresh_from_db()
    assert rnd.guidelines == RULES
    event = AuditEvent.objects.get(action="round.guidelines")
    assert (event.user, event.object_type, event.object_id) == (admin, "generation.round", str(rnd.pk))
    assert (event.before, event.after) == ({"guidelines": "Old rules."}, {"guidelines": RULES})
    page = client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert "<h1>Rules</h1>" in page and "__pwned" not in page.split('<section id="guidelines"')[1].split("<form")[0]
    client.post(reverse("round-guidelines", args=[rnd.number]), {"guidelines": RULES})
    assert AuditEvent.objects.filter(action="round.guidelines").count() == 1, "no change, nothing to audit"


def test_guidelines_edits_are_refused_to_others_to_finished_rounds_and_when_too_long(client):
    rnd, closed = RoundFactory(state="review"), RoundFactory(state="closed")
    for role in ("annotator", "curator"):
        client.force_login(UserFactory(role=role))
        assert client.post(reverse("round-guidelines", args=[rnd.number]), {"guidelines": "Mine."}).status_code == 403
    client.force_login(UserFactory(role="admin"))
    page = client.post(reverse("round-guidelines", args=[closed.number]), {"guidelines": "Late."}, follow=True)
    assert f"Guidelines not saved: round {closed.number} is closed: its guidelines can no longer change." in (
        page.content.decode()
    )
    too_long = "x" * (Round.GUIDELINES_MAX_CHARS + 1)
    page = client.post(reverse("round-guidelines", args=[rnd.number]), {"guidelines": too_long}, follow=True)
    assert "Guidelines not saved" in page.content.decode()
    with pytest.raises(GuidelinesRefused, match="longer than 50,000 characters"):
        round_guidelines_update(round=rnd, text=too_long)
    rnd.refresh_from_db(), closed.refresh_from_db()
    assert (rnd.guidelines, closed.guidelines) == ("", "")
    assert client.get(reverse("round-guidelines", args=[rnd.number])).status_code == 405


def test_the_review_screen_shows_the_guidelines_rendered_and_sanitised_on_the_page_only(client):
    rnd = RoundFactory(state="review", guidelines=RULES)
    CandidateFactory(round=rnd, status="kept", score=4.0, rewritten_response="A rewrite.")
    queue_build(round=rnd)
    client.force_login(UserFactory(role="annotator"))
    page = client.get(reverse("review-queue", args=[rnd.number])).content.decode()
    panel = page.split('<aside id="guidelines"')[1].split("</aside>")[0]
    assert "<h1>Rules</h1>" in panel and "<strong>web text</strong>" in panel
    assert "<script" not in panel and "__pwned" not in panel
    assert 'data-version="' in panel and 'data-version=""' not in panel
    assert "<kbd>G</kbd> guidelines" in page, "the key is in the keyboard help"
    item = client.get(reverse("review-queue", args=[rnd.number]), headers={"HX-Request": "true"}).content.decode()
    assert item.lstrip().startswith('<div id="review-item"') and "Rules" not in item, "not re-sent with every item"
    empty = RoundFactory(state="review")
    page = client.get(reverse("review-queue", args=[empty.number])).content.decode()
    assert "No guidelines for this round yet." in page and 'data-version=""' in page
