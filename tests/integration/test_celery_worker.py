"""A real Celery worker takes tasks from the real broker and writes to the test database."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from celery import Celery
from django.db import connection

from members.models import Member
from tests.factories import TierFactory
from tests.integration.conftest import (
    BASE_DIR,
    database_url,
    python_command,
    stop_process_group,
    wait_for,
)

# The worker sees only committed rows, so the test commits (and the tables are emptied after).
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(broker_url, tmp_path, monkeypatch):
    """A solo-pool worker on a queue of its own, attached to pytest-django's test database."""
    queue = f"integration-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        # The test database (test_<name>), not the one the settings name.
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "LOYALTY_DATA_DIR": str(tmp_path / "data"),
    }
    command = python_command(
        "-m",
        "celery",
        "-A",
        "loyalty_site",
        "worker",
        "--pool",
        "solo",
        "--queues",
        queue,
        "--hostname",
        f"{queue}@%h",
        "--include",
        "tests.integration.worker_tasks",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Celery prefers these variables to the arguments given to the app.
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", broker_url)
    client = Celery("integration-client", broker=broker_url, backend=broker_url)
    client.conf.task_default_queue = queue
    try:
        wait_for(lambda: "ready." in log.read_text(errors="replace"), 60, "the worker to start")
        yield client
    finally:
        client.close()
        stop_process_group(process)
        if process.returncode not in (0, -15):
            print(log.read_text(errors="replace"))


def test_worker_answers_ping_sent_through_the_broker(worker):
    result = worker.send_task("loyalty_site.ping")
    assert result.get(timeout=30) == "pong"


def test_worker_writes_to_the_test_database(worker):
    # An earlier transactional test may have emptied the tables, the entry tier with them.
    TierFactory(code="member", name="会员 Member", rank=0, growth_threshold=0)
    external_id = f"celery-{uuid.uuid4().hex[:8]}"
    result = worker.send_task("tests.integration.upsert_member", args=[external_id, "任务 Worker"])

    member_pk = result.get(timeout=30)

    member = Member.objects.get(external_id=external_id)
    assert member.pk == member_pk
    assert member.name == "任务 Worker"
