"""How the backends take a whole chunk in one call, without a model: the transformers backend's length-sorted
batches, the vLLM backend's progress hook and its CPU thread settings (no engine is started here)."""

from __future__ import annotations

import os

import pytest

from generation.backends import vllm_backend
from generation.backends.hf import TransformersBackend
from generation.backends.vllm_backend import BIND_ENV, RESERVED_ENV, _id_ranges, _ProgressBar, _tqdm, host_cores


class _Words:
    """A tokenizer stand-in: one token per word."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [t.split() for t in texts]}


def test_transformers_batches_a_call_by_token_length():
    backend = TransformersBackend.__new__(TransformersBackend)
    backend.tokenizer, backend.batch_size = _Words(), 2
    texts = ["a b c d e", "a", "a b c", "a b", "a b c d"]
    lengths = backend._token_lengths(texts)
    assert lengths == [5, 1, 3, 2, 4]
    # Shortest first, in batches of 2; every index once, so the outputs go back to the caller's order.
    assert backend._batches(lengths) == [[1, 3], [2, 4], [0]]
    assert backend._token_lengths([]) == []


def test_vllm_progress_hears_of_each_finished_request():
    heard: list[int] = []
    bar = _tqdm(heard.append)(total=3, desc="Processed prompts", dynamic_ncols=True, postfix="")
    assert isinstance(bar, _ProgressBar) and bar.format_dict["elapsed"] > 0
    bar.update(1)
    bar.update(2)
    bar.refresh()
    bar.close()
    assert heard == [1, 2] and bar.n == 3
    assert _tqdm(None) is False  # no progress asked for: vLLM draws no bar
    # vLLM also wraps the prompts it renders (`maybe_tqdm(prompts, use_tqdm=…, desc=…)`): iterated, nothing heard.
    assert list(_tqdm(heard.append)(["p1", "p2"], desc="Rendering prompts")) == ["p1", "p2"] and heard == [1, 2]


def test_cpu_id_ranges():
    assert _id_ranges([0, 1]) == "0-1"
    assert _id_ranges([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert _id_ranges([3]) == "3"


@pytest.fixture
def clean_thread_env(monkeypatch):
    monkeypatch.delenv(BIND_ENV, raising=False)
    monkeypatch.delenv(RESERVED_ENV, raising=False)
    monkeypatch.setattr(vllm_backend, "_threads_logged", False)


def test_the_engine_gets_every_core_and_reserves_none(clean_thread_env, caplog):
    caplog.set_level("INFO", logger="generation.backends.vllm_backend")
    chosen = host_cores()
    assert chosen == {BIND_ENV: _id_ranges(sorted(os.sched_getaffinity(0))), RESERVED_ENV: "0"}
    assert BIND_ENV not in os.environ, "set only while the engine starts (see VLLMBackend), not for this process"
    host_cores()
    [line] = [r.getMessage() for r in caplog.records if "vLLM on CPU" in r.getMessage()]  # logged once
    assert f"{BIND_ENV}={chosen[BIND_ENV]}" in line and f"{RESERVED_ENV}=0" in line


def test_thread_settings_from_the_environment_win(clean_thread_env, monkeypatch):
    monkeypatch.setenv(BIND_ENV, "auto")
    assert host_cores() == {BIND_ENV: "auto"}  # reservation left to vLLM
    monkeypatch.setenv(RESERVED_ENV, "1")
    assert host_cores() == {BIND_ENV: "auto", RESERVED_ENV: "1"}
