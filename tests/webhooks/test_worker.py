"""A real Celery worker, through the real broker, delivers the outbox to the receiver."""

from __future__ import annotations

import pytest

from points import services
from points.models import ProgrammeSettings, WebhookAttempt
from tests.integration.conftest import broker_url  # noqa: F401 (fixtures the worker needs)
from tests.integration.test_celery_worker import worker  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_beat_task_run_by_a_worker_delivers_a_signed_event(
    request, entry_tier, receiver, endpoint, member
):
    celery = request.getfixturevalue("worker")  # tests/integration's worker, as imported
    ProgrammeSettings.get()
    services.earn(member=member, points=30)

    result = celery.send_task("points.deliver_webhooks").get(timeout=60)

    assert (result["queued"], result["delivered"]) == (1, 1)
    assert [(r.status, r.signature_ok) for r in receiver.received] == [(200, True)]
    assert receiver.received[0].body["data"]["points"] == 30
    assert WebhookAttempt.objects.get().status_code == 200
