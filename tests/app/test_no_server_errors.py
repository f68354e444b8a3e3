"""No input makes a page answer 5xx: every URL pattern, every role, every method, malformed values.

The walk finds the URL patterns itself (a new view is walked without editing this file), fills their path
parameters with existing, unknown and odd values, and sends each malformed value as every query/form field
any view reads. A 5xx is a bug whatever the input; 400/403/404/405/409 with a message are the answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from annotation import queue
from tests.factories import (
    CandidateFactory,
    ModelVersionFactory,
    RoundFactory,
    SeedExampleFactory,
    SegmentFactory,
    UserFactory,
)

BAD_VALUES = [
    "²",  # a non-ASCII digit: str.isdigit() says yes, int() says yes, the database says no
    "99999999999999999999999",
    "-1",
    "1.5",
    "abc",
    "",
    "\x00",
    "😀",
    "a" * 5000,
    "//evil.example/x",
    "javascript:alert(1)",
]
# Every query or form field some view reads (the walk sends each bad value in all of them at once).
FIELDS = [
    "page",
    "round",
    "q",
    "source",
    "tag",
    "author",
    "active",
    "format",
    "unreviewed",
    "ids",
    "action",
    "value",
    "next",
    "candidate_id",
    "version",
    "decision",
    "instruction",
    "response",
    "reason",
    "reason_text",
    "corpus",
    "base_model",
    "keep_rule",
    "threshold",
    "top_k",
    "sample_size",
    "chunk_size",
    "seed",
    "file",
    "name",
    "text",
    "stage",
    "number",
    "pk",
    "tags",
    "username",
    "password",
]
# Writes that end a round's review run last, so the rest of the walk sees a round in review.
LAST = ("cancel", "review/close")
# Django admin's model pages are Django's own (its index, login and the RQ dashboard are walked).
SKIP_PREFIXES = ("admin/axes", "admin/auth", "admin/annotation", "admin/generation", "admin/django_rq", "admin/(")


def _patterns(resolvers: list, prefix: str = "") -> list[str]:
    out: list[str] = []
    for p in resolvers:
        if isinstance(p, URLResolver):
            out += _patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            out.append(prefix + str(p.pattern))
    return out


def _fill(pattern: str, ids: dict[str, list[str]]) -> list[str]:
    """Concrete paths for a pattern: each path parameter takes each of its candidate values in turn."""
    if pattern.startswith("^") or "(?P" in pattern:
        literal = re.sub(r"[\^$?]|/\?|\(\?P<\w+>[^)]*\)\??", "", pattern).replace("\\", "")
        return ["/" + literal.strip("/") + "/"] if literal else []
    params = re.findall(r"<(?:(\w+):)?(\w+)>", pattern)
    choices = []
    for conv, name in params:
        odd = ["0", "987654"] if conv == "id" else ["987654", "²", "x" * 40]
        choices.append((f"<{conv + ':' if conv else ''}{name}>", ids.get(name, ["1"]) + odd))
    # One parameter varies at a time, the others at their first (existing) value: every value is tried in
    # every position without the full product.
    paths = set()
    for i, (_, values) in enumerate(choices):
        for value in values:
            path = "/" + pattern
            for j, (token, vals) in enumerate(choices):
                path = path.replace(token, value if i == j else vals[0], 1)
            paths.add(path)
    paths = paths or {"/" + pattern}
    return [p.replace("^", "").replace("$", "") for p in paths]


@pytest.fixture
def world(db, redis_conn) -> dict[str, Any]:
    review = RoundFactory(state="review")
    cands = [CandidateFactory(round=review, status="kept", score=4.0 + i / 10) for i in range(4)]
    queue.queue_build(round=review)
    closed = RoundFactory(state="closed", corpus=review.corpus)
    SegmentFactory(corpus=review.corpus, url="javascript:alert(1)")
    seed = SeedExampleFactory()
    ModelVersionFactory()
    return {
        "number": [str(review.number), str(closed.number)],
        "pk": [str(seed.pk), str(review.corpus_id)],
        "stage": ["augment", "train_forward"],
        "action": ["retry", "cancel"],
        "candidates": cands,
    }


def test_no_url_answers_5xx_to_any_role_or_malformed_input(world):
    errors: list[str] = []

    def record(sender: Any, request: Any = None, **kw: Any) -> None:
        import sys

        errors.append(f"{request.method} {request.get_full_path()[:120]}: {sys.exc_info()[1]!r}")

    got_request_exception.connect(record)
    users = [None] + [UserFactory(role=r) for r in ("annotator", "curator", "admin")]
    paths = sorted(
        {path for pattern in _patterns(get_resolver().url_patterns) for path in _fill(pattern, world)},
        key=lambda p: (any(word in p for word in LAST), p),
    )
    paths = [p for p in paths if not p.lstrip("/").startswith(SKIP_PREFIXES)]
    # Floors, not counts: the walk finds the URL patterns itself, so a new view adds paths (and requests) without
    # an edit here; the floors catch a walk that finds next to nothing.
    assert len(paths) > 60, paths
    failures: list[str] = []
    sent = 0
    try:
        for user in users:
            client = Client(raise_request_exception=False)
            if user is not None:
                client.force_login(user)
            for path in paths:
                for method in ("get", "post", "delete"):
                    payloads = [{}] + [dict.fromkeys(FIELDS, bad) for bad in BAD_VALUES]
                    if user is None or method == "delete":
                        payloads = payloads[:2]  # anonymous: a login redirect whatever the input
                    for data in payloads:
                        response = getattr(client, method)(path, data) if method != "delete" else client.delete(path)
                        sent += 1
                        if "logout" in path and user is not None:
                            client.force_login(user)  # the walk goes on as this user
                        if response.status_code >= 500:
                            role = getattr(user, "username", "anonymous")
                            failures.append(f"{role} {method.upper()} {path} {str(data)[:60]} → {response.status_code}")
    finally:
        got_request_exception.disconnect(record)
    assert sent > 3000
    assert not failures, "\n".join(failures[:40] + errors[:40])


def test_parameters_are_parsed_strictly():
    from app.params import parse_id, parse_ids

    assert [parse_id(v) for v in ("7", " 7 ", "²", "٣", "-1", "0", "1.5", "", None, "9" * 30)] == [7, 7] + [None] * 8
    assert parse_id("3000000000", maximum=2**31 - 1) is None
    assert parse_ids(["3", "x", "3", "²", "4"]) == [3, 4]


def test_next_only_leads_back_to_this_site(client, db):
    client.force_login(UserFactory(role="curator"))
    for evil in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)", "\\\\evil.example"):
        response = client.post("/seed/bulk/", {"ids": "1", "action": "deactivate", "next": evil})
        assert response.status_code == 302 and response["Location"] == "/seed/", evil
    ok = client.post("/seed/bulk/", {"ids": "1", "action": "deactivate", "next": "/seed/?page=2"})
    assert ok["Location"] == "/seed/?page=2"


def test_a_nul_byte_is_a_400_with_a_message(client, db):
    client.force_login(UserFactory(role="curator"))
    response = client.get("/seed/", {"q": "a\x00b"})
    assert response.status_code == 400 and "NUL byte" in response.content.decode()
