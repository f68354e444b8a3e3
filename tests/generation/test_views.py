import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import SeedExample
from generation.handlers import run_job
from generation.models import Job, ModelVersion, Round
from generation.pipeline.evaluation import headline
from generation.selectors import job_summary, stage_progress
from generation.services.rounds import StageActionRefused, stage_retry
from tests.factories import (
    CandidateFactory,
    ModelVersionFactory,
    RoundFactory,
    SeedExampleFactory,
    SegmentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_round():
    rnd = RoundFactory(state="augment")
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
    assert "Retry" in html and ">Cancel</button>" not in html, "no stage cancel: nothing is running"
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
    assert progress["eta_s"] == 0, "a finished stage has nothing left to wait for"


# --- launching, closing review, the model registry ------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(role="admin"))
    return client


def launch_data(corpus, base, **overrides):
    data = {
        "corpus": corpus.pk,
        "base_model": base.pk,
        "backend": "transformers",
        "sample_size": 4,
        "chunk_size": 2,
        "keep_rule": "agreement",
        "keep": "top_k",
        "top_k": 2,
        "order": "filter_rewrite",
        "review": "human",
        "overlap": 1,
        "audit_fraction": 0.1,
        "train_backward": "on",
        "training_method": "lora",
        "max_steps": 1,
    }
    return {**data, **overrides}


def test_the_launch_form_shows_sensible_defaults(admin_client):
    base = ModelVersionFactory(role="base")
    SegmentFactory(corpus__name="web sample")  # a corpus without segments is not launchable
    html = admin_client.get(reverse("round-launch")).content.decode()
    assert 'name="sample_size" value="200"' in html and 'name="threshold" value="0.1"' in html
    assert '<option value="agreement" selected>' in html
    assert "web sample" in html and base.name in html
    assert 'value="filter_rewrite" selected' in html


def test_launching_from_the_form_freezes_the_config_and_queues_training(
    admin_client, redis_conn, django_capture_on_commit_callbacks
):
    base, corpus = ModelVersionFactory(role="base"), SegmentFactory().corpus
    upload = SimpleUploadedFile("mine.jsonl", b'{"prompt": "Say hi."}\n{"instruction": "Add", "input": "2+2"}\n')
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("round-launch"), launch_data(corpus, base, eval_prompts=upload))
    rnd = Round.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("round-detail", args=[rnd.number])
    assert rnd.state == "train_backward" and rnd.config["curation"] == {
        "keep": "agreement",
        "threshold": None,
        "top_k": 2,
        "min_agreement": None,
        "ifd_band": None,
        "rationale": False,
    }
    assert rnd.config["evaluation"]["prompts"] == ["Say hi.", "Add\n\n2+2"]
    assert rnd.config["evaluation"]["prompt_set"] == "mine.jsonl"
    assert len(rnd.config_hash) == 64
    job = rnd.jobs.get()
    assert (job.stage, job.queue, job.status) == ("train_backward", "gpu", "queued")
    assert django_rq.get_queue("gpu").count == 1


def test_the_launch_form_reports_bad_values_and_bad_prompt_files_by_line(admin_client):
    base, corpus = ModelVersionFactory(role="base"), SegmentFactory().corpus

    def upload():
        return SimpleUploadedFile("bad.jsonl", b'{"prompt": "ok"}\nnot json\n{"x": 1}\n')

    response = admin_client.post(
        reverse("round-launch"), launch_data(corpus, base, keep="threshold", top_k="", eval_prompts=upload())
    )
    html = response.content.decode()
    assert response.status_code == 400 and not Round.objects.exists()
    assert "Give a threshold" in html
    response = admin_client.post(
        reverse("round-launch"), launch_data(corpus, base, keep_rule="rubric", keep="threshold", threshold="7")
    )
    assert response.status_code == 400 and "1–5" in response.content.decode() and not Round.objects.exists()
    response = admin_client.post(reverse("round-launch"), launch_data(corpus, base, eval_prompts=upload()))
    html = response.content.decode()
    assert response.status_code == 400 and "line 2: invalid JSON" in html and "line 3:" in html


def test_a_missing_model_path_fails_the_first_stage_with_a_clear_message(
    admin_client, redis_conn, django_capture_on_commit_callbacks
):
    base = ModelVersionFactory(role="base", path="/nowhere/no-such-model")
    SeedExampleFactory()
    admin_client.post(reverse("round-launch"), launch_data(SegmentFactory().corpus, base))
    rnd = Round.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert run_job(rnd.jobs.get().pk) == "failed"
    rnd.refresh_from_db()
    assert rnd.state == "failed" and "/nowhere/no-such-model" in rnd.error and "does not exist" in rnd.error
    html = admin_client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert "model path /nowhere/no-such-model for stage train_backward does not exist" in html
    assert "Traceback" not in html.split("<pre")[0]
    assert 'class="tl-failed"' in html


