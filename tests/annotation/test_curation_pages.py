"""Curators' pages against real PostgreSQL: search, filters, edits with history, bulk actions, import/export,
adjudication, dashboards; and the access matrix of every page."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation import queue, services
from annotation.models import AuditEvent, SeedExample
from tests.factories import CandidateFactory, RoundFactory, SeedExampleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def curator(client):
    user = UserFactory(role="curator")
    client.force_login(user)
    return user


def test_full_text_search_ranks_words_and_falls_back_to_substrings(client, curator):
    SeedExampleFactory(instruction="How do ocean tides work?", response="The Moon pulls the water.")
    SeedExampleFactory(instruction="Write a poem", response="Tides and tide pools at dawn.")
    SeedExampleFactory(instruction="<script>x</script> escape this", response="ok")
    html = client.get(reverse("seed-list"), {"q": "tide"}).content.decode()
    assert "2 examples" in html, "stemming: 'tide' matches 'tides'"
    assert "ocean tides" in html and "Write a poem" in html
    assert "1 example" in client.get(reverse("seed-list"), {"q": "tide -poem"}).content.decode()
    html = client.get(reverse("seed-list"), {"q": "<scr"}).content.decode()
    assert "1 example" in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_search_reads_the_stored_column_kept_in_sync_and_ranks_instruction_matches_first():
    from annotation.selectors import seed_examples

    in_response = SeedExampleFactory(instruction="Write a poem", response="Glaciers carve valleys slowly.")
    in_instruction = SeedExampleFactory(instruction="Why do glaciers move?", response="Gravity and ice creep.")
    assert list(seed_examples(query="glacier")) == [in_instruction, in_response]  # weight A above B
    assert 'seedexample"."search" @@' in str(seed_examples(query="glacier").query)
    in_response.response = "Rivers carve valleys."
    in_response.save()  # PostgreSQL recomputes the stored document
    assert list(seed_examples(query="glacier")) == [in_instruction]
    assert list(seed_examples(query="rivers")) == [in_response]


def test_filters_by_source_tag_round_and_author(client, curator):
    rnd = RoundFactory(number=7)
    cand = CandidateFactory(round=rnd)
    SeedExampleFactory(source="safety", tags=["refusal"])
    SeedExampleFactory(source="web", candidate=cand, created_by=curator)
    SeedExampleFactory(source="seed")
    count = lambda **q: client.get(reverse("seed-list"), q).context["page"].paginator.count  # noqa: E731
    assert count(source="safety") == 1 and count(tag="refusal") == 1
    assert count(round=7) == 1 and count(author=curator.username) == 1 and count() == 3


def test_edits_keep_a_history_and_a_stale_edit_is_refused(client, curator):
    ex = SeedExampleFactory(instruction="Old?", response="Old.")
    url = reverse("seed-edit", args=[ex.pk])
    data = {"instruction": "New?", "response": "New.", "source": "safety", "tags": "a, b", "version": 1}
    assert client.post(url, data).status_code == 302
    ex.refresh_from_db()
    assert (ex.instruction, ex.source, ex.tags, ex.version) == ("New?", "safety", ["a", "b"], 2)
    event = AuditEvent.objects.get(action="seed.edit")
    assert event.before["instruction"] == "Old?" and event.after["instruction"] == "New?" and event.user == curator
    stale = client.post(url, {**data, "instruction": "Mine?", "version": 1})
    assert stale.status_code == 409 and "changed by someone else" in stale.content.decode()
    ex.refresh_from_db()
    assert ex.instruction == "New?"
    page = client.get(url).content.decode()
    assert "seed.edit" in page and "Old?" in page


def test_bulk_actions_promote_tag_and_deactivate(client, curator):
    a, b = SeedExampleFactory(source="web"), SeedExampleFactory(source="web")
    client.post(reverse("seed-bulk"), {"ids": [a.pk, b.pk], "action": "promote_safety"})
    client.post(reverse("seed-bulk"), {"ids": [a.pk], "action": "add_tag", "value": "checked"})
    client.post(reverse("seed-bulk"), {"ids": [b.pk], "action": "deactivate"})
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.source, a.tags, a.is_active) == ("safety", ["checked"], True)
    assert (b.source, b.is_active) == ("safety", False)
    assert AuditEvent.objects.filter(action="seed.edit").count() == 4


def test_import_is_all_or_nothing_and_names_every_bad_line(client, curator):
    good = b'{"instruction": "Q1", "output": "A1"}\n{"instruction": "Q2", "input": "ctx", "output": "A2"}\n'
    response = client.post(reverse("seed-import"), {"file": SimpleUploadedFile("ok.jsonl", good)}, follow=True)
    assert "Imported 2 examples from ok.jsonl (alpaca_jsonl)" in response.content.decode()
    assert SeedExample.objects.get(instruction="Q2\n\nctx").provenance == {
        "kind": "import",
        "file": "ok.jsonl",
        "format": "alpaca_jsonl",
        "line": 2,
    }
    bad = b'{"instruction": "Q3", "output": "A3"}\nnot json\n{"instruction": "Q4", "output": ""}\n'
    response = client.post(reverse("seed-import"), {"file": SimpleUploadedFile("bad.jsonl", bad)}, follow=True)
    html = response.content.decode()
    assert "nothing was imported" in html and "line 2" in html and "line 3" in html
    assert SeedExample.objects.count() == 2


def test_export_streams_a_file_that_imports_again(client, curator):
    SeedExampleFactory(instruction="Q?", response="A.", source="safety")
    response = client.get(reverse("seed-export"), {"format": "messages_jsonl"})
    body = b"".join(response.streaming_content).decode()
    row = json.loads(body.splitlines()[0])
    assert row["messages"][0]["content"] == "Answer in the style of an AI Assistant."
    assert row["messages"][1:] == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    assert 'filename="seed-messages_jsonl.jsonl"' in response["Content-Disposition"]
    assert client.get(reverse("seed-export"), {"format": "xml"}).status_code == 404


def test_disagreements_are_adjudicated_and_the_dashboard_measures_the_round(client, curator):
    rnd = RoundFactory(state="review")
    rnd.config["review"]["overlap"] = 2
    rnd.save()
    cand = CandidateFactory(round=rnd, status="kept", score=4.2, kept_by_curation=True, signals={"agreement": 0.1})
    other = CandidateFactory(round=rnd, status="kept", score=4.0, kept_by_curation=True, signals={"agreement": 0.3})
    queue.queue_build(round=rnd)
    a, b = UserFactory(username="ann-a", role="annotator"), UserFactory(username="ann-b", role="annotator")
    verdicts = {a: {cand.pk: "accept", other.pk: "accept"}, b: {cand.pk: "reject", other.pk: "accept"}}
    for user, theirs in verdicts.items():
        for _ in range(2):
            c = queue.queue_next(user=user, round=rnd)
            queue.queue_decide(user=user, round=rnd, candidate_id=c.pk, version=1, action=theirs[c.pk], reason="unsafe")
    html = client.get(reverse("adjudicate")).content.decode()
    assert "ann-a: accept" in html and "ann-b: reject" in html
    client.post(reverse("adjudicate"), {"candidate_id": cand.pk, "decision": "reject"})
    cand.refresh_from_db()
    assert cand.status == "rejected"
    assert "No open disagreements" in client.get(reverse("adjudicate")).content.decode()
    dash = client.get(reverse("round-dashboard", args=[rnd.number]))
    ctx = dash.context
    assert ctx["agreement"]["items_with_overlap"] == 2 and ctx["agreement"]["disagreements"] == [cand.pk]
    assert [a["reviewer__username"] for a in ctx["annotators"]] == ["ann-a", "ann-b"]
    assert ctx["curation"]["n"] == 2 and dash.content.decode().count("<canvas") == 2, "status bar and histogram"
    # the accepted pair has the higher agreement: a perfect ranking on these two; the rubric ranked them wrong
    assert ctx["curation"]["signal_auc"] == {"rubric": 0.0, "agreement": 1.0, "ifd": None}
    assert "AUC of agreement vs accept/reject</dt><dd>1.00" in dash.content.decode()


def test_promoting_through_services_is_audited():
    user = UserFactory(role="curator")
    ex = SeedExampleFactory(source="web")
    assert services.seed_bulk(user=user, ids=[ex.pk], action="promote_seed") == 1
    assert AuditEvent.objects.get().after["source"] == "seed"


# --- every URL × every role ---------------------------------------------------------------------------------

ROLES = [None, "annotator", "curator", "admin"]
RANK = {None: -1, "annotator": 0, "curator": 1, "admin": 2}


def _urls(rnd, ex) -> list[tuple[str, str, str, int, str]]:
    """(method, url, lowest role allowed, the status it answers that role and up, its redirect). The round is
    closed and the POSTs carry no data: a decision is a bad request, an undo a conflict (the round left review),
    the other writes refuse or do nothing and redirect back with a message."""
    detail = reverse("round-detail", args=[rnd.number])
    return [
        ("get", reverse("home"), "annotator", 200, ""),
        ("get", reverse("review-rounds"), "annotator", 200, ""),
        ("get", reverse("review-queue", args=[rnd.number]), "annotator", 200, ""),
        ("post", reverse("review-decide", args=[rnd.number]), "annotator", 400, ""),
        ("post", reverse("review-undo", args=[rnd.number]), "annotator", 409, ""),
        ("get", reverse("seed-list"), "curator", 200, ""),
        ("get", reverse("seed-new"), "curator", 200, ""),
        ("get", reverse("seed-edit", args=[ex.pk]), "curator", 200, ""),
        ("post", reverse("seed-bulk"), "curator", 302, reverse("seed-list")),
        ("post", reverse("seed-import"), "curator", 302, reverse("seed-list")),
        ("get", reverse("seed-export"), "curator", 200, ""),
        ("get", reverse("audit-log"), "curator", 200, ""),
        ("get", reverse("corpus-list"), "curator", 200, ""),
        ("get", reverse("round-export", args=[rnd.number]), "curator", 200, ""),
        ("get", reverse("corpus-detail", args=[rnd.corpus_id]), "curator", 200, ""),
        ("get", reverse("adjudicate"), "curator", 200, ""),
        ("get", reverse("round-dashboard", args=[rnd.number]), "curator", 200, ""),
        ("get", reverse("status"), "admin", 200, ""),
        ("post", reverse("status-ping"), "admin", 302, reverse("status")),
        ("get", reverse("round-list"), "admin", 200, ""),
        ("get", reverse("round-launch"), "admin", 200, ""),
        ("get", detail, "admin", 200, ""),
        ("post", reverse("round-close-review", args=[rnd.number]), "admin", 302, detail),
        ("post", reverse("round-cancel", args=[rnd.number]), "admin", 302, detail),
        ("post", reverse("round-stage-action", args=[rnd.number, "augment", "retry"]), "admin", 302, detail),
        ("get", reverse("model-list"), "admin", 200, ""),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_every_url_gives_each_role_exactly_its_access(client, role, redis_conn):
    rnd, ex = RoundFactory(state="closed"), SeedExampleFactory()
    if role:
        client.force_login(UserFactory(role=role))
    for method, url, lowest, status, location in _urls(rnd, ex):
        response = getattr(client, method)(url)
        if role is None:
            assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={url}"), method
        elif RANK[role] < RANK[lowest]:
            assert response.status_code == 403, (role, method, url, response.status_code)
        else:
            got = (response.status_code, response.get("Location", ""))
            assert got == (status, location), (role, method, url)
