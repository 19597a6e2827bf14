"""`make run`'s stack for real: embedded supervisor, migrate, seed, honcho with web, worker, beat.

Runs `python -m loyalty_site.embedded -- python -m loyalty_site.run` with DATABASE_URL and
CELERY_BROKER_URL set (so nothing embedded may start) against a database of its own, talks to
it over HTTP as a user would, then presses Ctrl-C and checks that no process is left.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
from celery import Celery
from django.db import connection

from tests.integration.conftest import (
    BASE_DIR,
    database_url,
    python_command,
    stop_process_group,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_connection():
    settings_dict = connection.settings_dict
    return psycopg.connect(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=True,
    )


@pytest.fixture
def run_database():
    """A database of its own on the test server, dropped afterwards."""
    name = f"loyalty_run_{uuid.uuid4().hex[:10]}"
    with _server_connection() as server:
        server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(connection.settings_dict, name=name)
    finally:
        with _server_connection() as server:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _own_redis_database(broker_url: str) -> str:
    # The stack's worker consumes the default queue: keep it apart from other tests' tasks.
    current = urlsplit(broker_url).path.strip("/") or "0"
    return urlsplit(broker_url)._replace(path="/9" if current != "9" else "/8").geturl()


def _get(url: str, opener=None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


def _log_in(base: str, password: str) -> tuple[int, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    _status, page = _get(f"{base}/admin/login/", opener)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "admin", "password": password, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    with opener.open(request, timeout=10) as response:
        return response.status, response.read().decode("utf-8", "replace")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_make_run_stack_serves_seeds_runs_jobs_and_stops_on_ctrl_c(
    run_database, broker_url, tmp_path, monkeypatch
):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    stack_broker = _own_redis_database(broker_url)
    log = tmp_path / "run.log"
    env = {
        **os.environ,
        "DATABASE_URL": run_database,
        "CELERY_BROKER_URL": stack_broker,
        "CELERY_RESULT_BACKEND": stack_broker,
        "LOYALTY_DATA_DIR": str(tmp_path / "data"),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
    }
    command = python_command(
        "-m", "loyalty_site.embedded", "--", *python_command("-m", "loyalty_site.run")
    )
    with log.open("wb") as output:
        stack = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: _get(f"{base}/readyz")[0] == 200, 150, "/readyz to answer 200", 0.5)
        output = log.read_text(errors="replace")

        # given: the URLs the banner promises
        for path in ("/healthz", "/readyz", "/admin/login/", "/api/v1/docs/", "/api/v1/schema/"):
            assert _get(base + path)[0] == 200, path
        # static files through whitenoise, with manifest (hashed) names
        login_page = _get(f"{base}/admin/login/")[1]
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login_page)
        assert css, "the admin's CSS is not served under a hashed name"
        assert _get(base + css.group(1))[0] == 200

        # the admin password and the partner key, printed once, work
        # The output speaks the default language (zh-hans); the labels keep ASCII colons.
        password = re.search(r"(?:password|密码): (\S+)", output).group(1)
        status, page = _log_in(base, password)
        assert status == 200 and 'id="logout-form"' in page
        key = re.search(r"Authorization: Api-Key (\S+)", output).group(1)
        status, body = _get(
            f"{base}/api/v1/members/demo-0001", headers={"Authorization": f"Api-Key {key}"}
        )
        assert status == 200, body
        assert json.loads(body)["external_id"] == "demo-0001"

        # the worker takes tasks from the broker; beat runs with the database scheduler
        # Celery prefers these variables to the arguments given to the app.
        monkeypatch.setenv("CELERY_BROKER_URL", stack_broker)
        monkeypatch.setenv("CELERY_RESULT_BACKEND", stack_broker)
        client = Celery("run-client", broker=stack_broker, backend=stack_broker)
        try:
            assert client.send_task("loyalty_site.ping").get(timeout=30) == "pong"
        finally:
            client.close()
        processes = _descendants(stack.pid)
        command_lines = [" ".join(p.cmdline()) for p in processes]
        assert any("gunicorn" in line for line in command_lines)
        assert any(" worker" in line and "celery" in line for line in command_lines)
        assert any(" beat" in line and "DatabaseScheduler" in line for line in command_lines)
        # DATABASE_URL and CELERY_BROKER_URL are set: nothing embedded was started
        names = {p.name() for p in processes}
        assert "postgres" not in names and "redis-server" not in names
        assert "embedded PostgreSQL" not in output and "embedded Redis" not in output

        # when: Ctrl-C (SIGINT to the foreground process group)
        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(60)

        # then: every process of the stack is gone
        _gone, alive = psutil.wait_procs(processes, timeout=5)
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
    except BaseException:
        print(log.read_text(errors="replace")[-20000:])
        raise
    finally:
        stop_process_group(stack)
