"""The round's state machine: the pure transition table, and its one writer (round_transition)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from generation.handlers import REGISTRY, run_job
from generation.models import Job, Round
from generation.pipeline import config as round_config
from generation.pipeline import lifecycle
from generation.pipeline.lifecycle import IllegalTransition, StaleTransition
from generation.services.jobs import PermanentJobError
from generation.services.rounds import round_cancel, round_transition, stage_launch
from tests.factories import RoundFactory

# --- the table (pure) -----------------------------------------------------------------------------------------


def test_the_table_knows_every_round_state():
    assert set(lifecycle.STATES) == set(Round.State.values)
    assert set(lifecycle.ALLOWED) == set(Round.State.values)


@pytest.mark.parametrize("order", round_config.ORDERS)
@pytest.mark.parametrize("mode", round_config.REVIEW_MODES)
def test_every_move_of_a_round_run_to_the_end_is_allowed(order, mode):
    cfg = round_config.validate({"order": order, "review": {"mode": mode}})
    path = ["draft", "train_backward"]
    while (following := round_config.next_stage(cfg, path[-1])) is not None:
        path.append(following)
    path.append("closed")
    assert ("review" in path) == (mode == "human")
    for current, to in zip(path, path[1:], strict=False):
        lifecycle.check(current, to)  # raises if refused


@pytest.mark.parametrize(
    ("current", "to"),
    [
        ("draft", "train_backward"),  # round_start
        ("draft", "augment"),  # manage.py run_stage / the benchmarks start a round at a model stage
        ("train_backward", "augment"),  # also when there is nothing to train (the stage passes straight on)
        ("augment", "curate"),  # filter→rewrite
        ("augment", "rewrite"),  # rewrite→filter
        ("curate", "rewrite"),
        ("rewrite", "curate"),
        ("rewrite", "review"),
        ("curate", "review"),
        ("rewrite", "train_forward"),  # review mode "skip"
        ("curate", "train_forward"),
        ("review", "train_forward"),  # round_close_review
        ("train_forward", "evaluate"),
        ("evaluate", "closed"),
        ("augment", "augment"),  # stage_retry of the stage the round is at
        ("draft", "cancelled"),
        ("review", "cancelled"),
        ("failed", "cancelled"),
        ("augment", "failed"),
        ("failed", "failed"),  # a second chunk failing for good records its error too
        ("failed", "curate"),  # stage_retry resumes a failed round at any stage
        ("cancelled", "train_backward"),
    ],
)
def test_the_moves_the_code_makes_are_allowed(current, to):
    assert lifecycle.is_allowed(current, to)
    assert current in lifecycle.sources(to)


@pytest.mark.parametrize(
    ("current", "to"),
    [
        *[("closed", to) for to in lifecycle.STATES],
        ("review", "augment"),
        ("review", "review"),
        ("draft", "review"),
        ("draft", "closed"),
        ("train_backward", "curate"),
        ("augment", "closed"),
        ("augment", "train_forward"),
        ("evaluate", "train_forward"),
        ("train_forward", "closed"),
        ("cancelled", "cancelled"),
        ("cancelled", "failed"),
        ("cancelled", "review"),
        ("failed", "review"),
        ("failed", "closed"),
        ("augment", "draft"),
    ],
)
def test_other_moves_are_refused_with_a_clear_message(current, to):
    assert not lifecycle.is_allowed(current, to)
    with pytest.raises(IllegalTransition, match=f"^round 3 cannot go from {current} to {to}$"):
        lifecycle.check(current, to, number=3)


def test_an_unknown_state_is_refused():
    with pytest.raises(IllegalTransition, match="'reviewing' is not a round state"):
        lifecycle.check("review", "reviewing", number=1)


# --- the writer (database) -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_legal_move_writes_the_state_and_its_fields():
    rnd = RoundFactory(state="evaluate")
    got = round_transition(round=rnd, to="closed", expected_from="evaluate", error="")
    assert got is rnd and rnd.state == "closed"
    assert Round.objects.get(pk=rnd.pk).state == "closed"


@pytest.mark.django_db
def test_an_illegal_move_raises_and_leaves_the_row_unchanged():
    rnd = RoundFactory(state="closed", error="kept")
    before = Round.objects.filter(pk=rnd.pk).values().get()
    with pytest.raises(IllegalTransition, match=f"round {rnd.number} cannot go from closed to augment"):
        round_transition(round=rnd, to="augment", error="")
    assert Round.objects.filter(pk=rnd.pk).values().get() == before
    with pytest.raises(IllegalTransition, match="cannot go from closed to augment"):
        stage_launch(round=rnd, stage="augment", enqueue=False)
    assert not rnd.jobs.exists() and Round.objects.filter(pk=rnd.pk).values().get() == before


@pytest.mark.django_db
def test_the_row_decides_not_a_stale_instance():
    rnd = RoundFactory(state="augment")
    stale = Round.objects.get(pk=rnd.pk)  # read while the round was at augment
    round_cancel(round=rnd)  # another request cancels it
    with pytest.raises(StaleTransition, match=f"round {rnd.number} is at cancelled, not augment"):
        round_transition(round=stale, to="curate", expected_from="augment")
    with pytest.raises(IllegalTransition, match="cannot go from cancelled to failed"):
        round_transition(round=stale, to="failed", error="late failure")
    row = Round.objects.get(pk=rnd.pk)
    assert row.state == "cancelled" and row.error == "" and row.finished_at is not None
    # The next stage decided on the stale state is not launched either.
    with pytest.raises(StaleTransition) as info:
        stage_launch(round=stale, stage="curate", enqueue=False, expected_from="augment")
    assert str(info.value) == f"round {rnd.number} is at cancelled, not augment: it was not moved to curate"
    assert not rnd.jobs.exists()


@pytest.mark.django_db
def test_a_permanent_job_error_fails_the_round_but_not_a_cancelled_one(monkeypatch):
    def boom(job: Job) -> None:
        raise PermanentJobError("the model is gone")

    monkeypatch.setitem(REGISTRY, "boom", boom)
    running, cancelled = RoundFactory(state="augment"), RoundFactory(state="cancelled")
    for rnd in (running, cancelled):
        job = Job.objects.create(round=rnd, stage="boom", queue="gpu")
        assert run_job(job.pk) == Job.Status.FAILED
    running.refresh_from_db()
    cancelled.refresh_from_db()
    assert running.state == "failed" and running.error == "the model is gone"
    assert cancelled.state == "cancelled" and cancelled.error == ""


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_from_the_same_state_move_the_round_once():
    """The second UPDATE waits on the first one's row lock, then re-reads the state and finds it moved."""
    rnd = RoundFactory(state="augment")
    first_wrote, outcomes = threading.Event(), {}

    def first() -> None:
        try:
            with transaction.atomic():
                round_transition(round=Round.objects.get(pk=rnd.pk), to="curate", expected_from="augment")
                first_wrote.set()
                time.sleep(0.5)  # hold the row lock while the other worker tries
            outcomes["first"] = "moved"
        finally:
            connection.close()

    def second() -> None:
        try:
            first_wrote.wait(5)
            round_transition(round=Round.objects.get(pk=rnd.pk), to="cancelled", expected_from="augment")
            outcomes["second"] = "moved"
        except StaleTransition as exc:
            outcomes["second"] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes["first"] == "moved"
    assert outcomes["second"] == f"round {rnd.number} is at curate, not augment: it was not moved to cancelled"
    assert Round.objects.get(pk=rnd.pk).state == "curate"


