"""Forms of the annotation pages."""

from __future__ import annotations

from django import forms

from annotation.models import SeedExample
from annotation.queue import REJECT_REASONS
from app.params import MAX_BIGINT, MAX_INT
from generation.pipeline import formats


class AdjudicateForm(forms.Form):
    candidate_id = forms.IntegerField(min_value=1, max_value=MAX_BIGINT)
    decision = forms.ChoiceField(choices=[("accept", "accept"), ("reject", "reject")])


class DecisionForm(forms.Form):
    candidate_id = forms.IntegerField(min_value=1, max_value=MAX_BIGINT)
    version = forms.IntegerField(min_value=1, max_value=MAX_INT)
    action = forms.ChoiceField(choices=[(a, a) for a in ("accept", "edit", "reject", "skip")])
    instruction = forms.CharField(required=False, strip=True)
    response = forms.CharField(required=False, strip=True)
    reason = forms.ChoiceField(required=False, choices=[("", ""), *REJECT_REASONS.items(), ("other", "other")])
    reason_text = forms.CharField(required=False, max_length=2000)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("action") == "reject" and not data.get("reason"):
            self.add_error("reason", "Pick a reason (keys 1–7) to reject.")
        if data.get("action") == "edit" and not (data.get("instruction") and data.get("response")):
            self.add_error("instruction", "An edited pair needs an instruction and a response.")
        return data

    def error_text(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)


class SeedImportForm(forms.Form):
    """The options of a seed import (the file itself is checked by the view: size, then the formats module)."""

    format = forms.ChoiceField(required=False, choices=[("", "detect"), *((f, f) for f in formats.FORMATS_UPLOAD)])
    source = forms.ChoiceField(required=False, choices=[("", ""), *((s, s) for s in formats.SOURCES)])
    all_turns = forms.BooleanField(required=False)
    map_instruction = forms.CharField(required=False, max_length=200)
    map_response = forms.CharField(required=False, max_length=200)
    map_input = forms.CharField(required=False, max_length=200)

    def mapping(self) -> dict[str, str]:
        """target → column for the mapping fields filled in."""
        return {
            name.removeprefix("map_"): value
            for name, value in self.cleaned_data.items()
            if name.startswith("map_") and value
        }

    def error_text(self) -> str:
        return " ".join(f"{name}: {e}" for name, errors in self.errors.items() for e in errors)


class SeedExampleForm(forms.ModelForm):
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    tags = forms.CharField(required=False, help_text="comma-separated")

    class Meta:
        model = SeedExample
        fields = ["instruction", "response", "source"]
        widgets = {
            "instruction": forms.Textarea(attrs={"rows": 3}),
            "response": forms.Textarea(attrs={"rows": 12}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["version"].initial = self.instance.version
            self.fields["tags"].initial = ", ".join(self.instance.tags)

    def clean_tags(self) -> list[str]:
        tags = [t.strip()[:64] for t in self.cleaned_data["tags"].split(",") if t.strip()]
        return sorted(set(tags))
