"""scripts/services.sh: idempotent when all is up, clear one-line errors (not tracebacks) when not."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "services.sh"
# The squatter's socket is this test process's: `ss` names it by its command, "python" under `python -m pytest`
# (make test) but "pytest" under the pytest script.
THIS_PROCESS = Path("/proc/self/comm").read_text().strip()


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    full_env.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def squatter() -> Iterator[int]:
    """A loopback port held by a program that is neither PostgreSQL nor Redis (it accepts, never answers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_up_is_idempotent_when_everything_answers():
    first, second = run("up"), run("up")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "PostgreSQL answers" in second.stdout and "Redis answers" in second.stdout
    assert "creating" not in second.stdout and "starting" not in second.stdout
    assert run("status").returncode == 0


def test_a_port_taken_by_another_program_is_named(squatter):
    result = run("up", REDIS_URL=f"redis://127.0.0.1:{squatter}/0")
    assert result.returncode == 1
    assert f"port {squatter} is taken by {THIS_PROCESS}, not Redis" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_postgres_port_creates_no_cluster(squatter):
    result = run("up", DATABASE_URL=f"postgres://backforth:backforth@127.0.0.1:{squatter}/backforth")
    assert result.returncode == 1
    assert f"port {squatter} is taken by {THIS_PROCESS}, not PostgreSQL" in result.stderr
    clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    assert f" {squatter} " not in clusters


def test_an_unreachable_remote_database_is_not_started_here():
    result = run("up", DATABASE_URL="postgres://u:p@db.invalid:5432/x")
    assert result.returncode == 1
    assert "points at db.invalid:5432, which does not answer, and is not local" in result.stderr


def test_a_url_of_the_wrong_kind_is_refused():
    result = run("status", DATABASE_URL="mysql://u@localhost/x")
    assert result.returncode == 1
    assert "DATABASE_URL must be a postgres:// URL" in result.stderr


def test_apt_failure_is_reported_plainly(tmp_path):
    """No Debian mirror: the message says what could not be installed and where the log is."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg").write_text("#!/bin/sh\nexit 1\n")  # every package looks missing
    (fake / "apt-get").write_text("#!/bin/sh\necho 'E: Failed to fetch: mirror unreachable' >&2\nexit 100\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    # A free port where no Redis answers, so the script tries to install one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    result = run("up", REDIS_URL=f"redis://127.0.0.1:{free_port}/0", PATH=f"{fake}:{os.environ['PATH']}")
    assert result.returncode == 1
    assert "apt-get could not install redis-server (is the Debian mirror reachable?)" in result.stderr
    assert "mirror unreachable" in result.stderr  # the tail of apt's own log is shown too


def as_postgres_sql(sql: str) -> str:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-Atq"], input=sql, capture_output=True, text=True, check=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stale_role() -> Iterator[str]:
    """A role (and its database) left with another password than the one .env will name."""
    name = f"backforth_pwtest_{os.getpid()}"
    as_postgres_sql(f"create role {name} login password 'the-old-one'")
    yield name
    as_postgres_sql(f"drop database if exists {name}")
    as_postgres_sql(f"drop role if exists {name}")


def test_a_role_with_another_password_gets_the_one_in_env(stale_role):
    url = f"postgres://{stale_role}:the-new-one@127.0.0.1:5432/{stale_role}"
    result = run("up", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert f"role {stale_role} exists with another password: setting the one in .env" in result.stdout
    assert "the-new-one" not in result.stdout + result.stderr
    login = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", stale_role, "-d", stale_role, "-Atqc", "select 1"],
        env={**os.environ, "PGPASSWORD": "the-new-one"},
        capture_output=True,
        text=True,
    )
    assert login.stdout.strip() == "1", login.stderr
    assert "another password" not in run("up", DATABASE_URL=url).stdout


def test_our_redis_requires_the_password_and_never_shows_it(tmp_path):
    port, password = free_port(), "redis-pw-for-the-test"
    env = {"REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0", "BACKFORTH_DATA_DIR": str(tmp_path)}
    auth = {**os.environ, "REDISCLI_AUTH": password}
    cli = ["redis-cli", "-p", str(port)]
    try:
        first = run("up", **env)
        assert first.returncode == 0, first.stderr
        assert f"Redis ready at 127.0.0.1:{port} (password required)" in first.stdout
        pid = (tmp_path / "redis" / "redis.pid").read_text().strip()
        user = subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True, text=True).stdout.strip()
        # Debian's redis user where it can reach the directory; pytest's tmp dirs are 0700 (under
        # /tmp/pytest-of-root), so here it cannot, and Redis runs as root after a warning.
        assert user == "root", first.stdout
        redis_dir = tmp_path / "redis"
        warning = f"WARNING: user redis cannot reach {redis_dir} (a directory above it is closed to others)"
        assert f"{warning}: Redis runs as root" in first.stdout
        assert (
            password
            not in subprocess.run(["ps", "-ww", "-o", "args=", "-p", pid], capture_output=True, text=True).stdout
        )
        assert "NOAUTH" in subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout

        # Our Redis lost its password (an older services.sh started it without one): `up` sets it again.
        subprocess.run([*cli, "config", "set", "requirepass", ""], env=auth, check=True, capture_output=True)
        again = run("up", **env)
        assert again.returncode == 0, again.stderr
        assert "runs without a password: setting the one in .env" in again.stdout
        assert "NOAUTH" in subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout
        assert run("status", **env).returncode == 0
    finally:
        subprocess.run([*cli, "shutdown", "nosave"], env=auth, capture_output=True)


def redis_ping(host: str, port: int, password: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), "ping"],
        env={**os.environ, "REDISCLI_AUTH": password},
        capture_output=True,
        text=True,
        timeout=10,
    )
    return (result.stdout + result.stderr).strip()


def test_our_redis_binds_where_the_admin_says(tmp_path):
    """BACKFORTH_REDIS_BIND adds addresses (here 127.0.0.2, a loopback address like another network's would be);
    the URL's host stays. A running Redis of ours follows a changed setting without a restart."""
    port, password = free_port(), "redis-pw-for-the-bind-test"
    env = {"REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0", "BACKFORTH_DATA_DIR": str(tmp_path)}
    try:
        first = run("up", **env, BACKFORTH_REDIS_BIND="127.0.0.2")
        assert first.returncode == 0, first.stderr
        assert f"Redis ready at 127.0.0.1:{port} (password required), bound to 127.0.0.1 127.0.0.2" in first.stdout
        assert redis_ping("127.0.0.2", port, password) == "PONG" == redis_ping("127.0.0.1", port, password)
        same = run("up", **env, BACKFORTH_REDIS_BIND="127.0.0.2,127.0.0.1")
        assert same.returncode == 0 and "Redis: binds" not in same.stdout, "the same addresses: nothing to change"
        back = run("up", **env)  # the setting removed: the URL's host only
        assert back.returncode == 0, back.stderr
        assert "Redis: binds 127.0.0.1 (was 127.0.0.1 127.0.0.2)" in back.stdout
        assert "Connection refused" in redis_ping("127.0.0.2", port, password)
        assert redis_ping("127.0.0.1", port, password) == "PONG"
        bad = run("up", **env, BACKFORTH_REDIS_BIND="127.0.0.1;rm")
        assert bad.returncode == 1 and "BACKFORTH_REDIS_BIND: '127.0.0.1;rm' is not an address" in bad.stderr
    finally:
        subprocess.run(
            ["redis-cli", "-p", str(port), "shutdown", "nosave"],
            env={**os.environ, "REDISCLI_AUTH": password},
            capture_output=True,
        )


@pytest.fixture
def cluster() -> Iterator[tuple[str, int]]:
    """A PostgreSQL cluster of its own on a free port (Debian's default pg_hba.conf: passwords from 127.0.0.1 and
    ::1 only), so listen_addresses can change and restart without touching the cluster the tests run on."""
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    name, port = f"bftest{os.getpid()}", free_port()
    subprocess.run(["pg_createcluster", "-p", str(port), version, name], check=True, capture_output=True)
    try:
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True, capture_output=True)
        yield f"{version}/{name}", port
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True)


