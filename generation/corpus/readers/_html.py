"""HTML bytes → main text, shared by the WARC reader (one page per response record) and the HTML reader (one page
per file): the charset from the declared one, else resiliparse's detection (BOM, `<meta charset>`, content),
then resiliparse's `extract_plain_text(tree, main_content=True)`, which drops navigation, scripts and
boilerplate. resiliparse is imported only when a page is read.

Pure module (no Django, no torch).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

_HEAD_CHARS = 4096
_SAVED_FROM = re.compile(r"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    text: str
    """The main text, stripped ('' when the page has none)."""
    charset: str
    tree: Any
    """resiliparse's `HTMLTree` of the page, for its title and links."""
    head: str
    """The first characters of the HTML text (comments before `<html>` are not in the tree)."""


def main_text(body: bytes, declared_charset: str | None = None, *, strict: bool = False) -> Page:
    """The page's main text. `strict`: a body that is not text in its charset, UTF-8 or cp1252 raises
    UnicodeDecodeError (else such bytes are dropped, as a browser would show them)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str
    from resiliparse.parse.html import HTMLTree

    charset = charset_of(declared_charset, body)
    html = bytes_to_str(body, charset, errors="strict" if strict else "ignore")
    tree = HTMLTree.parse(html)
    text = extract_plain_text(tree, main_content=True).strip()
    return Page(text=text, charset=charset, tree=tree, head=html[:_HEAD_CHARS])


def charset_of(declared: str | None, body: bytes) -> str:
    """The Python codec name of the declared charset if Python knows it, else of the detected one, else UTF-8."""
    from resiliparse.parse.encoding import detect_encoding

    for candidate in (declared, detect_encoding(body, from_html_meta=True)):
        if candidate:
            try:
                return codecs.lookup(candidate).name
            except LookupError:
                continue
    return "utf-8"


def page_title(page: Page) -> str:
    return (page.tree.title or "").strip()


def page_url(page: Page) -> str:
    """Where a saved page came from: its canonical link, its `og:url`, or the "saved from url" comment browsers
    write when saving a page; only an absolute http(s) URL, else ''."""
    found = []
    head_node = page.tree.head
    if head_node is not None:
        link = head_node.query_selector("link[rel~=canonical]")
        meta = head_node.query_selector('meta[property="og:url"]')
        found += [link.getattr("href") if link else None, meta.getattr("content") if meta else None]
    saved = _SAVED_FROM.search(page.head)
    found.append(saved.group(1) if saved else None)
    for url in found:
        url = (url or "").strip()
        if url.lower().startswith(("http://", "https://")):
            return url
    return ""