def test_closing_the_review_feeds_the_seed_set_and_trains_the_forward_model(admin_client, redis_conn):
    rnd = RoundFactory(state="review")
    accepted = CandidateFactory(round=rnd, status="accepted", final_instruction="Q?", final_response="A.")
    CandidateFactory(round=rnd, status="rejected")
    CandidateFactory(round=rnd, status="kept")
    html = admin_client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert "Close review" in html and "1/2 kept pairs reviewed" not in html
    response = admin_client.post(reverse("round-close-review", args=[rnd.number]), follow=True)
    assert "1 pairs joined the seed set" in response.content.decode()
    rnd.refresh_from_db()
    assert rnd.state == "train_forward" and rnd.jobs.get().stage == "train_forward"
    example = SeedExample.objects.get(source="web")
    assert (example.instruction, example.response, example.candidate) == ("Q?", "A.", accepted)
    assert rnd.metrics["feedback"]["added_to_seed"] == 1 and rnd.metrics["feedback"]["unreviewed"] == 1
    response = admin_client.post(reverse("round-close-review", args=[rnd.number]), follow=True)
    assert "not in review" in response.content.decode()
    assert SeedExample.objects.filter(source="web").count() == 1, "closing twice adds nothing"


def test_a_closed_round_shows_its_evaluation_loss_curves_and_curation_agreement(admin_client):
    rnd = RoundFactory(state="closed")
    forward = ModelVersionFactory(
        role="forward",
        name="round-1-forward",
        round=rnd,
        hyperparameters={"method": "lora", "learning_rate": 2e-4, "batch_size": 4},
        metrics={
            "loss_curve": [[1, 2.1], [2, 1.7], [3, 1.5]],
            "final_loss": 1.5,
            "steps": 3,
            "examples": 10,
            "evaluation": {"n": 4, "win_rate_ties_half": 0.625, "reference": {"name": "smol"}},
        },
    )
    rnd.forward_model = forward
    rnd.metrics = {
        "evaluation": {
            "n": 4,
            "wins": 2,
            "ties": 1,
            "losses": 1,
            "win_rate": 0.5,
            "tie_rate": 0.25,
            "loss_rate": 0.25,
            "win_rate_ties_half": 0.625,
            "lc_win_rate": 0.6,
            "mean_length_candidate": 120.0,
            "mean_length_reference": 100.0,
            "judge": "/m/judge",
            "prompt_set": "builtin",
            "candidate": {"id": forward.pk, "name": "round-1-forward"},
            "reference": {"id": 1, "name": "smol"},
            "pairs": [
                {"prompt": "<b>hi</b>", "candidate": "x", "reference": "y", "verdict": "win", "p_candidate": 0.7}
            ],
        },
        "curation": {
            "n": 3,
            "tp": 1,
            "fp": 1,
            "fn": 1,
            "tn": 0,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "accuracy": 0.33,
            "spearman": 0.5,
        },
    }
    rnd.save()
    html = admin_client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert "Win rate" in html and "62%" in html and "Length-controlled win rate" in html and "60%" in html
    assert html.count("<canvas") == 2, "loss curve and win/tie/loss bar"
    assert 'aria-label="training loss: 3 points, step 1 to 3, loss 2.1 → 1.5 (min 1.5, max 2.1)"' in html
    assert 'aria-label="win 50%, tie 25%, loss 25%"' in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html, "prompts are shown as text"
    assert "Precision" in html and "TP 1" in html
    models = admin_client.get(reverse("model-list")).content.decode()
    assert "round-1-forward" in models and "win 62%" in models
    assert 'aria-label="training loss: 3 values, 2.1 → 1.5 (min 1.5, max 2.1)"' in models, "the sparkline"
    rounds_page = admin_client.get(reverse("round-list")).content.decode()
    assert "62%" in rounds_page and "win rate by round" in rounds_page
    trend = f"win rate %: 1 point, round {rnd.number} to {rnd.number}, win rate % 62.5 → 62.5 (min 62.5, max 62.5)"
    assert f'aria-label="{trend}"' in rounds_page


def test_the_launch_form_takes_an_ifd_band(admin_client, redis_conn, django_capture_on_commit_callbacks):
    base, corpus = ModelVersionFactory(role="base"), SegmentFactory().corpus
    data = launch_data(corpus, base, keep_rule="ifd", keep="threshold", top_k="", ifd_low="0.2", ifd_high="0.95")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("round-launch"), data)
    assert response.status_code == 302
    cur = Round.objects.get().config["curation"]
    assert (cur["keep"], cur["threshold"], cur["top_k"], cur["ifd_band"]) == ("ifd", None, None, [0.2, 0.95])