def pg_login(host: str, port: int, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "-h", host, "-p", str(port), "-U", "bfnet", "-d", "bfnet", "-Atqc", "select 1"],
        env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "3"},
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_postgres_listens_and_lets_the_app_in_from_the_networks_the_admin_names(cluster):
    name, port = cluster
    url = f"postgres://bfnet:net-pw@127.0.0.1:{port}/bfnet"
    before = run("up", DATABASE_URL=url)
    assert before.returncode == 0, before.stderr
    assert pg_login("127.0.0.2", port, "net-pw").returncode != 0, "by default: localhost only"

    up = run("up", DATABASE_URL=url, BACKFORTH_PG_LISTEN="127.0.0.2", BACKFORTH_PG_ALLOW="127.0.0.2/32")
    assert up.returncode == 0, up.stderr
    assert f"PostgreSQL: listening on localhost,127.0.0.2 (was localhost): restarting cluster {name}" in up.stdout
    assert "PostgreSQL: bfnet may log in to bfnet from 127.0.0.2/32 (password required;" in up.stdout
    assert pg_login("127.0.0.2", port, "net-pw").stdout.strip() == "1"
    assert "password authentication failed" in pg_login("127.0.0.2", port, "wrong").stderr

    again = run("up", DATABASE_URL=url, BACKFORTH_PG_LISTEN="127.0.0.2", BACKFORTH_PG_ALLOW="127.0.0.2/32")
    assert again.returncode == 0 and "restarting" not in again.stdout and "may log in" not in again.stdout
    hba = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-p", str(port), "-AtqXc", "show hba_file"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(hba).read_text().count("host bfnet bfnet 127.0.0.2/32 scram-sha-256\n") == 1
    bad = run("up", DATABASE_URL=url, BACKFORTH_PG_ALLOW="everyone")
    assert bad.returncode == 1 and "BACKFORTH_PG_ALLOW: 'everyone' is not a network" in bad.stderr
