"""The error log: a 500 lands in errors.log with its method and path, and the status page reads it back."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from app.errorlog import recent_errors
from tests.factories import UserFactory


def test_tests_log_outside_the_checkout():
    assert not str(settings.ERROR_LOG_FILE).startswith(str(settings.BASE_DIR))


@pytest.mark.urls("tests.app.urls_boom")
def test_a_view_that_raises_is_recorded_with_method_and_path():
    response = Client(raise_request_exception=False).get("/boom/?token=x")
    assert response.status_code == 500
    newest = recent_errors(limit=1)[0]
    assert newest["level"] == "ERROR"
    assert newest["logger"] == "django.request"
    assert (newest["method"], newest["path"]) == ("GET", "/boom/")  # no query string: it may hold secrets
    assert newest["exception"] == "ValueError: boom from the test view"


def test_recent_errors_reads_the_tail_newest_first(tmp_path):
    log = tmp_path / "errors.log"
    rows = [{"time": f"t{i}", "level": "ERROR", "logger": "x", "message": f"m{i}" + "." * 500} for i in range(2000)]
    log.write_text("\n".join(json.dumps(r) for r in rows[:-1]) + "\nnot json\n" + json.dumps(rows[-1]) + "\n")
    assert log.stat().st_size > 1_000_000
    got = recent_errors(limit=3, path=log)
    assert [g["time"] for g in got] == ["t1999", "t1998"]  # the garbage line took the third place and is skipped
    assert got[0]["path"] == "" and got[0]["exception"] == ""
    assert recent_errors(path=tmp_path / "absent.log") == []


def test_recent_errors_of_a_short_file_keeps_its_first_line(tmp_path):
    log = tmp_path / "errors.log"
    log.write_text(json.dumps({"time": "t0", "level": "ERROR", "message": "only"}) + "\n")
    assert [e["message"] for e in recent_errors(limit=10, path=log)] == ["only"]


@pytest.mark.django_db
@pytest.mark.urls("tests.app.urls_boom")
def test_status_page_shows_last_errors_and_no_redis_password(client, settings):
    Client(raise_request_exception=False).get("/boom/")
    settings.ROOT_URLCONF = "app.urls"
    settings.REDIS_URL = "redis://:hunter2-secret@127.0.0.1:6379/14"  # what the page prints, not what it uses
    client.force_login(UserFactory(role="admin"))
    html = client.get(reverse("status")).content.decode()
    assert "Last errors" in html and "ValueError: boom from the test view" in html and "/boom/" in html
    assert "hunter2-secret" not in html
