"""Outbox events become one delivery per subscribed endpoint, once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from points import services, tasks, webhooks
from points.models import OutboxEvent, WebhookAttempt, WebhookDelivery
from tests.webhooks.conftest import at

pytestmark = pytest.mark.django_db

T0 = at("2026-03-01 08:00")


def test_each_event_goes_to_the_endpoints_subscribed_to_its_type_once(
    partner, member, other_member
):
    # given: one endpoint for earnings, one for redemptions and tiers, one switched off
    earnings, _ = webhooks.endpoint_create(
        partner=partner, url="https://a.example.com/h", event_types=["points.earned"]
    )
    orders, _ = webhooks.endpoint_create(
        partner=partner,
        url="https://b.example.com/h",
        event_types=["redemption.updated", "tier.changed"],
    )
    off, _ = webhooks.endpoint_create(
        partner=partner, url="https://c.example.com/h", event_types=["points.earned"]
    )
    off.is_active = False
    webhooks.endpoint_save(endpoint=off)
    services.earn(member=member, points=10)
    earned = OutboxEvent.objects.get(type="points.earned")
    # Written without an account, as rewards_mall does: the member is found by external id.
    redemption = OutboxEvent.objects.create(
        type="redemption.updated",
        member_external_id=other_member.external_id,
        payload={"redemption_id": 7, "status": "shipped"},
    )
    adjusted = OutboxEvent.objects.create(type="points.adjusted", payload={})

    # when
    run = webhooks.fan_out_events(now=T0)

    # then
    assert (run.events, run.deliveries) == (3, 2)
    assert sorted(WebhookDelivery.objects.values_list("endpoint_id", "event_id", "member_id")) == [
        (earnings.pk, earned.pk, member.pk),
        (orders.pk, redemption.pk, other_member.pk),
    ]
    assert set(WebhookDelivery.objects.values_list("state", "next_attempt_at")) == {("pending", T0)}
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    assert OutboxEvent.objects.get(pk=adjusted.pk).published_at == T0

    # and: fanning the same events out again (a run killed before its commit) queues nothing new
    OutboxEvent.objects.update(published_at=None)
    again = webhooks.fan_out_events(now=T0)
    assert (again.events, again.deliveries) == (3, 0)
    assert WebhookDelivery.objects.count() == 2


def test_fan_out_works_in_chunks(partner, member):
    webhooks.endpoint_create(
        partner=partner, url="https://a.example.com/h", event_types=["points.earned"]
    )
    for points in range(1, 8):
        services.earn(member=member, points=points)

    run = webhooks.fan_out_events(now=T0, batch_size=3)

    assert (run.events, run.deliveries, run.chunks) == (7, 7, 3)


def test_the_backoff_schedule_covers_more_than_24_hours():
    delays = [webhooks.retry_delay(n) for n in range(1, webhooks.MAX_ATTEMPTS)]

    assert [d.total_seconds() / 60 for d in delays[:6]] == [1, 3, 9, 27, 81, 243]
    assert max(delays).total_seconds() == 8 * 3600
    assert sum(delays, start=delays[0] * 0).total_seconds() >= 24 * 3600


def test_finished_deliveries_are_purged_after_the_retention_period(
    receiver, endpoint, member, settings
):
    # given: three events fanned out 40 days ago: one delivered, one given up, one still waiting
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    old = [OutboxEvent.objects.create(type="points.earned", payload={}) for _ in range(3)]
    webhooks.fan_out_events(now=T0)
    webhooks.send_due_deliveries(now=T0)  # all three delivered (no member: no order to keep)
    _delivered, gave_up, waiting = (WebhookDelivery.objects.get(event=e) for e in old)
    WebhookDelivery.objects.filter(pk=gave_up.pk).update(state="failed")
    WebhookDelivery.objects.filter(pk=waiting.pk).update(state="retrying")
    # and one delivered yesterday
    recent = OutboxEvent.objects.create(type="points.earned", payload={})
    webhooks.deliver_webhooks(now=T0 + timedelta(days=39))

    # when
    purged = tasks.purge_webhook_deliveries(as_of=(T0 + timedelta(days=40)).isoformat())

    # then
    assert purged == 2
    assert sorted(WebhookDelivery.objects.values_list("event_id", flat=True)) == [
        waiting.event_id,
        recent.pk,
    ]
    assert set(WebhookAttempt.objects.values_list("delivery__event_id", flat=True)) == {
        waiting.event_id,
        recent.pk,
    }
