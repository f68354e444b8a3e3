"""`{% load markup %}` … `{{ text|markdown }}`: markdown written by people, rendered and sanitised (app/markup.py).

Only for text the app's own users write (a round's guidelines). Web text from a corpus is never rendered: it is
always escaped."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from app.markup import render_markdown

register = template.Library()


@register.filter
def markdown(value: object) -> SafeString:
    # Safe to mark: render_markdown's output went through the sanitiser's allow-list (nh3).
    return mark_safe(render_markdown(value if isinstance(value, str) else ""))  # noqa: S308
