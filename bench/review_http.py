"""The review benchmark over HTTP (`bench.review`): the real gunicorn server on the bench database, and annotators
that use it as a browser does.

- `Server`: `gunicorn -c app/gunicorn_conf.py app.wsgi` (the file scripts/serve.sh runs production with; a sweep
  overrides its worker class, processes and threads on the command line), bound to a free local port, its
  DATABASE_URL / REDIS_URL the bench's own (bench.review_data.use_bench_database), its logs in a temporary
  directory; the baseline serves `bench.review_blocking_wsgi` the same way.
- `Browser`: one keep-alive connection (reopened when the server closed it, as browsers do) and the cookies.
- `http_annotator`: signs in through the login form (CSRF token from the form, the csrftoken cookie), loads the
  queue page, then decides with the exact request review.js sends through htmx (`HX-Request: true`, the form's
  fields: the CSRF token, candidate_id, version, the instruction and response textareas, reason, reason_text, and
  the pressed button's action) and reads the next item from the answer (one round trip).
"""

from __future__ import annotations

import html
import http.client
import os
import random
import re
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.common import ROOT
from bench.review_data import BENCH_PASSWORD
from bench.review_load import MAX_DECISIONS, PHASE_SECONDS, Phase

GUNICORN_CONF = ROOT / "app" / "gunicorn_conf.py"
HOST = "127.0.0.1"
_HIDDEN = re.compile(r'<input type="hidden" name="([\w-]+)" value="([^"]*)">')
_TEXTAREA = re.compile(r'<textarea [^>]*name="(instruction|response)"[^>]*>(.*?)</textarea>', re.S)
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# --- the server ---------------------------------------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds each process has used (from /proc; one gone is left out)."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)
    return used


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds used between two Server.cpu() samples, per part (a process new since `before` counts whole)."""
    return {part: sum(t - before[part].get(pid, 0.0) for pid, t in after[part].items()) for part in after}


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def database_backends() -> list[int]:
    """The PostgreSQL backends connected to this database, other than this process's own."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [r[0] for r in cur.fetchall()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def serve_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What app/gunicorn_conf.py gives on this machine (worker class, processes, threads), with `overrides`."""
    conf = runpy.run_path(str(GUNICORN_CONF))
    found = {k: conf[k] for k in ("worker_class", "workers", "threads")}
    found = {**found, **(overrides or {})}
    if found["threads"] > 1 and found["worker_class"] == "sync":
        found["worker_class"] = "gthread"  # what gunicorn runs for sync with threads
    return found


def server_env() -> dict[str, str]:
    """The server's environment: the bench's DATABASE_URL and REDIS_URL (use_bench_database), DEBUG off as
    deployed, this host only."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "app.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": HOST,
    }
    env.pop("PYTEST_VERSION", None)
    return env


def collect_static() -> None:
    """The static files' manifest a server with DEBUG off needs (what `make demo` runs)."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=server_env(), check=True
    )


