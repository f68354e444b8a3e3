"""Markdown written by people (a round's guidelines) → HTML that is safe to put in a page.

Two maintained libraries, each doing one job: markdown-it-py (CommonMark, plus GFM tables and strikethrough)
turns the text into HTML, inline HTML included; nh3 (ammonia) then keeps only the tags and attributes below and
http(s)/mailto links. Nothing of the input reaches the page without passing the sanitiser: `<script>` and
`<style>` are dropped with their content, `on…=` handlers and `javascript:` URLs are removed. Pure: no Django.
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt

TAGS = frozenset(
    {
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "kbd", "samp"),
        *("strong", "em", "b", "i", "u", "s", "del", "ins", "mark", "sub", "sup", "small"),
        *("ul", "ol", "li", "dl", "dt", "dd", "details", "summary", "a", "abbr"),
        *("table", "thead", "tbody", "tr", "th", "td", "caption"),
    }
)
ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "ol": {"start"}, "th": {"scope"}, "td": {"colspan"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Dropped with everything inside them (other unknown tags lose the tag and keep their text).
DROP_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template", "noscript"})

_MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


@functools.lru_cache(maxsize=64)
def render_markdown(text: str) -> str:
    """`text` (markdown, with or without inline HTML) as sanitised HTML; "" for blank text. Cached: the same
    guidelines are rendered on every page load of a round's review screen."""
    if not text.strip():
        return ""
    return nh3.clean(
        _MARKDOWN.render(text),
        tags=set(TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
