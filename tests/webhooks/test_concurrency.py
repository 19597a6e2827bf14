"""With real concurrent connections: fan-out skips rows another transaction holds, nothing is
sent past them, and no transaction stays open while a POST waits for the receiver."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from points import services, webhooks
from points.models import OutboxEvent, ProgrammeSettings, WebhookDelivery
from tests.webhooks.conftest import at

pytestmark = pytest.mark.django_db(transaction=True)

T0 = at("2026-03-01 08:00")


@pytest.fixture(autouse=True)
def _default_programme(entry_tier):
    # An earlier transactional test may have emptied the tables the migrations filled.
    ProgrammeSettings.get()


def test_no_transaction_is_open_while_the_receiver_answers(receiver, endpoint, member):
    services.earn(member=member, points=5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        sender_pid = cursor.fetchone()[0]
    seen: list[str] = []

    def look_at_the_sender():
        # Runs in the receiver's thread, on a connection of its own.
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [sender_pid])
                seen.append(cursor.fetchone()[0])
        finally:
            connections.close_all()

    receiver.on_request = look_at_the_sender

    webhooks.deliver_webhooks(now=T0)

    assert [r.status for r in receiver.received] == [200]
    assert seen == ["idle"]  # not "idle in transaction"


def test_an_event_locked_elsewhere_is_skipped_and_nothing_of_that_member_goes_before_it(
    receiver, endpoint, member
):
    services.earn(member=member, points=1)
    services.earn(member=member, points=2)
    first, second = OutboxEvent.objects.order_by("id")
    locked, release = threading.Event(), threading.Event()

    def hold_the_first_event():
        try:
            with transaction.atomic():
                OutboxEvent.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_first_event, daemon=True)
    holder.start()
    assert locked.wait(30)
    try:
        run = webhooks.deliver_webhooks(now=T0)
        # The second is queued but not sent: the first may still become a delivery.
        assert (run.fan_out.events, run.fan_out.deliveries, run.send.attempts) == (1, 1, 0)
        assert list(WebhookDelivery.objects.values_list("event_id", flat=True)) == [second.pk]
    finally:
        release.set()
        holder.join(30)

    webhooks.deliver_webhooks(now=T0)

    assert receiver.ids == [first.pk, second.pk]
