"""Launching a round on the GPUs there are: tensor_parallel_size against what the live workers registered (services/
rounds.round_check_devices, through round_create, the launch form and `launch_round`)."""

from __future__ import annotations

import django_rq
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rq import Worker

from generation.backends.devices import WORKER_GPUS_FIELD
from generation.models import Round
from generation.pipeline.config import ConfigError
from generation.services.rounds import round_create
from tests.factories import ModelVersionFactory, SegmentFactory, UserFactory

pytestmark = pytest.mark.django_db


def register_worker(conn, name: str, gpus: str) -> Worker:
    """A live worker on queue gpu that owns `gpus` ("0,1"; "" for a CPU worker), as BackforthWorker registers."""
    worker = Worker([django_rq.get_queue("gpu")], connection=conn, name=name)
    worker.register_birth()
    conn.hset(worker.key, WORKER_GPUS_FIELD, gpus)
    return worker


def launch(tensor_parallel_size: int, backend: str = "vllm") -> Round:
    corpus, base = SegmentFactory().corpus, ModelVersionFactory(role="base")
    return round_create(
        corpus=corpus, base_model=base, config={"backend": backend, "tensor_parallel_size": tensor_parallel_size}
    )


def test_tensor_parallelism_is_checked_against_the_best_equipped_live_worker(redis_conn):
    register_worker(redis_conn, "w-one", "0")
    register_worker(redis_conn, "w-two", "1,2")
    assert launch(2).cfg.tensor_parallel_size == 2
    assert launch(1).cfg.tensor_parallel_size == 1
    with pytest.raises(ConfigError) as refused:
        launch(4)
    assert str(refused.value) == (
        "tensor_parallel_size 4 needs 4 GPUs in one worker, and the best-equipped live worker has 2: give each "
        "worker 4 (BACKFORTH_GPUS_PER_WORKER=4 in scripts/serve.sh)"
    )
    assert Round.objects.count() == 2
    assert launch(4, backend="transformers").cfg.tensor_parallel_size == 4, "transformers ignores it"


def test_cpu_workers_cannot_split_a_model(redis_conn):
    register_worker(redis_conn, "w-cpu", "")
    with pytest.raises(ConfigError, match="needs 2 GPUs in one worker, and the best-equipped live worker has no GPU"):
        launch(2)


def test_with_no_worker_running_a_host_without_gpus_leaves_the_check_to_the_worker(redis_conn, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible here, whatever the machine has
    assert launch(8).cfg.tensor_parallel_size == 8


def test_the_launch_form_takes_the_tensor_parallel_size_and_refuses_what_no_worker_holds(client, redis_conn):
    client.force_login(UserFactory(role="admin"))
    register_worker(redis_conn, "w-two", "0,1")
    corpus, base = SegmentFactory().corpus, ModelVersionFactory(role="base")
    data = {
        "corpus": corpus.pk,
        "base_model": base.pk,
        "backend": "vllm",
        "sample_size": 4,
        "chunk_size": 2,
        "keep_rule": "agreement",
        "keep": "top_k",
        "top_k": 2,
        "order": "filter_rewrite",
        "review": "human",
        "overlap": 1,
        "audit_fraction": 0.1,
        "training_method": "lora",
    }
    form = client.get(reverse("round-launch")).content.decode()
    assert 'name="tensor_parallel_size" value="1"' in form
    refused = client.post(reverse("round-launch"), {**data, "tensor_parallel_size": 4})
    assert refused.status_code == 400 and not Round.objects.exists()
    assert "and the best-equipped live worker has 2" in refused.content.decode()
    launched = client.post(reverse("round-launch"), {**data, "tensor_parallel_size": 2})
    assert launched.status_code == 302
    assert Round.objects.get().config["tensor_parallel_size"] == 2
    unset = client.post(reverse("round-launch"), {**data, "tensor_parallel_size": ""})
    assert unset.status_code == 302 and Round.objects.order_by("number").last().config["tensor_parallel_size"] == 1


def test_launch_round_takes_the_tensor_parallel_size(redis_conn, settings, tmp_path):
    register_worker(redis_conn, "w-two", "0,1")
    SegmentFactory(corpus__name="web")
    settings.DEFAULT_MODEL = tmp_path
    call_command("launch_round", "--corpus", "web", "--backend", "vllm", "--tensor-parallel-size", "2")
    assert Round.objects.get().config["tensor_parallel_size"] == 2
    with pytest.raises(CommandError, match="tensor_parallel_size 3 needs 3 GPUs in one worker"):
        call_command("launch_round", "--corpus", "web", "--backend", "vllm", "--tensor-parallel-size", "3")
