"""The batch jobs as real processes against the test database, killed with SIGKILL mid-run.

The tests commit their data (`transaction=True`) so that a child process sees it; the child
gets the test database in DATABASE_URL, the way tests/integration starts a Celery worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from datetime import datetime

import pytest
from django.db import connection

from points.models import ProgrammeSettings
from tests.integration.conftest import BASE_DIR, database_url, python_command

# The child's connections carry this name, so the test can see when they are gone.
APPLICATION_NAME = "ledger-fault-test"


@pytest.fixture(autouse=True)
def _default_programme(request):
    # An earlier transactional test may have emptied every table.
    if request.node.get_closest_marker("django_db") is not None:
        request.getfixturevalue("entry_tier")
        ProgrammeSettings.get()


def child_env() -> dict[str, str]:
    url = database_url(connection.settings_dict)
    return {**os.environ, "DATABASE_URL": f"{url}?application_name={APPLICATION_NAME}"}


def manage(*args: str) -> list[str]:
    return python_command("manage.py", *args)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        manage(*args),
        cwd=BASE_DIR,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        manage(*args),
        cwd=BASE_DIR,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def scalar(sql: str, params: list | None = None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def kill_when(process: subprocess.Popen, ready, timeout: float = 60) -> None:
    """SIGKILL the process (its whole session) as soon as `ready()` is true."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                _out, err = process.communicate()
                raise AssertionError(f"the job ended before it could be killed: {err.decode()}")
            assert time.monotonic() < deadline, "the job never reached the moment to kill it"
            time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL


def wait_until_the_killed_session_ends(timeout: float = 30) -> None:
    """The server ends a dead client's session on its own, rolling back its open chunk; a
    session waiting for a row lock notices only once it gets the lock."""
    deadline = time.monotonic() + timeout
    while scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME]
    ):
        assert time.monotonic() < deadline, "the killed job's session never ended"
        time.sleep(0.05)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def create_pending_lots(
    block,
    *,
    lots_per_account: int,
    points_per_lot: int,
    available_between: tuple[datetime, datetime],
    expires_at: datetime,
    reference: str,
) -> int:
    """Pending earn entries and lots for every account of a bulk_data block, set-based (the
    bulk generator only makes available lots); returns the number of lots."""
    start_at, end_at = available_between
    params = {
        "first": block.first_account_id,
        "last": block.first_account_id + block.count - 1,
        "lots": lots_per_account,
        "points": points_per_lot,
        "start": start_at,
        "span": (end_at - start_at).total_seconds(),
        "expires": expires_at,
        "reference": reference,
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            """
            INSERT INTO points_entry (account_id, kind, amount, available_delta, pending_delta,
                                      balance_after, reference, source_type, expires_at,
                                      available_at)
            SELECT a.id, 'earn', %(points)s, 0, %(points)s, a.available, %(reference)s, 'rule',
                   %(expires)s, %(start)s + random() * %(span)s * interval '1 second'
              FROM points_account a CROSS JOIN generate_series(1, %(lots)s)
             WHERE a.id BETWEEN %(first)s AND %(last)s
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO points_lot (account_id, earn_entry_id, amount, remaining, state,
                                    available_at, expires_at)
            SELECT account_id, id, amount, amount, 'pending', available_at, expires_at
              FROM points_entry WHERE reference = %(reference)s
            """,
            params,
        )
        created = cursor.rowcount
        cursor.execute(
            """
            UPDATE points_account
               SET pending = pending + %(lots)s * %(points)s,
                   lifetime_earned = lifetime_earned + %(lots)s * %(points)s
             WHERE id BETWEEN %(first)s AND %(last)s
            """,
            params,
        )
    return created
