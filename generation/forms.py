"""Forms of the admin pages: launching a round, registering a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings

from generation import selectors
from generation.models import ModelVersion, Round
from generation.pipeline import config as round_config
from generation.pipeline import evaluation
from generation.pipeline.config import ConfigError
from generation.services.rounds import round_check_devices

MAX_PROMPT_FILE_BYTES = 5 * 2**20


class RoundLaunchForm(forms.Form):
    corpus = forms.ModelChoiceField(queryset=selectors.launchable_corpora().order_by("name"), empty_label=None)
    base_model = forms.ModelChoiceField(
        queryset=ModelVersion.objects.filter(role__in=["base", "forward"]).order_by("-created_at"),
        empty_label=None,
        help_text="The model B that every backward and forward model of the round is fine-tuned from.",
    )
    backend = forms.ChoiceField(
        choices=[(b, b) for b in round_config.BACKENDS], help_text="auto: vLLM where it imports, else transformers"
    )
    tensor_parallel_size = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1024,
        label="Tensor parallel size",
        help_text="GPUs each vLLM engine splits the model over; a worker must own that many "
        "(BACKFORTH_GPUS_PER_WORKER). Default 1; the transformers backend ignores it.",
    )
    sample_size = forms.IntegerField(min_value=1, max_value=10_000_000, help_text="segments to backtranslate")
    chunk_size = forms.IntegerField(min_value=1, max_value=100_000, help_text="segments per job")
    keep_rule = forms.ChoiceField(
        choices=[
            ("agreement", "agreement: how much the instruction explains the response (works at every model size)"),
            ("rubric", "rubric: the model's 1–5 rating (Humpback; needs a model that follows a rubric)"),
            ("agreement_rubric", "agreement above its floor, then the rubric"),
            ("ifd", "IFD band (Superfiltering: instruction-following difficulty inside [low, high))"),
        ],
        label="Keep by",
    )
    keep = forms.ChoiceField(choices=[("threshold", "score threshold"), ("top_k", "top k")], widget=forms.RadioSelect)
    threshold = forms.FloatField(
        required=False,
        help_text="on the signal's own scale: agreement in nats/token (default 0.1), rubric 1–5 (default 4.5)",
    )
    top_k = forms.IntegerField(min_value=1, required=False, help_text="keep the k best-scored pairs")
    min_agreement = forms.FloatField(
        required=False, help_text="optional floor on agreement under any rule (0: the instruction must help)"
    )
    ifd_low = forms.FloatField(required=False, min_value=0, help_text="IFD band, low end (optional)")
    ifd_high = forms.FloatField(
        required=False, min_value=0, help_text="IFD band, high end (IFD ≥ 1: the instruction does not help)"
    )
    order = forms.ChoiceField(
        choices=[("filter_rewrite", "curate, then rewrite the kept pairs"), ("rewrite_filter", "rewrite, then curate")]
    )
    review = forms.ChoiceField(
        choices=[
            ("human", "annotators review; the round waits until the review is closed"),
            ("skip", "no review: the kept pairs train the forward model (Humpback's automatic loop)"),
        ]
    )
    overlap = forms.IntegerField(
        min_value=1, max_value=10, help_text="distinct annotators per pair (2+ measures agreement)"
    )
    audit_fraction = forms.FloatField(
        min_value=0, max_value=1, help_text="share of the dropped pairs sampled into the queue for audit"
    )
    train_backward = forms.BooleanField(required=False, help_text="fine-tune M_yx on the seed set first")
    training_method = forms.ChoiceField(choices=[("lora", "LoRA (merged after training)"), ("full", "full")])
    max_steps = forms.IntegerField(min_value=1, required=False, help_text="cap on optimiser steps per training run")
    augment_model = forms.CharField(
        required=False, help_text="backward model directory to use instead of training one", max_length=1000
    )
    curate_model = forms.CharField(required=False, max_length=1000, help_text="default: the previous forward model")
    rewrite_model = forms.CharField(required=False, max_length=1000, help_text="default: the base model")
    judge_model = forms.CharField(required=False, max_length=1000, help_text="default: the base model")
    eval_prompts = forms.FileField(
        required=False, help_text='JSONL with a prompt per line ({"prompt": …}); default: the shipped set'
    )
    eval_limit = forms.IntegerField(min_value=1, required=False, help_text="evaluate on the first N prompts only")
    guidelines = forms.CharField(
        required=False,
        max_length=Round.GUIDELINES_MAX_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        label="Guidelines for annotators",
        help_text="Markdown, shown on the review screen (key G); you can edit it while the round runs",
    )

    @classmethod
    def initial_values(cls) -> dict[str, Any]:
        d = round_config.RoundConfig()
        default_base = ModelVersion.objects.filter(role="base", path=str(Path(settings.DEFAULT_MODEL).resolve()))
        newest = selectors.launchable_corpora().order_by("-created_at").first()
        return {
            "corpus": newest,
            "base_model": default_base.first() or ModelVersion.objects.filter(role="base").first(),
            "backend": d.backend,
            "tensor_parallel_size": d.tensor_parallel_size,
            "sample_size": d.sample_size,
            "chunk_size": d.chunk_size,
            "keep_rule": d.curation.keep,
            "keep": "threshold",
            "threshold": d.curation.threshold,
            "order": d.order,
            "review": d.review.mode,
            "overlap": d.review.overlap,
            "audit_fraction": d.review.audit_fraction,
            "train_backward": d.train_backward.enabled,
            "training_method": d.training.method,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        rule = data["keep_rule"]
        if data["keep"] == "threshold" and data.get("threshold") is None and rule != "ifd":
            self.add_error("threshold", "Give a threshold, or keep the top k instead.")
        if data["keep"] == "top_k" and not data.get("top_k"):
            self.add_error("top_k", "Give k, or keep by threshold instead.")
        prompts = None
        upload = data.get("eval_prompts")
        if upload is not None:
            if upload.size > MAX_PROMPT_FILE_BYTES:
                self.add_error("eval_prompts", f"The file is larger than {MAX_PROMPT_FILE_BYTES // 2**20} MiB.")
            else:
                try:
                    prompts = evaluation.parse_prompts_jsonl(upload.read().decode("utf-8"))
                except UnicodeDecodeError:
                    self.add_error("eval_prompts", f"{upload.name} is not UTF-8 text.")
                except evaluation.PromptFileError as exc:
                    self.add_error("eval_prompts", f"{upload.name}: {exc}")
        if self.errors:
            return data
        config = {
            "backend": data["backend"],
            "tensor_parallel_size": data.get("tensor_parallel_size") or 1,
            "sample_size": data["sample_size"],
            "chunk_size": data["chunk_size"],
            "order": data["order"],
            "curation": {
                "keep": rule,
                "threshold": data["threshold"] if data["keep"] == "threshold" and rule != "ifd" else None,
                "top_k": data["top_k"] if data["keep"] == "top_k" else None,
                "min_agreement": data.get("min_agreement"),
                "ifd_band": _ifd_band(data, rule),
            },
            "review": {"mode": data["review"], "overlap": data["overlap"], "audit_fraction": data["audit_fraction"]},
            "train_backward": {"enabled": data["train_backward"]},
            "training": {"method": data["training_method"], "max_steps": data.get("max_steps")},
            "models": {
                stage: (data.get(f"{stage}_model") or "").strip() or None
                for stage in ("augment", "curate", "rewrite", "judge")
            },
            "evaluation": {
                "limit": data.get("eval_limit"),
                "prompts": prompts,
                "prompt_set": upload.name if prompts else None,
            },
        }
        try:
            data["config"] = round_config.validate(config)
        except ConfigError as exc:
            raise forms.ValidationError(str(exc)) from exc
        try:
            round_check_devices(round_config.RoundConfig.from_dict(data["config"]))
        except ConfigError as exc:
            self.add_error("tensor_parallel_size", str(exc))
        return data


def _ifd_band(data: dict[str, Any], rule: str) -> list[float | None] | None:
    low, high = data.get("ifd_low"), data.get("ifd_high")
    if low is None and high is None:
        return [None, 1.0] if rule == "ifd" else None
    return [low, high]


class GuidelinesForm(forms.Form):
    guidelines = forms.CharField(
        required=False,
        max_length=Round.GUIDELINES_MAX_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 12}),
        label="Guidelines (markdown)",
    )


class ModelRegisterForm(forms.Form):
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=[("base", "base"), ("judge", "judge")])
    path = forms.CharField(max_length=1000, help_text="a local Hugging Face model directory (with config.json)")

    def clean_path(self) -> str:
        path = Path(self.cleaned_data["path"]).expanduser()
        if not (path / "config.json").is_file():
            raise forms.ValidationError(f"{path} is not a Hugging Face model directory (no config.json there).")
        return str(path.resolve())
