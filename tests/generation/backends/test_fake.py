"""The fake backend (tests and the fast loop only) and where the registry and the round config allow it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import override_settings

from generation.backends import registry
from generation.backends.base import BackendError, GenerationParams
from generation.backends.fake import FakeBackend
from generation.forms import RoundLaunchForm
from generation.pipeline import config as round_config
from generation.pipeline import gates, parsing, prompts, scoring, signals

TEA = "Tea was first drunk in China as a medicine, long before it became a daily drink."
RUST = "The Rust borrow checker enforces that references never outlive the data they point to."


@pytest.fixture(autouse=True)
def _no_backend_left_loaded():
    yield
    registry.release(quiet=True)


def backward(backend, texts, max_new_tokens=64):
    return backend.generate(
        [prompts.backward_messages(t) for t in texts],
        GenerationParams(max_new_tokens=max_new_tokens),
        assistant_prefix=prompts.BACKWARD_PREFIX,
    )


def rewrite(backend, pairs, max_new_tokens=512):
    return backend.generate(
        [prompts.rewrite_messages(x, y) for x, y in pairs],
        GenerationParams(max_new_tokens=max_new_tokens, stop=(prompts.REWRITE_CLOSE,)),
        assistant_prefix=prompts.REWRITE_PREFIX,
    )


def test_backward_output_is_a_question_the_parser_takes_and_no_gate_catches():
    outs = backward(FakeBackend(), [TEA, RUST])
    assert [o.text for o in outs] == [
        "Can you explain tea was first drunk in?",
        "Can you explain the rust borrow checker enforces?",
    ]
    assert all(o.finished and o.completion_tokens == 8 for o in outs)
    assert outs[0].prompt_tokens == len(prompts.backward_messages(TEA)[0]["content"].split()) + 1
    for out, text in zip(outs, [TEA, RUST], strict=True):
        instruction = parsing.parse_instruction(out.text)
        assert instruction == out.text
        assert gates.gate_reason(gates.GateInput(instruction, text, check_response=False)) is None


def test_output_is_cut_at_max_new_tokens_words():
    [out] = backward(FakeBackend(), [TEA], max_new_tokens=3)
    assert out.text == "Can you explain" and out.completion_tokens == 3 and not out.finished
    assert parsing.instruction_was_cut(out.text, out.finished)
    [one] = backward(FakeBackend(), [TEA], max_new_tokens=1)
    assert parsing.parse_instruction(one.text) is None


def test_rewrite_returns_the_draft_without_the_stop_string():
    [out] = rewrite(FakeBackend(), [("Can you explain tea?", TEA)])
    assert out.text == TEA and out.finished
    assert parsing.parse_rewrite(out.text, prefix=prompts.REWRITE_PREFIX) == TEA
    # Without the stop string the closing tag is written, as a model would.
    [closed] = FakeBackend().generate(
        [prompts.rewrite_messages("Can you explain tea?", TEA)],
        GenerationParams(max_new_tokens=512),
        assistant_prefix=prompts.REWRITE_PREFIX,
    )
    assert closed.text == TEA + "\n" + prompts.REWRITE_CLOSE
    [cut] = rewrite(FakeBackend(), [("Can you explain tea?", TEA)], max_new_tokens=4)
    assert cut.text == "Tea was first drunk" and not cut.finished


def test_markers_make_garbage_loops_and_echoes_and_are_never_copied():
    fake = FakeBackend()
    texts = ["Glaciers [fake:garbage] carve.", "Lighthouses [fake:echo] guide ships.", "Birds [fake:loop] sing."]
    garbage, echo, loop = (parsing.parse_instruction(o.text) for o in backward(fake, texts))
    assert garbage is None
    assert gates.gate_reason(gates.GateInput(echo, texts[1], check_response=False)) == "prompt_echo"
    assert gates.gate_reason(gates.GateInput(loop, texts[2], check_response=False)) == "repetitive_instruction"
    # A stage-scoped marker acts on that stage only.
    scoped = "Owls hunt at night [fake:rewrite:loop] with silent feathers."
    [instruction] = backward(fake, [scoped])
    assert instruction.text == "Can you explain owls hunt at night with?"
    [looped] = rewrite(fake, [(instruction.text, scoped)])
    text = parsing.parse_rewrite(looped.text, prefix=prompts.REWRITE_PREFIX)
    assert gates.gate_reason(gates.GateInput(instruction.text, text, source=scoped)) == "repetitive_response"
    [gone] = rewrite(fake, [("Can you explain glaciers?", "Glaciers [fake:rewrite:garbage] carve valleys.")])
    assert parsing.parse_rewrite(gone.text, prefix=prompts.REWRITE_PREFIX) is None
    [plain] = rewrite(fake, [("Can you explain owls?", "Owls [fake:augment:garbage] hunt.")])
    assert plain.text == "Owls hunt."


def test_scores_are_deterministic_distributions_that_differ_between_pairs():
    pairs = [("Can you explain tea?", TEA), ("Can you explain rust?", RUST)]
    convs = [prompts.curate_messages(x, y) for x, y in pairs]
    a = FakeBackend().score(convs, prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX)
    b = FakeBackend().score(convs, prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX)
    assert a == b
    assert a[0] == pytest.approx([0.035932, 0.150570, 0.066730, 0.302852, 0.343916], abs=1e-6)
    assert a[1] == pytest.approx([0.093324, 0.170028, 0.302983, 0.310653, 0.023011], abs=1e-6)
    assert [sum(row) for row in a] == pytest.approx([0.9, 0.9]), "a tenth of the mass on other tokens"
    assert [scoring.expected_score(row) for row in a] == pytest.approx([3.853612, 3.0], abs=1e-6)
    [rationale] = FakeBackend().generate(
        [prompts.curate_messages(*pairs[0], rationale=True)], GenerationParams(max_new_tokens=160)
    )
    assert rationale.text == "The answer addresses the instruction.\nScore: 2"
    assert parsing.parse_score(rationale.text) == 2
    assert parsing.parse_rationale(rationale.text) == "The answer addresses the instruction."


def test_agreement_separates_matched_from_mismatched_pairs():
    fake = FakeBackend()
    tea_q, rust_q = (o.text for o in backward(fake, [TEA, RUST]))
    pairs = [(tea_q, TEA), (rust_q, RUST), (rust_q, TEA), (tea_q, RUST)]
    n = len(pairs)
    ll = fake.loglik(
        [prompts.likelihood_messages(x) for x, _ in pairs] + [prompts.likelihood_messages("")] * n,
        [y for _, y in pairs] * 2,
    )
    assert ll == fake.loglik(
        [prompts.likelihood_messages(x) for x, _ in pairs] + [prompts.likelihood_messages("")] * n,
        [y for _, y in pairs] * 2,
    )
    agreement = [signals.likelihood_signals(ll[i], ll[n + i])["agreement"] for i in range(n)]
    assert agreement == [0.574375, 0.633571, 0.0, 0.0]
    assert (ll[0].total, ll[0].tokens) == (-29.62, 16)
    [short] = fake.loglik([prompts.likelihood_messages(tea_q)], [TEA], max_completion_tokens=4)
    assert short.tokens == 4


def test_the_fake_backend_imports_no_model_library():
    assert FakeBackend("/nowhere").model_path == "/nowhere"
    code = "import sys, generation.backends.fake; print(sorted({'torch','transformers','vllm'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- where "fake" is allowed ---------------------------------------------------------------------------------


def test_the_registry_loads_a_fake_backend_in_tests_without_a_model_directory(tmp_path):
    backend = registry.get_backend("fake", tmp_path / "no-such-model", batch_size=2)
    assert isinstance(backend, FakeBackend) and backend.name == "fake"
    assert registry.get_backend("fake", tmp_path / "no-such-model", batch_size=2) is backend
    registry.release()
    assert not backend.loaded


@override_settings(TESTING=False)
def test_the_registry_refuses_the_fake_backend_outside_tests(monkeypatch, tmp_path):
    monkeypatch.delenv(registry.ALLOW_FAKE_ENV, raising=False)
    with pytest.raises(BackendError, match="the fake backend is for tests only"):
        registry.get_backend("fake", tmp_path)
    with pytest.raises(BackendError, match="for tests only"):
        registry.load_backend("fake", tmp_path)
    monkeypatch.setenv(registry.ALLOW_FAKE_ENV, "0")
    assert not registry.fake_backend_allowed()
    monkeypatch.setenv(registry.ALLOW_FAKE_ENV, "1")
    assert isinstance(registry.get_backend("fake", tmp_path), FakeBackend)


def test_the_round_config_takes_fake_only_when_allowed():
    with pytest.raises(round_config.ConfigError, match="backend 'fake' is for tests only"):
        round_config.validate({"backend": "fake"})
    assert round_config.validate({"backend": "fake"}, allow_fake_backend=True)["backend"] == "fake"
    with pytest.raises(round_config.ConfigError, match="backend must be one of"):
        round_config.validate({"backend": "nope"}, allow_fake_backend=True)


@pytest.mark.django_db
def test_the_launch_form_never_offers_the_fake_backend():
    choices = [value for value, _ in RoundLaunchForm().fields["backend"].choices]
    assert choices == ["auto", "vllm", "transformers"] and "fake" not in registry.KINDS
