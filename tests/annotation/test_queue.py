"""The review queue against real PostgreSQL: order, leases under concurrency, decisions, undo, stale edits."""

from __future__ import annotations

import html
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation import queue, services
from annotation.models import Candidate, Lease, Review
from tests.factories import CandidateFactory, RoundFactory, UserFactory


def test_the_plan_puts_uncertain_pairs_first_and_samples_dropped_ones_for_audit():
    scored = [(1, 4.9, True), (2, 4.55, True), (3, 4.0, False), *[(i, 2.0, False) for i in range(10, 110)]]
    plan = queue.plan_queue(scored, threshold=4.5, audit_fraction=0.2, seed=0)
    kept = [e for e in plan if not e.is_audit]
    assert [e.candidate_id for e in kept] == [2, 1], "closest to the threshold first"
    audit = [e for e in plan if e.is_audit]
    # About a fifth of the 101 dropped pairs: the ones whose hash with seed 0 falls under 0.2.
    audited = sorted(e.candidate_id for e in audit)
    assert audited == [15, 18, 20, 25, 36, 44, 46, 57, 61, 63, 69, 74, 76, 85, 87, 99, 101, 107]
    assert plan == queue.plan_queue(scored, threshold=4.5, audit_fraction=0.2, seed=0), "reproducible"
    assert not queue.plan_queue(scored, threshold=4.5, audit_fraction=0.0, seed=0)[2:]
    top_k = queue.plan_queue([(1, 3.9, True), (2, 3.7, True), (3, 3.6, False)], threshold=None, audit_fraction=0)
    assert [e.candidate_id for e in top_k] == [2, 1], "for top-k the cut is the lowest kept score"


def make_queue(n: int = 4, **review) -> tuple:
    rnd = RoundFactory(state="review")
    rnd.config["review"].update(review)
    rnd.save()
    cands = [CandidateFactory(round=rnd, status="kept", score=1.0 + (i % 40) / 10) for i in range(n)]
    queue.queue_build(round=rnd)
    return rnd, cands


@pytest.mark.django_db
def test_decide_undo_and_skip():
    rnd, cands = make_queue(3)
    ann = UserFactory(role="annotator")
    first = queue.queue_next(user=ann, round=rnd)
    assert first == cands[0], "scores 1.0, 1.1, 1.2 against the cut 0.1: the nearest first"
    assert queue.queue_next(user=ann, round=rnd) == first, "the held item comes back until decided"
    Lease.objects.filter(user=ann).update(created_at=timezone.now() - timedelta(seconds=12))
    queue.queue_decide(user=ann, round=rnd, candidate_id=first.pk, version=first.version, action="accept")
    first.refresh_from_db()
    assert (first.status, first.in_queue, first.reviews_done) == ("accepted", False, 1)
    # A bound: the wall-clock seconds since the hold began, which the test set 12 s back.
    assert 11 <= Review.objects.get(action="accept").seconds_spent < 60, "time on the item is recorded"
    second = queue.queue_next(user=ann, round=rnd)
    assert second == cands[1]
    queue.queue_decide(user=ann, round=rnd, candidate_id=second.pk, version=second.version, action="skip")
    third = queue.queue_next(user=ann, round=rnd)
    assert third == cands[2], "a skipped item waits until the rest is done"
    undone = queue.queue_undo(user=ann, round=rnd)
    assert undone == first and (undone.status, undone.in_queue, undone.reviews_done) == ("kept", True, 0)
    assert undone.final_instruction == "" and Review.objects.get(action="undo").undoes.action == "accept"
    assert Lease.objects.filter(user=ann, candidate=first).exists(), "the undone item is held by them again"
    assert queue.queue_next(user=ann, round=rnd) == third, "… after the one they held before (oldest hold first)"


