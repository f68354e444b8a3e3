"""Login rate limiting, security headers (CSP, no-store) and the HTTPS settings read from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CSP = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
}


def directives(header: str) -> set[str]:
    return {part.strip() for part in header.split(";")}


def log_in(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_five_failed_logins_lock_the_account_even_for_the_right_password(client):
    user = UserFactory(username="mallory-target")
    for _ in range(4):
        assert log_in(client, user.username, "wrong").status_code == 200  # the form again, with its error
    locked = log_in(client, user.username, "wrong")
    assert locked.status_code == 429
    response = log_in(client, user.username, "pw-for-tests")
    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many failed logins" in html and "mallory-target" in html and "0:15:00" in html
    assert "_auth_user_id" not in client.session
    # Another username from the same address is not locked.
    assert log_in(client, UserFactory().username, "pw-for-tests").status_code == 302


def test_a_successful_login_before_the_limit_resets_the_count(client):
    user = UserFactory()
    for _ in range(4):
        log_in(client, user.username, "wrong")
    assert log_in(client, user.username, "pw-for-tests").status_code == 302
    client.post(reverse("logout"))
    for _ in range(4):
        assert log_in(client, user.username, "wrong").status_code == 200
    assert log_in(client, user.username, "pw-for-tests").status_code == 302


def test_pages_carry_the_csp_and_users_pages_are_not_stored(client):
    anonymous = client.get(reverse("login"))
    assert directives(anonymous["Content-Security-Policy"]) == CSP
    client.force_login(UserFactory(role="admin"))
    for name in ("home", "status"):
        response = client.get(reverse(name))
        assert response.status_code == 200
        assert directives(response["Content-Security-Policy"]) == CSP
        assert "no-store" in response["Cache-Control"], name


def test_static_files_are_still_cacheable(client):
    client.force_login(UserFactory())
    response = client.get("/static/backforth/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_https_settings_are_off_by_default_and_read_from_the_environment(settings):
    assert not settings.SESSION_COOKIE_SECURE and not settings.CSRF_COOKIE_SECURE and not settings.SECURE_SSL_REDIRECT
    assert settings.SECURE_HSTS_SECONDS == 0 and settings.SECURE_PROXY_SSL_HEADER is None
    env = {
        **os.environ,
        "DJANGO_SESSION_COOKIE_SECURE": "true",
        "DJANGO_CSRF_COOKIE_SECURE": "true",
        "DJANGO_SECURE_SSL_REDIRECT": "yes",
        "DJANGO_SECURE_HSTS_SECONDS": "31536000",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    }
    names = [
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_PROXY_SSL_HEADER",
    ]
    code = f"import json, app.settings as s; print(json.dumps([getattr(s, n) for n in {names!r}]))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [True, True, True, 31536000, True, ["HTTP_X_FORWARDED_PROTO", "https"]]


def test_only_http_urls_become_links():
    from app.templatetags.links import http_url

    assert http_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    assert http_url("HTTP://example.org") == "HTTP://example.org"
    for bad in (
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "//evil.example",
        "/relative",
        "http:no-host",
        "",
        None,
        3,
        "http://[::1",
    ):
        assert http_url(bad) == "", bad
