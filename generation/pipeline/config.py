"""A round's configuration: its typed sections and defaults, validation and its hash. Pure.

The config is frozen at launch (merged with these defaults, validated, hashed); every candidate's lineage
carries the hash, so two artifacts made under different settings can never be confused. A round stores it as
JSON (`Round.config`); `RoundConfig` is the typed view its readers use (`Round.cfg`), and its fields, with
their defaults, are the one list of the keys (DEFAULTS is made from them).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from generation.pipeline import signals, training
from generation.pipeline.frozen import ConfigError, Section, empty_mapping
from generation.pipeline.prompts import prompt_versions
from generation.pipeline.signals import CurationConfig
from generation.pipeline.training import TrainingConfig

__all__ = [
    "ConfigError",
    "CurationConfig",
    "EvaluationConfig",
    "GenerationConfig",
    "HeldoutConfig",
    "ModelsConfig",
    "ReviewConfig",
    "RoundConfig",
    "TrainBackwardConfig",
    "TrainForwardConfig",
    "TrainingConfig",
]

Order = Literal["filter_rewrite", "rewrite_filter"]
ORDERS: dict[str, tuple[str, ...]] = {
    # DESIGN.md step 4: filter then rewrite (default), or rewrite then filter.
    "filter_rewrite": ("augment", "curate", "rewrite"),
    "rewrite_filter": ("augment", "rewrite", "curate"),
}
MODEL_STAGES = ("augment", "curate", "rewrite")
# Stages run by jobs on the `gpu` queue; `review` is the human stage between rewrite and train_forward.
JOB_STAGES = ("train_backward", *MODEL_STAGES, "train_forward", "evaluate")
MODEL_KEYS = (*MODEL_STAGES, "judge")
ReviewMode = Literal["human", "skip"]
REVIEW_MODES: tuple[ReviewMode, ...] = ("human", "skip")
Backend = Literal["auto", "vllm", "transformers", "fake"]
BACKENDS: tuple[Backend, ...] = ("auto", "vllm", "transformers")
# generation/backends/fake.py, for tests and the fast loop only: valid only where the caller allows it (the registry
# says where: pytest, or BACKFORTH_ALLOW_FAKE_BACKEND=1), and never among the launch form's choices.
FAKE_BACKEND: Backend = "fake"


@dataclass(frozen=True)
class ModelsConfig(Section):
    """None: the round's own models (augment: its backward model; curate: the previous round's forward model;
    rewrite and judge: the base model). A path here replaces it (and skips training a backward model)."""

    augment: str | None = None
    curate: str | None = None
    rewrite: str | None = None
    judge: str | None = None  # rounds stored before the judge was configurable: the base model

    def get(self, stage: str) -> str | None:
        """The model directory configured for `stage` (None: the round's own; also for a stage with no key)."""
        return getattr(self, stage) if stage in MODEL_KEYS else None


@dataclass(frozen=True)
class HeldoutConfig(Section):
    """A fixed share of the human-written seed examples that no model of the round trains on: the held-out NLL
    of reference answers and instructions is measured on it. `ids` is filled in at launch."""

    fraction: float = 0.1
    min: int = 8
    max: int = 200
    ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class TrainBackwardConfig(Section):
    """Backward model M_yx: seed pairs reversed + instructions humans corrected in earlier rounds."""

    enabled: bool = True
    include_corrections: bool = True


@dataclass(frozen=True)
class TrainForwardConfig(Section):
    """Forward model M_{r+1}: the seed after feedback (+ the kept pairs nobody reviewed, if asked)."""

    enabled: bool = True
    include_unreviewed: bool = False


@dataclass(frozen=True)
class ReviewConfig(Section):
    """human: the round waits in review until a curator closes it; skip: Humpback's fully automatic loop (kept
    pairs train the forward model unreviewed, nothing joins the seed set). overlap: distinct annotators per pair
    (> 1 measures agreement); audit_fraction: share of the dropped pairs drawn at random into the queue, so
    curation precision/recall are measured on both sides; lease_minutes: how long a claimed pair stays taken."""

    mode: ReviewMode = "human"
    overlap: int = 1
    audit_fraction: float = 0.1
    lease_minutes: int = 30


@dataclass(frozen=True)
class EvaluationConfig(Section):
    """M_{r+1} vs M_r on held-out prompts, judged in both orders. prompts None: the shipped set (frozen into the
    config at launch, with prompt_set "builtin"; rounds stored before that read the shipped set)."""

    enabled: bool = True
    prompts: tuple[str, ...] | None = None
    prompt_set: str | None = None
    limit: int | None = None
    max_new_tokens: int = 256


@dataclass(frozen=True)
class GenerationConfig(Section):
    augment_max_new_tokens: int = 64
    rewrite_max_new_tokens: int = 512
    rationale_max_new_tokens: int = 160
    temperature: float = 0.0
    # Small models fall into loops under greedy decoding; the output gates catch what still gets through.
    repetition_penalty: float = 1.1

    LEGACY = {"repetition_penalty": 1.0}  # rounds stored before it generated without a penalty


@dataclass(frozen=True)
class RoundConfig(Section):
    """A round's frozen config, typed. `RoundConfig.from_dict(stored)` reads any round's stored JSON (keys it
    predates take the values that applied then), `as_dict()` is the JSON that is stored and hashed."""

    backend: Backend = "auto"
    models: ModelsConfig = field(default_factory=ModelsConfig)
    sample_size: int = 200
    # Items per chunk (one job; its requests go to the backend in one call per pass). 64 is the engine's batch
    # measured in `make bench` (issue 14): on 2 CPU cores vLLM wrote as many tokens/s in calls of 64 as in one call
    # of 256, and 20% fewer in calls of 8; a bigger chunk only delays a cancel (seen when its call returns).
    chunk_size: int = 64
    # Sequences per forward pass of the transformers backend (vLLM schedules a call's requests itself).
    batch_size: int = 8
    # GPUs each vLLM engine splits the model over (vLLM's tensor parallelism): a worker must own that many
    # (BACKFORTH_GPUS_PER_WORKER). The transformers backend runs on one device and ignores it.
    tensor_parallel_size: int = 1
    seed: int = 0
    max_segment_chars: int = 6000
    order: Order = "filter_rewrite"
    # The keep rule (pipeline/signals.py): which signal ranks the pairs, its threshold on that signal's scale or
    # a top_k, and optional floors. Gated pairs (pipeline/gates.py) are never kept.
    curation: CurationConfig = field(default_factory=CurationConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    train_backward: TrainBackwardConfig = field(default_factory=TrainBackwardConfig)
    train_forward: TrainForwardConfig = field(default_factory=TrainForwardConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    # The version of every prompt template in use (name -> "name.vN"), set by `validate`.
    prompts: Mapping[str, str] = field(default_factory=empty_mapping)

    # Rounds stored before the held-out split held nothing out.
    LEGACY = {"heldout": {"fraction": 0.0, "min": 0, "max": 0, "ids": []}}

    @property
    def heldout_ids(self) -> frozenset[int]:
        """The seed pairs frozen out of this round's training, for the held-out evaluation."""
        return frozenset(self.heldout.ids or ())

    def stage_order(self) -> tuple[str, ...]:
        """The model stages in this round's order (augment, then curate/rewrite as configured)."""
        return ORDERS[self.order]

    def round_stages(self) -> tuple[str, ...]:
        """Every stage of the round in order (DESIGN.md "The round"), review included."""
        return ("train_backward", *self.stage_order(), "review", "train_forward", "evaluate")

    def next_stage(self, stage: str) -> str | None:
        """The stage after `stage`; review is passed over when the round skips it. None after the last one."""
        order = self.round_stages()
        following = order[order.index(stage) + 1 :]
        if following and following[0] == "review" and self.review.mode == "skip":
            following = following[1:]
        return following[0] if following else None


# Today's defaults as the JSON a round stores (without `prompts`, which `validate` adds).
DEFAULTS: dict[str, Any] = {k: v for k, v in RoundConfig().as_dict().items() if k != "prompts"}


def _merge(base: dict[str, Any], override: dict[str, Any], path: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if key not in base and key != "prompts":
            raise ConfigError(f"unknown config key {where!r}")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value, f"{where}.")
        else:
            out[key] = value
    return out


def _positive_int(config: dict[str, Any], key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")


def parse(override: dict[str, Any] | None = None, *, allow_fake_backend: bool = False) -> RoundConfig:
    """Defaults merged with `override`, checked, with the prompt versions in use: the config a round is launched
    with. The fake backend is accepted only with `allow_fake_backend`
    (generation.backends.registry.fake_backend_allowed())."""
    config = _merge(DEFAULTS, override or {})
    if config["backend"] == FAKE_BACKEND:
        if not allow_fake_backend:
            raise ConfigError("backend 'fake' is for tests only (pytest, or BACKFORTH_ALLOW_FAKE_BACKEND=1)")
    elif config["backend"] not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {config['backend']!r}")
    if config["order"] not in ORDERS:
        raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {config['order']!r}")
    for key in ("sample_size", "chunk_size", "batch_size", "tensor_parallel_size", "max_segment_chars"):
        _positive_int(config, key, config[key])
    for key, value in config["generation"].items():
        if key.endswith("max_new_tokens"):
            _positive_int(config, f"generation.{key}", value)
    temperature = config["generation"]["temperature"]
    if not isinstance(temperature, int | float) or temperature < 0:
        raise ConfigError(f"generation.temperature must be >= 0, got {temperature!r}")
    _curation_defaults(config["curation"], (override or {}).get("curation") or {})
    try:
        signals.validate_curation(config["curation"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    penalty = config["generation"]["repetition_penalty"]
    if not isinstance(penalty, int | float) or isinstance(penalty, bool) or not 1 <= penalty <= 2:
        raise ConfigError(f"generation.repetition_penalty must be between 1 and 2, got {penalty!r}")
    held = config["heldout"]
    if not isinstance(held["fraction"], int | float) or not 0 <= held["fraction"] < 1:
        raise ConfigError(f"heldout.fraction must be in [0, 1), got {held['fraction']!r}")
    for key in ("min", "max"):
        if not isinstance(held[key], int) or isinstance(held[key], bool) or held[key] < 0:
            raise ConfigError(f"heldout.{key} must be a non-negative integer, got {held[key]!r}")
    for stage, path in config["models"].items():
        if stage not in MODEL_KEYS:
            raise ConfigError(f"models.{stage}: not a model stage ({', '.join(MODEL_KEYS)})")
        if path is not None and not isinstance(path, str):
            raise ConfigError(f"models.{stage} must be a model directory path or null")
    try:
        training.validate_training(config["training"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if config["review"]["mode"] not in REVIEW_MODES:
        raise ConfigError(f"review.mode must be one of {', '.join(REVIEW_MODES)}, got {config['review']['mode']!r}")
    _positive_int(config, "review.overlap", config["review"]["overlap"])
    _positive_int(config, "review.lease_minutes", config["review"]["lease_minutes"])
    audit = config["review"]["audit_fraction"]
    if not isinstance(audit, int | float) or not 0 <= audit <= 1:
        raise ConfigError(f"review.audit_fraction must be between 0 and 1, got {audit!r}")
    ev = config["evaluation"]
    _positive_int(config, "evaluation.max_new_tokens", ev["max_new_tokens"])
    if ev["limit"] is not None:
        _positive_int(config, "evaluation.limit", ev["limit"])
    if ev["prompts"] is not None and (
        not isinstance(ev["prompts"], list) or not all(isinstance(p, str) and p.strip() for p in ev["prompts"])
    ):
        raise ConfigError("evaluation.prompts must be a list of non-empty strings or null")
    config.setdefault("prompts", prompt_versions())
    return RoundConfig.from_dict(config)


def validate(override: dict[str, Any] | None = None, *, allow_fake_backend: bool = False) -> dict[str, Any]:
    """`parse` as the JSON a round stores (and hashes)."""
    return parse(override, allow_fake_backend=allow_fake_backend).as_dict()


DEFAULT_THRESHOLDS = {"agreement": 0.1, "rubric": 4.5, "agreement_rubric": 4.5, "ifd": None}


def _curation_defaults(cur: dict[str, Any], asked: dict[str, Any]) -> None:
    """Fill what the override left out so that it means what it says: a top_k alone replaces the default
    threshold, another keep rule gets its own default threshold, the IFD rule its band."""
    if "top_k" in asked and asked["top_k"] is not None and "threshold" not in asked:
        cur["threshold"] = None
    elif "keep" in asked and "threshold" not in asked and "top_k" not in asked:
        cur["threshold"] = DEFAULT_THRESHOLDS.get(cur["keep"])
    if cur.get("keep") == "ifd" and cur.get("ifd_band") is None and "ifd_band" not in asked:
        cur["ifd_band"] = [None, 1.0]


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def stage_order(config: RoundConfig | Mapping[str, Any]) -> tuple[str, ...]:
    """The model stages in this round's order (augment, then curate/rewrite as configured)."""
    return RoundConfig.of(config).stage_order()


def round_stages(config: RoundConfig | Mapping[str, Any]) -> tuple[str, ...]:
    """Every stage of the round in order (DESIGN.md "The round"), review included."""
    return RoundConfig.of(config).round_stages()


def next_stage(config: RoundConfig | Mapping[str, Any], stage: str) -> str | None:
    """The stage after `stage`; review is passed over when the round skips it. None after the last one."""
    return RoundConfig.of(config).next_stage(stage)


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