@pytest.mark.django_db
def test_run_stage_on_a_closed_round_is_refused_by_the_lifecycle():
    from django.core.management import CommandError, call_command

    rnd = RoundFactory(state="closed")
    with pytest.raises(CommandError, match=f"round {rnd.number} cannot go from closed to curate"):
        call_command("run_stage", round=rnd.number, stage="curate")
    assert Round.objects.get(pk=rnd.pk).state == "closed" and not rnd.jobs.exists()


@pytest.mark.django_db
def test_the_admin_shows_the_state_read_only_and_never_writes_it_back(admin_client):
    from types import SimpleNamespace

    from django.contrib import admin

    rnd = RoundFactory(state="augment")
    page = admin_client.get(f"/admin/generation/round/{rnd.pk}/change/")
    assert page.status_code == 200 and 'name="state"' not in page.content.decode()
    edited = Round.objects.get(pk=rnd.pk)  # the admin's copy, read while the round was at augment
    round_cancel(round=rnd)
    edited.metrics = {"note": "edited in the admin"}
    admin.site._registry[Round].save_model(None, edited, SimpleNamespace(changed_data=["metrics"]), True)
    row = Round.objects.get(pk=rnd.pk)
    assert row.state == "cancelled" and row.metrics == {"note": "edited in the admin"}
