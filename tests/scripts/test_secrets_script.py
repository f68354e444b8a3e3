"""scripts/secrets.sh: .env is made once with random secrets, then only ever completed, never overwritten."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    for name in ("secrets.sh", "lib.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    return tmp_path


def run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/secrets.sh"], cwd=root, capture_output=True, text=True, timeout=30)


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def test_example_holds_no_usable_secret():
    assert read_env(ROOT / ".env.example")["DJANGO_SECRET_KEY"] == ""


def test_a_new_env_is_private_and_random(tmp_path):
    root = checkout(tmp_path)
    assert run(root).returncode == 0
    env_file = root / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env = read_env(env_file)
    assert len(env["DJANGO_SECRET_KEY"]) == 67  # secrets.token_urlsafe(50): 50 random bytes
    db, redis = urlsplit(env["DATABASE_URL"]), urlsplit(env["REDIS_URL"])
    assert db.username == "backforth" and len(db.password) == 32 and db.hostname == "127.0.0.1"  # 24 bytes
    assert redis.username == "" and len(redis.password) == 32 and redis.port == 6379  # redis://:password@host
    assert len({env["DJANGO_SECRET_KEY"], db.password, redis.password}) == 3
    # Another checkout gets other secrets.
    (tmp_path / "other").mkdir()
    other = checkout(tmp_path / "other")
    assert run(other).returncode == 0
    assert read_env(other / ".env")["DJANGO_SECRET_KEY"] != env["DJANGO_SECRET_KEY"]


def test_an_existing_env_is_kept_and_only_its_placeholder_key_replaced(tmp_path):
    root = checkout(tmp_path)
    env_file = root / ".env"
    env_file.write_text(
        "# mine\nDATABASE_URL=postgres://me:mine@db:5432/x\nDJANGO_SECRET_KEY=change-me-in-production\n"
    )
    env_file.chmod(0o644)
    result = run(root)
    assert result.returncode == 0
    assert ".env: DJANGO_SECRET_KEY was missing or a placeholder; set a random one (other values kept)" in result.stdout
    text = env_file.read_text()
    assert text.startswith("# mine\nDATABASE_URL=postgres://me:mine@db:5432/x\nDJANGO_SECRET_KEY=")
    key = read_env(env_file)["DJANGO_SECRET_KEY"]
    assert len(key) == 67 and "REDIS_URL" not in text
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    again = run(root)
    assert again.returncode == 0 and again.stdout == ""
    assert env_file.read_text() == text


def test_a_missing_key_is_added(tmp_path):
    root = checkout(tmp_path)
    (root / ".env").write_text("REDIS_URL=redis://:pw@127.0.0.1:6379/0\n")
    assert run(root).returncode == 0
    env = read_env(root / ".env")
    assert env["REDIS_URL"] == "redis://:pw@127.0.0.1:6379/0" and len(env["DJANGO_SECRET_KEY"]) == 67
