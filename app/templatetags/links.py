"""`{% load links %}` … `{{ value|http_url }}`: a URL from the data only when it is http(s), else empty.

Corpus records carry whatever URL their source had; `javascript:`, `data:` or `vbscript:` in an href would run
in our origin when clicked. Templates link only what this filter returns and show anything else as text."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import template

register = template.Library()


@register.filter
def http_url(value: object) -> str:
    if not isinstance(value, str):
        return ""
    url = value.strip()
    # Browsers drop tabs and newlines inside a URL and ignore leading control characters: "java\tscript:" runs.
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else ""
