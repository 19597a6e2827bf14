"""Helpers for tests that run the real thing in subprocesses: a Celery worker, `make run`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from kombu import Connection

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def database_url(settings_dict: dict, name: str | None = None) -> str:
    """A DATABASE_URL for the server of `settings_dict` (TCP or Unix socket), database `name`."""
    user = quote(settings_dict.get("USER") or "postgres", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}" if password else user
    host = settings_dict.get("HOST") or ""
    port = settings_dict.get("PORT") or ""
    name = name or settings_dict["NAME"]
    if host.startswith("/"):
        # The form django-environ reads as a socket folder (loyalty_site.embedded writes it too).
        return f"postgres://{credentials}@/{quote(host, safe='')}/{name}"
    return f"postgres://{credentials}@{host}{f':{port}' if port else ''}/{name}"


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The configured broker; integration tests are skipped when it does not answer.

    .ci/run sets LOYALTY_REQUIRE_BROKER=1 so that a missing broker fails instead.
    """
    url = settings.CELERY_BROKER_URL
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=0, timeout=2)
    except Exception as exc:
        if os.environ.get("LOYALTY_REQUIRE_BROKER") == "1":
            pytest.fail(f"the broker {url} does not answer: {exc}")
        pytest.skip(f"no broker answers at {url}: {exc}")
    return url


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process's group (it was started in a session of its own), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]