@pytest.mark.django_db
def test_an_edit_on_a_stale_version_is_refused_with_409(client):
    rnd, [cand] = make_queue(1)
    ann, cur = UserFactory(role="annotator"), UserFactory(role="curator")
    client.force_login(ann)
    client.get(reverse("review-queue", args=[rnd.number]))
    seen = cand.version
    services.candidate_review(candidate_id=cand.pk, reviewer=cur, action="reject", version=seen, reason="unsafe")
    response = client.post(
        reverse("review-decide", args=[rnd.number]),
        {"candidate_id": cand.pk, "version": seen, "action": "edit", "instruction": "Mine?", "response": "Mine."},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()
    cand.refresh_from_db()
    assert cand.status == "rejected" and cand.final_instruction == "", "never silently overwritten"


@pytest.mark.django_db(transaction=True)
def test_two_annotators_racing_never_hold_the_same_item():
    rnd, cands = make_queue(30)
    users = [UserFactory(role="annotator") for _ in range(6)]
    taken: dict[int, list[int]] = {u.pk: [] for u in users}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def work(user) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                item = queue.queue_next(user=user, round=rnd)
                if item is None:
                    break
                taken[user.pk].append(item.pk)
                queue.queue_decide(user=user, round=rnd, candidate_id=item.pk, version=item.version, action="accept")
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    all_taken = [c for ids in taken.values() for c in ids]
    assert len(all_taken) == 30 and len(set(all_taken)) == 30, "every item handed out exactly once"
    assert Candidate.objects.filter(round=rnd, status="accepted").count() == 30
    assert Review.objects.filter(action="accept").count() == 30


@pytest.mark.django_db
def test_with_overlap_each_item_goes_to_two_different_annotators():
    rnd, [cand] = make_queue(1, overlap=2)
    a, b, c = (UserFactory(role="annotator") for _ in range(3))
    assert queue.queue_next(user=a, round=rnd) == cand
    assert queue.queue_next(user=b, round=rnd) == cand
    assert queue.queue_next(user=c, round=rnd) is None, "two people hold it already"
    queue.queue_decide(user=a, round=rnd, candidate_id=cand.pk, version=cand.version, action="accept")
    assert queue.queue_next(user=a, round=rnd) is None, "never twice to the same person"
    queue.queue_decide(user=b, round=rnd, candidate_id=cand.pk, version=cand.version, action="reject", reason="unsafe")
    cand.refresh_from_db()
    assert (cand.reviews_done, cand.in_queue) == (2, False)


# What a decision costs: every statement of the htmx round trip (decide + the next item in the answer) as production
# sends them, BEGIN and COMMIT included (the test runs in autocommit, transaction=True, so no test savepoints).
# 11: the session, the user with its groups (one query: app.roles.RoleBackend), the round; BEGIN; the pair locked
# (with the "decided already" and "holds another" checks and the header counts), its lease released, the pair
# updated with its queue counters, the Review; the next pair claimed and leased after a fresh check; COMMIT.
DECIDE_AND_NEXT_QUERIES = 11


def _decision_form(page: str) -> dict[str, str]:
    """What the browser sends for the form #decision (review.js clicks its buttons; htmx posts every field)."""
    start = page.index('<form id="decision"')
    form = page[start : page.index("</form>", start)]
    fields = dict(re.findall(r'<input type="hidden" name="([\w-]+)" value="([^"]*)">', form))
    textareas = re.findall(r'<textarea [^>]*name="(instruction|response)"[^>]*>(.*?)</textarea>', form, re.S)
    return fields | {name: html.unescape(text) for name, text in textareas} | {"reason": "", "reason_text": ""}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "press",
    [{"action": "accept"}, {"action": "reject", "reason": "unsafe"}, {"action": "skip"}],
    ids=["accept", "reject", "skip"],
)
def test_decide_and_load_next_stays_within_its_query_budget(press, django_assert_max_num_queries):
    """The htmx POST that decides and answers with the next pair, from a signed-in annotator's browser (CSRF
    checks on), on a round in review with pairs queued: at most 11 statements, and the answer is the partial."""
    rnd, _ = make_queue(3)
    UserFactory(username="ann", role="annotator", password="a-long-password-1")
    browser = Client(enforce_csrf_checks=True)
    login_page = browser.get(reverse("login")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    signed_in = browser.post(
        reverse("login"), {"csrfmiddlewaretoken": token, "username": "ann", "password": "a-long-password-1"}
    )
    assert signed_in.status_code == 302 and browser.session["_auth_user_backend"] == "app.roles.RoleBackend"
    fields = _decision_form(browser.get(reverse("review-queue", args=[rnd.number])).content.decode())
    held = Lease.objects.get()
    assert fields["candidate_id"] == str(held.candidate_id)
    with django_assert_max_num_queries(DECIDE_AND_NEXT_QUERIES):
        response = browser.post(
            reverse("review-decide", args=[rnd.number]),
            fields | press,
            headers={"HX-Request": "true", "HX-Target": "review-item", "HX-Trigger": "decision"},
        )
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="review-item"'), "the partial alone"
    decided = Candidate.objects.get(pk=held.candidate_id)
    expected = {"accept": ("accepted", 1, False), "reject": ("rejected", 1, False), "skip": ("kept", 0, True)}
    assert (decided.status, decided.reviews_done, decided.in_queue) == expected[press["action"]]
    next_lease = Lease.objects.get()
    assert next_lease.candidate_id != held.candidate_id, "the next pair is leased"
    assert _decision_form(body)["candidate_id"] == str(next_lease.candidate_id), "… and comes in the answer"


@pytest.mark.django_db(transaction=True)
def test_the_queue_page_and_a_held_item_stay_within_the_budget_too(client, django_assert_max_num_queries):
    """Loading the queue (a new claim) and coming back to it (the held item, its hold renewed)."""
    rnd, _ = make_queue(2)
    client.force_login(UserFactory(role="annotator"))
    for _ in range(2):
        with django_assert_max_num_queries(DECIDE_AND_NEXT_QUERIES):
            assert (
                client.get(reverse("review-queue", args=[rnd.number]), headers={"HX-Request": "true"}).status_code
                == 200
            )
    assert Lease.objects.count() == 1


def test_gated_pairs_are_audited_at_least_once_per_reason():
    kept = [(1, 4.9, True), (2, 4.55, True), (3, 4.7, True)]
    dropped = [(i, 2.0, False) for i in range(10, 60)]
    gates = {10: "prompt_echo", 11: "repetitive_response", 12: "cut_response", 13: "cut_response"}
    plan = queue.plan_queue(kept + dropped, threshold=4.5, audit_fraction=0.0, seed=0, gates=gates)
    assert [e.candidate_id for e in plan if not e.is_audit] == [2, 3, 1], "kept pairs: closest to the cut first"
    # With seed 0 no gated pair's hash falls under GATE_AUDIT_FRACTION (10: 0.42, 11: 0.82, 12: 0.63,
    # 13: 0.85), so each reason gets exactly its lowest-hash pair; no ungated dropped pair is audited.
    assert {e.candidate_id for e in plan if e.is_audit} == {10, 11, 12}
    assert plan == queue.plan_queue(kept + dropped, threshold=4.5, audit_fraction=0.0, seed=0, gates=gates)


def test_gated_pairs_are_audited_at_the_gate_rate():
    dropped = [(i, 1.0, False) for i in range(100, 500)]
    gates = {cid: "repetitive_response" for cid, _, _ in dropped[:200]}
    plan = queue.plan_queue([(1, 4.0, True), *dropped], threshold=None, audit_fraction=0.0, seed=3, gates=gates)
    audited = {e.candidate_id for e in plan if e.is_audit}
    # Each gated pair is audited when its hash falls under GATE_AUDIT_FRACTION (the same sampling as the audit).
    expected = {cid for cid in gates if queue._unit(cid, 3) < queue.GATE_AUDIT_FRACTION}
    assert audited == expected
    assert len(expected) == 39  # of the 200 gated pairs, about GATE_AUDIT_FRACTION of them
    assert [e.candidate_id for e in plan if not e.is_audit] == [1]


def test_gates_do_not_change_a_plan_without_gated_pairs():
    scored = [(1, 4.9, True), (2, 4.55, True), *[(i, 2.0, False) for i in range(10, 110)]]
    plain = queue.plan_queue(scored, threshold=4.5, audit_fraction=0.2, seed=0)
    assert queue.plan_queue(scored, threshold=4.5, audit_fraction=0.2, seed=0, gates={}) == plain
    assert queue.plan_queue(scored, threshold=4.5, audit_fraction=0.2, seed=0, gates={1: "cut_response"}) == plain, (
        "a gate on a kept pair changes nothing"
    )


# --- rights: a decision only on a pair that is this annotator's now --------------------------------------------


def _refused(user, rnd, cand, message: str = queue.NOT_YOURS, **kw) -> None:
    with pytest.raises(services.NotYours) as info:
        queue.queue_decide(user=user, round=rnd, candidate_id=cand.pk, version=cand.version, action="accept", **kw)
    assert str(info.value) == message


@pytest.mark.django_db
def test_a_pair_leased_to_someone_else_cannot_be_decided():
    rnd, [cand] = make_queue(1)
    owner, intruder = UserFactory(role="annotator"), UserFactory(role="annotator")
    assert queue.queue_next(user=owner, round=rnd) == cand
    _refused(intruder, rnd, cand)
    cand.refresh_from_db()
    assert (cand.status, cand.version, cand.in_queue) == ("kept", 1, True)
    assert not Review.objects.exists()


@pytest.mark.django_db
def test_a_pair_of_another_round_or_out_of_the_queue_cannot_be_decided():
    rnd, [mine] = make_queue(1)
    other_rnd, [theirs] = make_queue(1)
    ann = UserFactory(role="annotator")
    queue.queue_next(user=ann, round=other_rnd)  # held in its own round …
    _refused(ann, rnd, theirs)  # … but named under another round's URL
    dropped = CandidateFactory(round=rnd, status="dropped", score=1.0)  # never queued
    Lease.objects.create(candidate=dropped, user=ann, expires_at=timezone.now() + timedelta(minutes=5))
    _refused(ann, rnd, dropped)
    assert not Review.objects.exists() and mine.status == "kept"


@pytest.mark.django_db
def test_an_expired_hold_a_decided_pair_and_a_closed_round_refuse_the_decision():
    rnd, [a, b] = make_queue(2, overlap=2)
    ann = UserFactory(role="annotator")
    first = queue.queue_next(user=ann, round=rnd)
    Lease.objects.filter(user=ann).update(expires_at=timezone.now() - timedelta(seconds=1))
    _refused(ann, rnd, first)
    first = queue.queue_next(user=ann, round=rnd)  # claimed again: now it can be decided
    queue.queue_decide(user=ann, round=rnd, candidate_id=first.pk, version=first.version, action="accept")
    first.refresh_from_db()
    assert first.in_queue, "overlap 2: it waits for a second annotator"
    Lease.objects.create(candidate=first, user=ann, expires_at=timezone.now() + timedelta(minutes=5))
    _refused(ann, rnd, first)  # a second decision by the same person would overwrite their first
    second = queue.queue_next(user=ann, round=rnd)
    rnd.state = "train_forward"
    rnd.save()
    _refused(ann, rnd, second, message=f"round {rnd.number} is not in review")
    with pytest.raises(services.NotYours) as info:
        queue.queue_undo(user=ann, round=rnd)
    assert str(info.value) == f"round {rnd.number} is not in review"
    assert Review.objects.filter(action="accept").count() == 1


@pytest.mark.django_db
def test_undo_takes_back_only_ones_own_decision():
    rnd, [cand, _] = make_queue(2)
    a, b = UserFactory(role="annotator"), UserFactory(role="annotator")
    item = queue.queue_next(user=a, round=rnd)
    queue.queue_decide(user=a, round=rnd, candidate_id=item.pk, version=item.version, action="accept")
    assert queue.queue_undo(user=b, round=rnd) is None, "b has nothing to undo"
    item.refresh_from_db()
    assert item.status == "accepted"


@pytest.mark.django_db
def test_a_refused_decision_shows_nothing_of_the_pair_it_protects(client):
    rnd, [victim, own] = make_queue(2)
    Candidate.objects.filter(pk=victim.pk).update(instruction="SECRET-VICTIM-INSTRUCTION")
    owner, intruder = UserFactory(role="annotator"), UserFactory(role="annotator")
    assert queue.queue_next(user=owner, round=rnd).pk == victim.pk, "the lowest score is nearest the cut"
    held = Lease.objects.get(user=owner).candidate
    Candidate.objects.filter(pk=held.pk).update(instruction="SECRET-HELD-INSTRUCTION")
    held.refresh_from_db()
    client.force_login(intruder)
    client.get(reverse("review-queue", args=[rnd.number]))  # the intruder holds the other pair
    for version in (1, 2, 99):
        response = client.post(
            reverse("review-decide", args=[rnd.number]),
            {"candidate_id": held.pk, "version": version, "action": "accept"},
            headers={"HX-Request": "true"},
        )
        body = response.content.decode()
        assert response.status_code == 409 and "not yours to decide" in body
        assert held.instruction not in body, "the page shows the intruder's own item, not the one they named"
    held.refresh_from_db()
    assert held.status == "kept" and held.version == 1
    unknown = client.post(
        reverse("review-decide", args=[rnd.number]),
        {"candidate_id": 2**62, "version": 1, "action": "accept"},
        headers={"HX-Request": "true"},
    )
    assert unknown.status_code == 409


@pytest.mark.django_db
def test_only_an_open_disagreement_can_be_adjudicated(client):
    rnd, [cand] = make_queue(1)
    ann = UserFactory(role="annotator")
    item = queue.queue_next(user=ann, round=rnd)
    queue.queue_decide(user=ann, round=rnd, candidate_id=item.pk, version=item.version, action="accept")
    client.force_login(UserFactory(role="curator"))
    response = client.post(reverse("adjudicate"), {"candidate_id": cand.pk, "decision": "reject"}, follow=True)
    assert "no open disagreement" in response.content.decode()
    cand.refresh_from_db()
    assert cand.status == "accepted", "an annotator's settled decision is not overturned through adjudication"
    for bad in ({"candidate_id": "abc", "decision": "reject"}, {"candidate_id": cand.pk, "decision": "maybe"}, {}):
        assert client.post(reverse("adjudicate"), bad).status_code == 400
    assert client.post(reverse("adjudicate"), {"candidate_id": 2**40, "decision": "accept"}).status_code == 404
