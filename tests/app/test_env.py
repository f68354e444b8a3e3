import os
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from app.env import env_bool, env_int, load_dotenv, redact_url, redis_url, redis_url_with_db, secret_key_problem

ROOT = Path(__file__).resolve().parents[2]


def test_env_bool_reads_common_spellings(monkeypatch):
    monkeypatch.setenv("X_FLAG", "Yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.delenv("X_FLAG")
    assert env_bool("X_FLAG", True) is True


def test_malformed_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG must be true or false"):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_NUM must be an integer"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_REDIS", "http://nope")
    with pytest.raises(ImproperlyConfigured, match="X_REDIS must be a redis://"):
        redis_url("X_REDIS", "redis://127.0.0.1:6379/0")


def test_test_redis_is_another_database_on_the_same_server():
    assert redis_url_with_db("redis://127.0.0.1:6379/0", 15) == "redis://127.0.0.1:6379/15"
    assert redis_url_with_db("redis://:pw@host:6380", 15) == "redis://:pw@host:6380/15"


def test_dotenv_does_not_override_and_reports_bad_lines(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("# comment\nX_A=from-file\nX_B='quoted'\n")
    monkeypatch.setenv("X_A", "from-env")
    monkeypatch.delenv("X_B", raising=False)
    load_dotenv(env)
    assert os.environ["X_A"] == "from-env"
    assert os.environ["X_B"] == "quoted"
    monkeypatch.delenv("X_B")
    env.write_text("X_OK=1\nthis line is wrong\n")
    with pytest.raises(ImproperlyConfigured, match=r"\.env:2: expected KEY=VALUE"):
        load_dotenv(env)


def test_settings_use_postgres_and_a_test_redis_db(settings):
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    # Its own logical database: 15 on the configured server, or the one TEST_REDIS_URL names.
    assert os.environ.get("TEST_REDIS_URL", redis_url_with_db(settings.REDIS_URL, 15)) == settings.REDIS_URL
    assert settings.RQ == {"COMMIT_MODE": "on_db_commit"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgres://backforth:p%40ss@db:5432/backforth", "postgres://backforth:***@db:5432/backforth"),
        ("redis://user:pw@[::1]:6380/1", "redis://user:***@[::1]:6380/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgres://backforth@db/x", "postgres://backforth@db/x"),
        ("redis://host/0?password=pw&ssl=1", "redis://host/0?password=***&ssl=1"),
    ],
)
def test_redact_url_hides_only_the_password(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "is empty"),
        ("change-me-in-production", "is a published placeholder"),
        ("backforth-insecure-local-key-set-DJANGO_SECRET_KEY", "is a published placeholder"),
        ("django-insecure-" + "x" * 50, "is a published placeholder"),
        ("short-but-random-31-characters!", "is 31 characters long (at least 32 random ones are needed)"),
        ("k" * 32, None),
    ],
)
def test_secret_key_problem(key, problem):
    assert secret_key_problem(key) == problem


def test_settings_refuse_a_placeholder_key_outside_tests(tmp_path):
    """A real start (no PYTEST_VERSION) with the old shipped key stops with a message naming the fix."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    env.update(DJANGO_SECRET_KEY="change-me-in-production", DJANGO_SETTINGS_MODULE="app.settings")
    code = "import django; django.setup()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is a published placeholder: run scripts/secrets.sh" in result.stderr
    env["DJANGO_SECRET_KEY"] = "a" * 50
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0


TRICKY_ENV = """# comment
export X_EXPORTED=yes
X_PLAIN=plain value with spaces
X_DQ="double quoted # not a comment"
X_SQ='single $HOME not expanded'
X_EQ=postgres://u:p=w@h:5432/db?x=1
X_EMPTY=
X_SET_ALREADY=from-file
"""


def test_python_and_the_shell_read_env_files_the_same_way(tmp_path):
    """One reader (app/dotenv.py) for settings.py and scripts/lib.sh: the same file gives the same values."""
    import subprocess

    from app import dotenv

    (tmp_path / ".env").write_text(TRICKY_ENV)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "dotenv.py").write_text((ROOT / "app" / "dotenv.py").read_text())
    keys = list(dotenv.parse(TRICKY_ENV))
    prints = "; ".join(f'printf "%s\\0" "${{{k}-UNSET}}"' for k in keys)
    script = f". {ROOT / 'scripts' / 'lib.sh'}; load_env; {prints}"
    env = {"PATH": os.environ["PATH"], "X_SET_ALREADY": "from-env"}
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    from_shell = dict(zip(keys, out.stdout.split("\0")[:-1], strict=True))
    from_python = dict(env)
    dotenv.load(tmp_path / ".env", from_python)
    assert from_shell == {k: from_python[k] for k in keys}
    assert from_shell["X_SQ"] == "single $HOME not expanded" and from_shell["X_EQ"] == "postgres://u:p=w@h:5432/db?x=1"
    assert from_shell["X_DQ"] == "double quoted # not a comment" and from_shell["X_SET_ALREADY"] == "from-env"


def test_a_malformed_env_line_stops_the_shell_too(tmp_path):
    import subprocess

    (tmp_path / ".env").write_text("GOOD=1\nthis is not a pair\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "dotenv.py").write_text((ROOT / "app" / "dotenv.py").read_text())
    out = subprocess.run(
        ["bash", "-c", f". {ROOT / 'scripts' / 'lib.sh'}; load_env; echo reached"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and out.stdout == ""  # lib.sh's die: it never reaches the echo
    assert ".env:2: expected KEY=VALUE, got 'this is not a pair'" in out.stderr
