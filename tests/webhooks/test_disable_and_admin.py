"""An endpoint that keeps failing is disabled and operators are told; operators manage endpoints
and redeliver in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail

from points import services, webhooks
from points.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import OperatorFactory
from tests.webhooks.conftest import at

pytestmark = pytest.mark.django_db

T0 = at("2026-03-01 08:00")
ENDPOINTS = "/admin/points/webhookendpoint/"
DELIVERIES = "/admin/points/webhookdelivery/"


def earn(member, points: int = 10) -> OutboxEvent:
    services.earn(member=member, points=points)
    return OutboxEvent.objects.filter(type="points.earned").latest("id")


@pytest.fixture
def operators(db):
    """Who gets the alert: staff allowed to change endpoints (directly or as superuser)."""
    change = Permission.objects.get(
        codename="change_webhookendpoint", content_type__app_label="points"
    )
    OperatorFactory(username="ops", email="ops@example.com", is_staff=True).user_permissions.add(
        change
    )
    integrators = Group.objects.create(name="integrators")
    integrators.permissions.add(change)
    OperatorFactory(username="it", email="it@example.com", is_staff=True).groups.add(integrators)
    OperatorFactory(username="boss", email="boss@example.com", is_staff=True, is_superuser=True)
    OperatorFactory(username="viewer", email="viewer@example.com", is_staff=True)
    OperatorFactory(username="gone", email="gone@example.com", is_staff=True, is_active=False)


def test_an_endpoint_is_disabled_after_its_run_of_failures_and_operators_are_alerted(
    receiver, endpoint, member, operators, client, django_capture_on_commit_callbacks
):
    # given: a receiver that is down, an endpoint disabled after 3 failures in a row
    receiver.default = 503
    endpoint.failure_limit = 3
    endpoint.save()
    first = earn(member)

    # when: the job runs whenever the endpoint's pause is over
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.deliver_webhooks(now=T0)
        webhooks.deliver_webhooks(now=T0 + timedelta(minutes=1))
        assert not mail.outbox
        webhooks.deliver_webhooks(now=T0 + timedelta(minutes=4))

    # then: disabled with the reason, one email to the operators who can switch it back on
    endpoint.refresh_from_db()
    assert endpoint.is_active is False
    assert endpoint.disabled_at == T0 + timedelta(minutes=4)
    assert "3 failed attempts in a row" in endpoint.disabled_reason
    assert "HTTP 503" in endpoint.disabled_reason
    assert len(mail.outbox) == 1
    alert = mail.outbox[0]
    assert sorted(alert.to) == ["boss@example.com", "it@example.com", "ops@example.com"]
    assert receiver.url in alert.body and "HTTP 503" in alert.body
    assert receiver.url in alert.subject

    # and: nothing more is sent, but new events are still queued for it
    second = earn(member)
    webhooks.deliver_webhooks(now=T0 + timedelta(hours=6))
    assert receiver.ids == [first.pk] * 3
    assert WebhookDelivery.objects.filter(event=second, state="pending").exists()

    # and: the admin shows it on the webhook pages
    client.force_login(OperatorFactory(username="admin2", is_staff=True, is_superuser=True))
    page = client.get(ENDPOINTS, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "is disabled since" in page and "HTTP 503" in page

    # when: the receiver works again and an operator switches the endpoint on
    receiver.default = 200
    response = client.post(
        ENDPOINTS,
        {"action": "switch_on", "_selected_action": [endpoint.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    assert "1 endpoint switched on." in response.content.decode()
    webhooks.deliver_webhooks(now=T0 + timedelta(hours=6, seconds=10))

    # then: the backlog goes out in order and the failure run starts again from zero
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.consecutive_failures, endpoint.disabled_at) == (
        True,
        0,
        None,
    )
    assert receiver.ids == [first.pk] * 4 + [second.pk]
    assert len(mail.outbox) == 1


def test_a_success_ends_the_run_of_failures(receiver, endpoint, member, other_member):
    endpoint.failure_limit = 2
    endpoint.save()
    receiver.answers = [500, 200, 500]
    earn(member)
    earn(other_member)

    webhooks.deliver_webhooks(now=T0)  # 500
    webhooks.deliver_webhooks(now=T0 + timedelta(minutes=1))  # 200, then the other: 500

    endpoint.refresh_from_db()
    assert [r.status for r in receiver.received] == [500, 200, 500]
    assert (endpoint.is_active, endpoint.consecutive_failures) == (True, 1)


def test_an_endpoint_switched_off_by_hand_queues_nothing(receiver, endpoint, member):
    endpoint.is_active = False
    webhooks.endpoint_save(endpoint=endpoint)
    earn(member)

    webhooks.deliver_webhooks(now=T0)

    assert not WebhookDelivery.objects.exists()
    assert OutboxEvent.objects.get().published_at == T0


def test_the_signing_secret_is_shown_once_when_the_endpoint_is_created(admin_client, partner):
    response = admin_client.post(
        f"{ENDPOINTS}add/",
        {
            "partner": partner.pk,
            "url": "https://partner.example.com/hooks",
            "event_types": ["points.earned", "points.expiring_soon"],
            "is_active": "on",
            "failure_limit": 10,
        },
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) > 40
    assert endpoint.event_types == ["points.earned", "points.expiring_soon"]
    assert f"Signing secret of {endpoint}: {endpoint.secret}" in response.content.decode()
    change_page = admin_client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in change_page
    assert endpoint.secret not in admin_client.get(ENDPOINTS).content.decode()


def test_rolling_the_secret_signs_from_then_on_with_the_new_one(
    admin_client, receiver, endpoint, member
):
    old = endpoint.secret
    response = admin_client.post(
        ENDPOINTS,
        {"action": "roll_secret", "_selected_action": [endpoint.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in response.content.decode()
    earn(member)

    webhooks.deliver_webhooks(now=T0)
    assert [r.status for r in receiver.received] == [401]  # the receiver still has the old one
    receiver.secret = endpoint.secret
    webhooks.deliver_webhooks(now=T0 + timedelta(minutes=1))
    assert [r.status for r in receiver.received] == [401, 200]


def test_an_operator_redelivers_a_delivery_from_the_admin(admin_client, receiver, endpoint, member):
    # given: an event delivered once
    event = earn(member)
    webhooks.deliver_webhooks(now=T0)
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "delivered"

    # when: the operator selects it and runs "Redeliver"
    response = admin_client.post(
        DELIVERIES,
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    assert "1 delivery will be sent again" in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
    webhooks.deliver_webhooks()  # due at once: the action queued it for the moment it ran

    # then: the partner gets it again, and both attempts are in its log
    assert receiver.ids == [event.pk, event.pk]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2
    page = admin_client.get(f"{DELIVERIES}{delivery.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    logged = [row.original for row in page.context["inline_admin_formsets"][0]]
    assert [(a.status_code, a.succeeded) for a in logged] == [(200, True), (200, True)]
    assert str(event.pk) in page.content.decode()


def test_the_redeliver_action_needs_the_change_permission(client, receiver, endpoint, member):
    earn(member)
    webhooks.deliver_webhooks(now=T0)
    viewer = OperatorFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_webhookdelivery", content_type__app_label="points")
    )
    client.force_login(viewer)
    delivery = WebhookDelivery.objects.get()

    client.post(DELIVERIES, {"action": "redeliver", "_selected_action": [delivery.pk]})

    delivery.refresh_from_db()
    assert delivery.state == "delivered"


def test_the_webhook_pages_open_and_filter(admin_client, receiver, endpoint, member):
    earn(member)
    webhooks.deliver_webhooks(now=T0)
    delivery = WebhookDelivery.objects.get()
    for url in [
        ENDPOINTS,
        f"{ENDPOINTS}add/",
        f"{ENDPOINTS}{endpoint.pk}/change/",
        DELIVERIES,
        f"{DELIVERIES}{delivery.pk}/change/",
    ]:
        assert admin_client.get(url).status_code == 200, url

    def listed(**params):
        return [d.pk for d in admin_client.get(DELIVERIES, params).context["cl"].result_list]

    assert listed(type="points.earned") == [delivery.pk]
    assert listed(type="tier.changed") == []
    assert listed(state__exact="delivered") == [delivery.pk]
    assert listed(q="u-1001") == [delivery.pk]


def test_a_mail_server_that_is_down_does_not_stop_the_run(
    receiver, endpoint, member, operators, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.webhooks.conftest.MailServerDown"
    endpoint.failure_limit = 1
    endpoint.save()
    receiver.answers = [500]
    earn(member)

    with django_capture_on_commit_callbacks(execute=True):
        run = webhooks.deliver_webhooks(now=T0)

    endpoint.refresh_from_db()
    assert (run.send.attempts, run.send.endpoints_disabled) == (1, [endpoint.pk])
    assert endpoint.is_active is False
