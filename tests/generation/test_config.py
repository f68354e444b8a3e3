import pytest

from generation.pipeline.config import ConfigError, chunked, config_hash, stage_order, validate


def test_defaults_follow_the_papers_and_record_prompt_versions():
    config = validate()
    assert config["curation"]["threshold"] == 4.5
    assert stage_order(config) == ("augment", "curate", "rewrite")
    assert config["prompts"]["curate"] == "curate.v1"


def test_overrides_merge_and_change_the_hash():
    a, b = validate(), validate({"curation": {"threshold": 4.0}, "order": "rewrite_filter"})
    assert b["curation"] == {"threshold": 4.0, "top_k": None, "rationale": False}
    assert stage_order(b) == ("augment", "rewrite", "curate")
    assert config_hash(a) != config_hash(b) and config_hash(a) == config_hash(validate())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"backend": "tpu"}, "backend must be one of"),
        ({"order": "sideways"}, "order must be one of"),
        ({"sample_size": 0}, "sample_size must be a positive integer"),
        ({"chunk_size": "8"}, "chunk_size must be a positive integer"),
        ({"curation": {"threshold": 7}}, "curation.threshold must be between 1 and 5"),
        ({"curation": {"threshold": None}}, "exactly one of threshold"),
        ({"curation": {"top_k": 10}}, "exactly one of threshold"),
        ({"samples": 3}, "unknown config key 'samples'"),
        ({"generation": {"temprature": 1}}, "unknown config key 'generation.temprature'"),
        ({"models": {"augment": 3}}, "models.augment must be"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(override)


def test_chunked():
    assert chunked([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunked([], 3) == []
