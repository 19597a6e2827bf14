"""Deliveries reach a real HTTP receiver signed, retried with backoff, each member's in order."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from django.conf import settings

from points import services, tasks, webhooks
from points.models import OutboxEvent, WebhookAttempt, WebhookDelivery
from tests.webhooks.conftest import at

pytestmark = pytest.mark.django_db

T0 = at("2026-03-01 08:00")


def attempts_of(delivery: WebhookDelivery) -> list[tuple[int | None, bool]]:
    return list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list("status_code", "succeeded")
    )


def event_for(member, type: str = "points.earned", **payload) -> OutboxEvent:
    return OutboxEvent.objects.create(
        type=type,
        member_external_id=member.external_id,
        account_id=services.account_for_member(member=member).pk,
        payload={"member": member.external_id, **payload},
    )


def test_a_failed_delivery_is_retried_with_backoff_until_the_receiver_accepts_it(
    receiver, endpoint, member
):
    # given: a receiver that answers 500 twice, then 200
    receiver.answers = [500, 500]
    services.earn(member=member, points=120)
    event = OutboxEvent.objects.get(type="points.earned")

    # when: the job runs now, too early for the retry, then when each retry is due
    webhooks.deliver_webhooks(now=T0)
    webhooks.deliver_webhooks(now=T0 + timedelta(seconds=59))
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.next_attempt_at) == ("retrying", T0 + timedelta(minutes=1))
    webhooks.deliver_webhooks(now=T0 + timedelta(minutes=1))
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == T0 + timedelta(minutes=4)
    webhooks.deliver_webhooks(now=T0 + timedelta(minutes=4))

    # then: three signed POSTs of the same body, three attempts in the log
    assert [r.status for r in receiver.received] == [500, 500, 200]
    assert all(r.signature_ok for r in receiver.received)
    assert len({r.raw for r in receiver.received}) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert delivery.delivered_at == T0 + timedelta(minutes=4)
    assert attempts_of(delivery) == [(500, False), (500, False), (200, True)]
    assert list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list("attempted_at", flat=True)
    ) == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)]
    assert delivery.endpoint.consecutive_failures == 0
    body = receiver.received[-1].body
    assert body == {
        "id": event.pk,
        "type": "points.earned",
        "created_at": event.created_at.isoformat(),
        "data": event.payload,
    }
    assert body["data"]["points"] == 120
    assert (
        receiver.received[-1]
        .headers["Loyalty-Signature"]
        .startswith(f"t={int((T0 + timedelta(minutes=4)).timestamp())},v1=")
    )


def test_a_receiver_with_the_wrong_secret_refuses_the_delivery(receiver, endpoint, member):
    receiver.secret = "whsec_not-the-one"
    event_for(member)

    webhooks.deliver_webhooks(now=T0)

    assert [(r.status, r.signature_ok) for r in receiver.received] == [(401, False)]
    assert WebhookDelivery.objects.get().state == "retrying"


def test_the_backoff_goes_on_for_more_than_24_hours_then_gives_up(receiver, endpoint, member):
    receiver.default = 503
    endpoint.failure_limit = 100
    endpoint.save()
    first = event_for(member)
    later = event_for(member)

    moment = T0
    webhooks.deliver_webhooks(now=moment)
    delivery = WebhookDelivery.objects.get(event=first)
    for _attempt in range(webhooks.MAX_ATTEMPTS):  # bounded: a delivery that never gives up
        if delivery.state != "retrying":  # fails the test instead of hanging it
            break
        moment = delivery.next_attempt_at
        webhooks.deliver_webhooks(now=moment)
        delivery.refresh_from_db()

    assert delivery.state == "failed"
    log = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("attempted_at"))
    assert len(log) == webhooks.MAX_ATTEMPTS == 10
    assert log[-1].attempted_at - log[0].attempted_at >= timedelta(hours=24)
    gaps = [b.attempted_at - a.attempted_at for a, b in pairwise(log)]
    assert gaps[:4] == [timedelta(minutes=m) for m in (1, 3, 9, 27)]
    assert gaps == sorted(gaps)  # never shorter than the one before
    # Given up, it no longer holds back the member's next event (once the endpoint's pause ends).
    assert later.pk not in receiver.ids
    delivery.endpoint.refresh_from_db()
    webhooks.deliver_webhooks(now=delivery.endpoint.paused_until)
    assert receiver.ids[-1] == later.pk


def test_an_unreachable_receiver_is_logged_without_a_response_code(partner, member):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhooks.endpoint_create(
        partner=partner, url=f"http://127.0.0.1:{port}/x", event_types=["points.earned"]
    )
    event_for(member)

    webhooks.deliver_webhooks(now=T0)

    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.succeeded) == (None, False)
    assert "refused" in attempt.error.lower()
    assert WebhookDelivery.objects.get().state == "retrying"


def test_a_members_events_are_delivered_in_the_order_they_happened(
    receiver, endpoint, member, other_member
):
    # given: three events of one member, then one of another; the first fails twice
    e1, e2, e3 = (event_for(member, n=n) for n in (1, 2, 3))
    e4 = event_for(other_member)
    failures = {"left": 2}

    def first_fails_twice(body):
        if body["id"] == e1.pk and failures["left"]:
            failures["left"] -= 1
            return 500
        return None

    receiver.answer_for = first_fails_twice

    # when
    webhooks.deliver_webhooks(now=T0)
    assert receiver.ids == [e1.pk]
    webhooks.deliver_webhooks(now=T0 + timedelta(minutes=1))
    assert receiver.ids == [e1.pk, e1.pk]
    webhooks.deliver_webhooks(now=T0 + timedelta(minutes=4))

    # then: the member's later events only after the first got through, in order
    assert receiver.ids == [e1.pk, e1.pk, e1.pk, e4.pk, e2.pk, e3.pk]
    assert [r.status for r in receiver.received] == [500, 500, 200, 200, 200, 200]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_a_later_event_waits_while_an_earlier_one_of_the_member_is_retrying(
    receiver, endpoint, member, other_member
):
    first, second = event_for(member), event_for(member)
    elsewhere = event_for(other_member)
    webhooks.fan_out_events(now=T0)
    # The first is waiting for its retry; the endpoint itself is not paused.
    WebhookDelivery.objects.filter(event=first).update(
        state="retrying", attempts=1, next_attempt_at=T0 + timedelta(hours=1)
    )

    webhooks.send_due_deliveries(now=T0)

    assert receiver.ids == [elsewhere.pk]
    assert WebhookDelivery.objects.get(event=second).state == "pending"

    webhooks.send_due_deliveries(now=T0 + timedelta(hours=1))

    assert receiver.ids == [elsewhere.pk, first.pk, second.pk]


def test_nothing_is_sent_past_an_event_not_yet_fanned_out(receiver, endpoint, member):
    # given: a later event queued while an earlier one is still unpublished (another chunk)
    earlier, later = event_for(member), event_for(member)
    webhooks.fan_out_events(now=T0)
    WebhookDelivery.objects.filter(event=earlier).delete()
    OutboxEvent.objects.filter(pk=earlier.pk).update(published_at=None)

    webhooks.send_due_deliveries(now=T0)
    assert receiver.ids == []

    webhooks.deliver_webhooks(now=T0)
    assert receiver.ids == [earlier.pk, later.pk]


def test_the_beat_task_reports_what_it_did(receiver, endpoint, member):
    event_for(member)

    result = tasks.deliver_webhooks(as_of=T0.isoformat())

    assert result == {
        "events": 1,
        "queued": 1,
        "attempts": 1,
        "delivered": 1,
        "failed": 0,
        "gave_up": 0,
        "endpoints_disabled": [],
    }
    assert json.loads(receiver.received[0].raw)["type"] == "points.earned"


def test_the_readme_snippet_verifies_a_real_delivery(receiver, endpoint, member):
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1]
    snippet = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)  # the documented code, exactly as a partner copies it
    event_for(member)

    webhooks.deliver_webhooks()  # now: the snippet refuses old timestamps

    received = receiver.received[0]
    header = received.headers["Loyalty-Signature"]
    assert namespace["verify"](received.raw, header, endpoint.secret) is True
    assert namespace["verify"](received.raw + b" ", header, endpoint.secret) is False
    assert namespace["verify"](received.raw, header, "whsec_other") is False


def test_the_job_is_on_the_beat_schedule():
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "points.deliver_webhooks"
    )
    assert entry["schedule"] <= 60
    assert tasks.deliver_webhooks.name == "points.deliver_webhooks"
