"""The project's form renderer: form templates come through settings.TEMPLATES (so templates/ can hold them) and
`{{ form.field.as_field_group }}` renders templates/forms/field.html (label, widget, help text, errors)."""

from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    field_template_name = "forms/field.html"