def test_a_round_page_leads_with_a_reliable_measure_and_shows_gates_and_signal_aucs(admin_client):
    rnd = RoundFactory(state="closed")
    heldout = {
        "n": 8,
        "tokens": 900,
        "new": {"nll": 1.81, "ci": [1.6, 2.0]},
        "old": {"nll": 2.02, "ci": [1.8, 2.2]},
        "delta": {"nll": -0.21, "ci": [-0.3, -0.12]},
        "improved": True,
        "new_model": "round-1-forward",
        "old_model": "smol",
    }
    evaluation_ = {
        "n": 8,
        "wins": 0,
        "ties": 8,
        "losses": 0,
        "win_rate": 0.0,
        "tie_rate": 1.0,
        "loss_rate": 0.0,
        "win_rate_ties_half": 0.5,
        "lc_win_rate": 0.5,
        "judge_consistency": 0.0,
        "judge_min_consistency": 0.5,
        "heldout": {"forward": heldout},
        "candidate": {"name": "round-1-forward"},
        "reference": {"name": "smol"},
        "pairs": [],
    }
    evaluation_["headline"] = headline(evaluation_)
    rnd.metrics = {"evaluation": evaluation_, "curation": {"n": 4, "signal_auc": {"rubric": 0.5, "agreement": 0.75}}}
    rnd.save()
    ModelVersionFactory(role="forward", name="round-1-forward", round=rnd, metrics={"evaluation": evaluation_})
    seg = SegmentFactory(corpus=rnd.corpus)
    CandidateFactory(round=rnd, segment=seg, status="dropped", gate="repetitive_response", score=3.0)
    html = admin_client.get(reverse("round-detail", args=[rnd.number])).content.decode()
    assert "held-out answer NLL 2.020 → 1.810 nats/token" in html and "better" in html
    assert "The judge is not reliable here" in html and "0%" in html
    assert 'id="heldout-nll"' in html and "[-0.300, -0.120]" in html
    assert "response repeats itself</span> 1" in html
    assert 'id="signal-auc"' in html and "0.75" in html
    models = admin_client.get(reverse("model-list")).content.decode()
    assert "held-out NLL 1.810 vs 2.020 (smol), Δ -0.210 [-0.300, -0.120]" in models and "judge unreliable" in models


def test_the_model_registry_registers_only_real_model_directories(admin_client, tmp_path):
    response = admin_client.post(reverse("model-list"), {"name": "x", "role": "base", "path": str(tmp_path)})
    assert response.status_code == 400 and "not a Hugging Face model directory" in response.content.decode()
    (tmp_path / "config.json").write_text("{}")
    admin_client.post(reverse("model-list"), {"name": "mine", "role": "judge", "path": str(tmp_path)})
    assert ModelVersion.objects.get(name="mine").role == "judge"


@pytest.mark.parametrize("name", ["round-launch", "model-list"])
def test_round_admin_pages_are_for_admins_only(client, name):
    client.force_login(UserFactory(role="curator"))
    assert client.get(reverse(name)).status_code == 403
    rnd = RoundFactory(state="review")
    assert client.post(reverse("round-close-review", args=[rnd.number])).status_code == 403
    assert client.post(reverse("round-cancel", args=[rnd.number])).status_code == 403


def test_the_job_log_summarises_each_kind_of_job_in_a_line():
    assert job_summary("train_forward", {"final_loss": 1.81, "steps": 16, "seconds": 158.2}) == (
        "loss 1.81 · 16 steps · 158.2 s"
    )
    heldout = {"forward": {"n": 8, "delta": {"nll": -0.289}}}
    assert (
        job_summary("evaluate", {"n": 6, "heldout": heldout}) == "6 prompts judged · held-out NLL Δ -0.289 on 8 pairs"
    )
    assert job_summary("curate", {"items": 8, "completion_tokens_per_s": 0.0, "seconds": 20.5, "gated": 1}) == (
        "8 items · 20.5 s · 1 gated"
    )
    assert job_summary("augment", {"items": 8, "completion_tokens_per_s": 14.2, "errors": 2}) == (
        "8 items · 14.2 tok/s · 2 errors"
    )


@pytest.mark.django_db
def test_admin_writes_respect_the_rounds_state(client, redis_conn):
    from tests.factories import RoundFactory, UserFactory

    client.force_login(UserFactory(role="admin"))
    closed, review = RoundFactory(state="closed"), RoundFactory(state="review")
    page = client.post(reverse("round-cancel", args=[closed.number]), follow=True).content.decode()
    assert "Not cancelled: round" in page and "closed already" in page
    closed.refresh_from_db()
    assert closed.state == "closed", "a closed round is never turned into a cancelled one"
    refusals = {
        closed: f"round {closed.number} is closed: its stages cannot be retried",
        review: f"round {review.number} is at review: only that stage can be retried (or any, once it failed)",
    }
    for rnd, message in refusals.items():
        with pytest.raises(StageActionRefused) as info:
            stage_retry(round=rnd, stage="augment")
        assert str(info.value) == message
        page = client.post(reverse("round-stage-action", args=[rnd.number, "augment", "retry"]), follow=True)
        assert f"Not done: {message}." in page.content.decode()
        rnd.refresh_from_db()
    assert (closed.state, review.state) == ("closed", "review"), "a round in review is not sent back to augment"
    assert client.post(reverse("round-stage-action", args=[review.number, "nonsense", "retry"])).status_code == 404
