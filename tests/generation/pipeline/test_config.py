import dataclasses
import json
from typing import get_args

import pytest

from generation.models import Round
from generation.pipeline import config, signals, training
from generation.pipeline.config import (
    DEFAULTS,
    ConfigError,
    CurationConfig,
    HeldoutConfig,
    ModelsConfig,
    ReviewConfig,
    RoundConfig,
    TrainingConfig,
    chunked,
    config_hash,
    parse,
    stage_order,
    validate,
)
from generation.pipeline.training import TRAINING_DEFAULTS


def test_defaults_follow_the_papers_and_record_prompt_versions():
    config = validate()
    # Agreement ranks by default: it separates real from mismatched pairs on the embedded model, the rubric not.
    assert (config["curation"]["keep"], config["curation"]["threshold"]) == ("agreement", 0.1)
    assert config["generation"]["repetition_penalty"] == 1.1
    assert stage_order(config) == ("augment", "curate", "rewrite")
    assert config["prompts"]["curate"] == "curate.v1"


def test_overrides_merge_and_change_the_hash():
    a, b = validate(), validate({"curation": {"keep": "rubric", "threshold": 4.0}, "order": "rewrite_filter"})
    assert b["curation"] == {
        "keep": "rubric",
        "threshold": 4.0,
        "top_k": None,
        "min_agreement": None,
        "ifd_band": None,
        "rationale": False,
    }
    assert stage_order(b) == ("augment", "rewrite", "curate")
    assert config_hash(a) != config_hash(b) and config_hash(a) == config_hash(validate())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"backend": "tpu"}, "backend must be one of"),
        ({"order": "sideways"}, "order must be one of"),
        ({"sample_size": 0}, "sample_size must be a positive integer"),
        ({"chunk_size": "8"}, "chunk_size must be a positive integer"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size must be a positive integer, got 0"),
        ({"curation": {"keep": "rubric", "threshold": 7}}, "rubric's scale for 'rubric': 1–5"),
        ({"curation": {"threshold": None}}, "needs a threshold or a top_k"),
        ({"curation": {"threshold": 0.2, "top_k": 10}}, "not both"),
        ({"curation": {"keep": "vibes"}}, "curation.keep must be one of"),
        ({"curation": {"keep": "ifd", "threshold": 0.9}}, "no threshold"),
        ({"curation": {"ifd_band": [1.0, 0.5]}}, "low < high"),
        ({"generation": {"repetition_penalty": 5}}, "repetition_penalty must be between 1 and 2"),
        ({"heldout": {"fraction": 1.5}}, r"heldout.fraction must be in \[0, 1\)"),
        ({"samples": 3}, "unknown config key 'samples'"),
        ({"generation": {"temprature": 1}}, "unknown config key 'generation.temprature'"),
        ({"models": {"augment": 3}}, "models.augment must be"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(override)


def test_curation_overrides_mean_what_they_say():
    assert validate({"curation": {"top_k": 10}})["curation"]["threshold"] is None
    assert validate({"curation": {"keep": "rubric"}})["curation"]["threshold"] == 4.5
    ifd = validate({"curation": {"keep": "ifd"}})["curation"]
    assert (ifd["threshold"], ifd["ifd_band"]) == (None, [None, 1.0])


def test_chunked():
    assert chunked([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunked([], 3) == []


# --- the typed config (RoundConfig) ----------------------------------------------------------------------------

# The hash of the default config: a round launched with the same settings must hash the same. (A new prompt template
# version changes `prompts`, so the first one changes with it; the others pin the prompt versions.) A deliberate new
# default changes all three: issue 14 made chunk_size 64 (it was 16); a new key too: issue 15 added
# tensor_parallel_size.
DEFAULTS_HASH = "d8f1be8a556bb1f9eb16a41e0048c82ddd2b06e1dd8f5140f015ef49b532a0a4"
PINNED_PROMPTS = {"backward": "backward.v1"}
PINNED_HASH = "87c744c26b88cd30d5606cef7e1e2f434bba8f2ce202209144630ec12b49d215"
OVERRIDE = {
    "curation": {"keep": "ifd", "top_k": 5},
    "order": "rewrite_filter",
    "heldout": {"ids": [3, 1]},
    "evaluation": {"prompts": ["a", "b"], "prompt_set": "x.jsonl"},
    "models": {"judge": "/m/j"},
    "prompts": PINNED_PROMPTS,
}
OVERRIDE_HASH = "7cccf925131038d74bec28d034418734d7ca219df67a8a2c44a205429356ce07"

# Configs as rounds stored them before keys were added (the DEFAULTS of earlier commits): the first engine
# (no judge, training, review or evaluation; curation by the rubric), then the review queue (no keep rule,
# held-out split or repetition penalty).
FIRST_ENGINE = {
    "backend": "auto",
    "models": {"augment": None, "curate": None, "rewrite": None},
    "sample_size": 200,
    "chunk_size": 16,
    "batch_size": 8,
    "seed": 0,
    "max_segment_chars": 6000,
    "order": "filter_rewrite",
    "curation": {"threshold": 4.5, "top_k": None, "rationale": False},
    "generation": {
        "augment_max_new_tokens": 64,
        "rewrite_max_new_tokens": 512,
        "rationale_max_new_tokens": 160,
        "temperature": 0.0,
    },
    "prompts": {"backward": "backward.v1", "curate": "curate.v1", "rewrite": "rewrite.v1"},
}
REVIEW_QUEUE = {
    **FIRST_ENGINE,
    "models": {"augment": None, "curate": None, "rewrite": None, "judge": None},
    "training": {**TRAINING_DEFAULTS, "packing": True},
    "train_backward": {"enabled": True, "include_corrections": True},
    "train_forward": {"enabled": True, "include_unreviewed": False},
    "review": {"mode": "human", "overlap": 1, "audit_fraction": 0.1, "lease_minutes": 30},
    "evaluation": {"enabled": True, "prompts": None, "prompt_set": None, "limit": None, "max_new_tokens": 256},
}


def test_the_hash_of_the_defaults_is_unchanged():
    assert config_hash(validate()) == DEFAULTS_HASH
    assert config_hash(validate({"prompts": PINNED_PROMPTS})) == PINNED_HASH
    assert config_hash(validate(OVERRIDE)) == OVERRIDE_HASH
    assert config_hash(parse(OVERRIDE).as_dict()) == OVERRIDE_HASH


@pytest.mark.parametrize(
    "override",
    [
        {},
        OVERRIDE,
        {"curation": {"keep": "rubric"}},
        {"curation": {"keep": "agreement_rubric", "threshold": 4.0, "min_agreement": 0.2, "ifd_band": [0.1, 0.9]}},
        {"review": {"mode": "skip", "overlap": 2}, "training": {"method": "full", "packing": True, "epochs": 1.5}},
    ],
)
def test_the_stored_json_reads_back_as_the_same_config(override):
    stored = validate(override)
    assert json.loads(json.dumps(stored)) == stored, "plain JSON: lists and dicts, no tuples or mappings"
    cfg = RoundConfig.from_dict(stored)
    assert cfg == parse(override)
    assert cfg.as_dict() == stored and RoundConfig.from_dict(cfg.as_dict()) == cfg


def test_the_dataclasses_are_the_one_list_of_keys_and_defaults():
    cfg = RoundConfig()
    assert set(DEFAULTS) | {"prompts"} == {f.name for f in dataclasses.fields(RoundConfig)}
    assert {k: v for k, v in cfg.as_dict().items() if k != "prompts"} == DEFAULTS
    assert TRAINING_DEFAULTS == cfg.training.as_dict() == TrainingConfig().as_dict()
    assert (cfg.curation.keep, cfg.curation.threshold, cfg.generation.repetition_penalty) == ("agreement", 0.1, 1.1)
    assert (cfg.review.mode, cfg.review.overlap, cfg.review.lease_minutes) == ("human", 1, 30)
    assert cfg.models == ModelsConfig() and cfg.models.get("augment") is None and cfg.models.get("evaluate") is None
    launched = parse()
    assert launched.prompts["curate"] == "curate.v1" and launched.heldout.ids is None
    assert launched.stage_order() == ("augment", "curate", "rewrite")


def test_the_literal_types_list_the_allowed_values():
    assert set(get_args(config.Backend)) == {*config.BACKENDS, config.FAKE_BACKEND}
    assert set(get_args(config.Order)) == set(config.ORDERS)
    assert get_args(config.ReviewMode) == config.REVIEW_MODES
    assert get_args(signals.KeepRule) == signals.KEEP_RULES
    assert get_args(training.Method) == training.METHODS


def test_a_first_engine_config_reads_as_it_ran():
    cfg = RoundConfig.from_dict(FIRST_ENGINE)
    # What the readers fell back to: rubric keep rule, no repetition penalty, no held-out pairs, base-model judge.
    assert cfg.curation == CurationConfig(keep="rubric", threshold=4.5, top_k=None, rationale=False)
    assert cfg.generation.repetition_penalty == 1.0
    assert cfg.heldout_ids == frozenset() and cfg.heldout == HeldoutConfig(fraction=0.0, min=0, max=0, ids=())
    assert cfg.models.judge is None
    assert cfg.review == ReviewConfig(mode="human", overlap=1, audit_fraction=0.1, lease_minutes=30)
    assert (cfg.evaluation.prompts, cfg.evaluation.prompt_set) == (None, None)
    assert cfg.prompts.get("judge") is None and cfg.prompts["curate"] == "curate.v1"


def test_a_review_queue_config_reads_as_it_ran():
    cfg = RoundConfig.from_dict(REVIEW_QUEUE)
    assert (cfg.curation.keep, cfg.curation.threshold) == ("rubric", 4.5)
    assert (cfg.curation.min_agreement, cfg.curation.ifd_band) == (None, None)
    assert cfg.generation.repetition_penalty == 1.0
    assert cfg.heldout_ids == frozenset()
    assert cfg.training.packing is True and cfg.training == TrainingConfig(packing=True)


def test_old_configs_keep_and_rank_as_their_dicts_did():
    """signals.rule_of / keep_score / keep_decisions read a stored `curation` dict with .get() fallbacks; the
    typed section of the same dict decides the same."""
    rows = [{"rubric": 4.8, "agreement": -0.1}, {"rubric": 3.0, "agreement": 0.5}, {"rubric": None, "agreement": 1}]
    for stored in (FIRST_ENGINE["curation"], {"threshold": 4.5, "keep": None}, {"top_k": 1}):
        typed = CurationConfig.from_dict(stored)
        assert typed.keep == signals.rule_of(stored) == "rubric"
        assert signals.keep_decisions(rows, [False] * 3, typed) == signals.keep_decisions(rows, [False] * 3, stored)
        assert [signals.keep_score(r, typed) for r in rows] == [4.8, 3.0, None]


def test_missing_or_null_sections_take_what_applied():
    partial = RoundConfig.from_dict({"order": "rewrite_filter", "heldout": None})
    assert partial.heldout == HeldoutConfig(fraction=0.0, min=0, max=0, ids=()), "null reads as absent"
    assert partial.heldout_ids == frozenset()
    assert partial.stage_order() == ("augment", "rewrite", "curate")
    assert partial.next_stage("curate") == "review" and partial.next_stage("evaluate") is None
    assert RoundConfig.from_dict({}).heldout_ids == frozenset()
    assert stage_order({"order": "rewrite_filter"}) == partial.stage_order(), "the functions still take a dict"


def test_the_config_is_frozen():
    cfg = parse(OVERRIDE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.curation.top_k = 9  # type: ignore[misc]
    assert cfg.heldout.ids == (3, 1) and cfg.evaluation.prompts == ("a", "b"), "lists read as tuples"
    with pytest.raises(TypeError):
        cfg.prompts["backward"] = "backward.v9"  # type: ignore[index]
    changed = cfg.replace(heldout=cfg.heldout.replace(ids=(5,)))
    assert changed.heldout_ids == {5} and cfg.heldout_ids == {1, 3}, "replace makes a copy"


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"samples": 3}, "unknown config key 'samples'"),
        ({"generation": {"temprature": 1}}, "unknown config key 'generation.temprature'"),
        ({"curation": {"keep": "rubric", "floor": 1}}, "unknown config key 'curation.floor'"),
        ({"training": {"lr": 1e-4}}, "unknown config key 'training.lr'"),
    ],
)
def test_unknown_keys_are_refused(stored, message):
    with pytest.raises(ConfigError, match=message):
        RoundConfig.from_dict(stored)
    with pytest.raises(ConfigError, match=message):
        parse(stored)


def test_round_cfg_is_the_typed_view_of_its_stored_config():
    rnd = Round(config=validate({"seed": 7, "review": {"mode": "skip"}}))
    assert rnd.cfg.seed == 7 and rnd.cfg.next_stage("rewrite") == "train_forward"
    rnd.config["seed"] = 8  # never stale: read at each access
    assert rnd.cfg.seed == 8
    assert Round(config=FIRST_ENGINE).cfg == RoundConfig.from_dict(FIRST_ENGINE)
