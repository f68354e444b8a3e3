import pytest

from generation.pipeline.config import ConfigError, chunked, config_hash, stage_order, validate


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
