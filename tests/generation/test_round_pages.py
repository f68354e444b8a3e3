import pytest
from django.urls import reverse

from generation.models import Job
from tests.factories import RoundFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_round():
    rnd = RoundFactory(state="augment", config={"order": "filter_rewrite", "curation": {"threshold": 4.5}})
    Job.objects.create(round=rnd, stage="augment", chunk=0, status="done", progress_done=2, progress_total=2)
    Job.objects.create(
        round=rnd,
        stage="augment",
        chunk=1,
        status="failed",
        progress_total=2,
        error="StageError: model path /nope does not exist",
        permanent=True,
    )
    return rnd


def test_round_page_shows_progress_errors_and_actions(client, failed_round):
    client.force_login(UserFactory(role="admin"))
    html = client.get(reverse("round-detail", args=[failed_round.number])).content.decode()
    assert "2/4" in html and "model path /nope does not exist" in html and "permanent" in html
    assert "Retry" in html and "Cancel" not in html
    partial = client.get(reverse("round-detail", args=[failed_round.number]), headers={"HX-Request": "true"})
    assert 'id="round-stages"' in partial.content.decode() and "<html" not in partial.content.decode()


def test_retry_from_the_page_requeues_the_failed_chunk(client, failed_round, django_capture_on_commit_callbacks):
    client.force_login(UserFactory(role="admin"))
    url = reverse("round-stage-action", args=[failed_round.number, "augment", "retry"])
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "stage-changed" in response["HX-Trigger"]
    assert failed_round.jobs.get(chunk=1).status == "queued"
    assert (
        client.post(reverse("round-stage-action", args=[failed_round.number, "augment", "explode"])).status_code == 404
    )


def test_stage_actions_are_for_admins_only(client, failed_round):
    client.force_login(UserFactory(role="curator"))
    url = reverse("round-stage-action", args=[failed_round.number, "augment", "retry"])
    assert client.post(url).status_code == 403
    assert failed_round.jobs.get(chunk=1).status == "failed"


def test_a_finished_stage_keeps_its_own_rate():
    from datetime import timedelta

    from django.utils import timezone

    from generation.stages import stage_progress

    rnd = RoundFactory(state="review", config={"order": "filter_rewrite"})
    t0 = timezone.now() - timedelta(hours=1)
    Job.objects.create(
        round=rnd,
        stage="augment",
        chunk=0,
        status="done",
        progress_done=10,
        progress_total=10,
        started_at=t0,
        finished_at=t0 + timedelta(seconds=5),
    )
    progress = stage_progress(round=rnd, stage="augment")
    assert progress["items_per_s"] == pytest.approx(2.0)
    assert progress["eta_s"] is None or progress["eta_s"] == 0