class Server:
    """gunicorn serving `app` (a WSGI module path) on the bench database, started on enter, stopped on exit."""

    def __init__(self, app: str = "app.wsgi", overrides: dict[str, Any] | None = None) -> None:
        self.app = app
        self.overrides = overrides or {}
        self.settings = serve_settings(self.overrides)
        self.port = free_port()
        self.logs = Path(tempfile.mkdtemp(prefix="bench-review-web-"))
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        flags = {"worker_class": "--worker-class", "workers": "--workers", "threads": "--threads"}
        extra = [x for k, v in self.overrides.items() for x in (flags[k], str(v))]
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            *extra,
            "--bind",
            f"{HOST}:{self.port}",
            # As scripts/serve.sh: an access log line per request, errors kept, 120 s timeout.
            "--access-logfile",
            str(self.logs / "web-access.log"),
            "--error-logfile",
            str(self.logs / "web.log"),
            "--capture-output",
            "--timeout",
            "120",
            self.app,
        ]

    def __enter__(self) -> Server:
        env = server_env() | {"BACKFORTH_LOG_DIR": str(self.logs)}
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = Browser(self.port).request("GET", "/accounts/login/")
                if status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"[bench] gunicorn did not come up; its log:\n{self.log_tail()}")
            time.sleep(0.3)
        s = self.settings
        print(f"[bench] gunicorn {self.app} on port {self.port}: {s['worker_class']}, {s['workers']}x{s['threads']}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        errors = self.log_tail(errors_only=True)
        if errors:
            print(f"[bench] errors in the server's log:\n{errors}")

    def cpu(self) -> dict[str, dict[int, float]]:
        """CPU seconds used so far by each of the server's workers and each PostgreSQL backend connected to the
        bench database (the database's work for the server: its connections persist through a phase)."""
        workers = children(self.process.pid) if self.process else []
        return {"server": cpu_seconds(workers), "database": cpu_seconds(database_backends())}

    def stop(self) -> None:
        """SIGTERM to the master (it stops its workers), SIGKILL to the group after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log_tail(self, errors_only: bool = False, lines: int = 20) -> str:
        path = self.logs / "web.log"
        if not path.is_file():
            return ""
        found = path.read_text(errors="replace").splitlines()
        if errors_only:
            found = [line for line in found if "ERROR" in line or "Traceback" in line]
        return "\n".join(found[-lines:])


# --- a browser ----------------------------------------------------------------------------------------------------


class Browser:
    """One HTTP/1.1 keep-alive connection to the server and the cookies it set (csrftoken, sessionid)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.origin = f"http://{HOST}:{port}"
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, Any] | None = None, **headers: str) -> tuple[int, str]:
        """(status, body). A connection the server closed while idle (keep-alive timeout, or a server that closes
        after every answer) is reopened and the request sent again, as browsers do; that time counts."""
        body = urlencode(form).encode() if form is not None else None
        sent = {"Host": f"{HOST}:{self.port}", **headers}
        if body is not None:
            sent |= {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=sent)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
                continue
            for cookie in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            if response.will_close:
                self.close()
            return response.status, data.decode()
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def sign_in(browser: Browser, username: str) -> None:
    """The login form: GET it (CSRF cookie and token), POST the credentials; a session cookie comes back."""
    status, page = browser.request("GET", "/accounts/login/")
    token = _CSRF.search(page)
    if status != 200 or token is None:
        raise RuntimeError(f"login page: HTTP {status}")
    form = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": BENCH_PASSWORD}
    status, _ = browser.request("POST", "/accounts/login/", form, Referer=f"{browser.origin}/accounts/login/")
    if status != 302 or "sessionid" not in browser.cookies:
        raise RuntimeError(f"{username} could not sign in: HTTP {status}")


def decision_form(page: str) -> dict[str, str] | None:
    """The fields the decision form (`#decision`) sends, in its order, before the button adds its action; None
    when the page holds no item."""
    start = page.find('<form id="decision"')
    if start < 0:
        return None
    form = page[start : page.index("</form>", start)]
    fields = dict(_HIDDEN.findall(form))
    fields |= {name: html.unescape(text) for name, text in _TEXTAREA.findall(form)}
    return fields | {"reason": "", "reason_text": ""}


def press(i: int, fields: dict[str, str]) -> dict[str, str]:
    """A key: A (accept), and every 5th R then 4 (reject as unsafe), as review.js clicks the button."""
    if i % 5 == 4:
        return fields | {"reason": "unsafe", "action": "reject"}
    return fields | {"action": "accept"}


def http_annotator(
    user: Any,
    rnd: Any,
    start: threading.Barrier,
    phase: Phase,
    clock: list[float],
    *,
    port: int,
    think: tuple[float, float] | None = None,
    seconds: float = PHASE_SECONDS,
) -> None:
    """One annotator: sign in, load the queue page, then decide and read the next item from the answer; with
    `think`, a pause drawn uniformly from that range (seconds) after each item, as a person reading it."""
    pause = random.Random(user.pk)
    browser = Browser(port)
    sign_in(browser, user.username)
    page_path = f"/review/{rnd.number}/"
    status, page = browser.request("GET", page_path)
    if status != 200:
        raise RuntimeError(f"queue page: HTTP {status}")
    fields = decision_form(page)
    htmx = {
        "HX-Request": "true",
        "HX-Current-URL": f"{browser.origin}{page_path}",
        "HX-Target": "review-item",
        "HX-Trigger": "decision",
        "Referer": f"{browser.origin}{page_path}",
    }
    decide_path = f"/review/{rnd.number}/decide/"
    start.wait()
    try:
        if think:  # each reads the first item too: 20 people do not press their first key at the same instant
            time.sleep(pause.uniform(*think))
        for i in range(MAX_DECISIONS):
            if fields is None or time.perf_counter() - clock[0] > seconds:
                break
            t0 = time.perf_counter()
            status, answer = browser.request("POST", decide_path, press(i, fields), **htmx)
            phase.add(time.perf_counter() - t0, status, len(answer.encode()))
            fields = decision_form(answer)
            if think:
                time.sleep(pause.uniform(*think))
    finally:
        browser.close()
