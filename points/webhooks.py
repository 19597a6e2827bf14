"""Outbound webhooks: outbox events fanned out to endpoints, signed, sent, retried, logged.

api.md, "Webhooks (outbound)"; the decisions are in docs/adr/0010-webhooks.md. In short:

- `fan_out_events` turns unpublished OutboxEvent rows into one WebhookDelivery per subscribed
  active endpoint, set-based in chunks (`FOR UPDATE SKIP LOCKED`, `ON CONFLICT DO NOTHING` on
  (endpoint, event)), and marks the events published in the same transaction.
- `send_due_deliveries` claims due deliveries in a short transaction (a lease on
  `next_attempt_at`), commits, POSTs them with no transaction open, then records each attempt in
  a short transaction of its own. A delivery of a member waits while an earlier delivery of that
  member to the same endpoint is pending or retrying; nothing is sent past the oldest event not
  yet fanned out.
- A failed attempt retries after `retry_delay(n)` (1 min x 3^(n-1), at most 8 h); the 10th
  failure of a delivery gives up, about 30 hours after its first attempt. The endpoint pauses
  after each failure on the same schedule, and after `failure_limit` failures in a row it is
  disabled and the operators who may change endpoints get an email.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q, Value
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from points.models import OutboxEvent, Partner, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# The types an endpoint can subscribe to in admin: api.md's list first, then the other events the
# ledger writes. Matching is by the type's name, so a new type only needs adding here.
EVENT_TYPES = [
    ("points.earned", gettext_lazy("points earned")),
    ("points.spent", gettext_lazy("points spent")),
    ("points.expired", gettext_lazy("points expired")),
    ("points.expiring_soon", gettext_lazy("points expiring soon")),
    ("tier.changed", gettext_lazy("tier changed")),
    ("redemption.updated", gettext_lazy("redemption updated")),
    ("points.redeemed", gettext_lazy("points redeemed")),
    ("points.returned", gettext_lazy("points returned")),
    ("points.reversed", gettext_lazy("points reversed (refund)")),
    ("points.adjusted", gettext_lazy("points adjusted")),
    ("points.released", gettext_lazy("pending points released")),
    ("points.transferred", gettext_lazy("points transferred")),
    ("points.converted", gettext_lazy("points converted")),
]

SIGNATURE_HEADER = "Loyalty-Signature"
SECRET_PREFIX = "whsec_"
RETRY_BASE = timedelta(minutes=1)
RETRY_FACTOR = 3
RETRY_CAP = timedelta(hours=8)
# 9 retries: 1+3+9+27+81+243 min, then 8 h three times = 30 h 4 min after the first attempt.
MAX_ATTEMPTS = 10
# Seconds per socket operation (connect, each read): a slow receiver must not stall the queue.
TIMEOUT_SECONDS = 5
RESPONSE_KEPT_CHARS = 1000
# A claimed delivery is not claimed again before this (a worker that died mid-send): longer than
# a batch can take (SEND_BATCH x a few timeouts).
CLAIM_LEASE = timedelta(minutes=10)
SEND_BATCH = 50
FAN_OUT_BATCH = 5000
# One task run stops claiming after this many seconds; the next beat run goes on.
RUN_BUDGET_SECONDS = 50.0
Delivery = WebhookDelivery.State
UNDELIVERED = [Delivery.PENDING, Delivery.RETRYING]


def retry_delay(failures: int) -> timedelta:
    """Wait after the `failures`-th failure in a row: 1, 3, 9, 27, 81, 243 min, then 8 h."""
    return min(RETRY_BASE * RETRY_FACTOR ** max(failures - 1, 0), RETRY_CAP)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body" keyed with the endpoint's secret>`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event: OutboxEvent) -> bytes:
    """The POSTed JSON: the same bytes for every attempt and endpoint of an event."""
    document = {
        "id": event.pk,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "data": event.payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# --- Endpoints ---------------------------------------------------------------------------------
def endpoint_create(
    *, partner: Partner, url: str, event_types: list[str], failure_limit: int = 10
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint with a new secret; returns the secret too, to be shown once."""
    endpoint = WebhookEndpoint(
        partner=partner,
        url=url,
        event_types=list(event_types),
        failure_limit=failure_limit,
    )
    return endpoint_save(endpoint=endpoint), endpoint.secret


def endpoint_save(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Save an endpoint edited by an operator. A new one gets a secret. One switched back on
    starts with a clean failure record (the next failure does not disable it again) and its
    undelivered deliveries are due at once (none waits out a retry delay), in each member's
    order."""
    with transaction.atomic():
        if not endpoint.secret:
            endpoint.secret = new_secret()
        was_active = (
            endpoint.pk is not None
            and WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).exists()
        )
        if endpoint.is_active and not was_active:
            endpoint.consecutive_failures = 0
            endpoint.paused_until = None
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
        endpoint.save()
        if endpoint.is_active and not was_active:
            WebhookDelivery.objects.filter(endpoint=endpoint, state__in=UNDELIVERED).update(
                next_attempt_at=Least("next_attempt_at", Value(timezone.now()))
            )
    return endpoint


def endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.is_active = True
    return endpoint_save(endpoint=endpoint)


def endpoint_roll_secret(*, endpoint: WebhookEndpoint) -> str:
    """Replace the signing secret; deliveries from now on are signed with the new one."""
    secret = new_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret)
    endpoint.secret = secret
    return secret


# --- Fan-out -----------------------------------------------------------------------------------
_FAN_OUT_SQL = """
WITH picked AS (
    SELECT id, type, account_id, member_external_id
      FROM points_outboxevent
     WHERE published_at IS NULL
     ORDER BY id
     LIMIT %(batch)s
       FOR UPDATE SKIP LOCKED
),
queued AS (
    INSERT INTO points_webhookdelivery
           (endpoint_id, event_id, member_id, state, attempts, next_attempt_at, created_at)
    SELECT ep.id, p.id, COALESCE(a.member_id, m.id), 'pending', 0, %(now)s, %(now)s
      FROM picked p
      -- an endpoint disabled after failures still queues: switched back on, it loses nothing
      JOIN points_webhookendpoint ep
        ON (ep.is_active OR ep.disabled_at IS NOT NULL) AND p.type = ANY(ep.event_types)
      LEFT JOIN points_account a ON a.id = p.account_id
      -- events written without an account (redemptions) name the member by external id
      LEFT JOIN members_member m
             ON p.account_id IS NULL AND m.external_id = p.member_external_id
    ON CONFLICT ON CONSTRAINT webhook_delivery_endpoint_event DO NOTHING
    RETURNING 1
),
published AS (
    UPDATE points_outboxevent o SET published_at = %(now)s FROM picked p WHERE o.id = p.id
)
SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM queued)
"""


@dataclass
class FanOutRun:
    events: int = 0
    deliveries: int = 0
    chunks: int = 0


def fan_out_events(*, now: datetime, batch_size: int = FAN_OUT_BATCH) -> FanOutRun:
    """Queue a delivery of every unpublished outbox event to each endpoint subscribed to its type
    that is active or was disabled after failures (not one switched off by an operator), oldest
    events first, one transaction per chunk.

    Idempotent and restartable: an event is marked published in the transaction that queues its
    deliveries, and (endpoint, event) is unique. Concurrent runs skip each other's rows.
    """
    run = FanOutRun()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_FAN_OUT_SQL, {"batch": batch_size, "now": now})
            events, deliveries = cursor.fetchone()
        if not events:
            return run
        run.events += events
        run.deliveries += deliveries
        run.chunks += 1


# --- Sending -----------------------------------------------------------------------------------
_CLAIM_SQL = """
WITH due AS (
    SELECT d.id
      FROM points_webhookdelivery d
      JOIN points_webhookendpoint ep ON ep.id = d.endpoint_id
     WHERE d.state IN ('pending', 'retrying')
       AND d.next_attempt_at <= %(now)s
       AND d.event_id < %(horizon)s
       AND ep.is_active
       AND (ep.paused_until IS NULL OR ep.paused_until <= %(now)s)
       AND (d.member_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM points_webhookdelivery earlier
             WHERE earlier.endpoint_id = d.endpoint_id
               AND earlier.member_id = d.member_id
               AND earlier.event_id < d.event_id
               AND earlier.state IN ('pending', 'retrying')))
     ORDER BY d.next_attempt_at, d.id
     LIMIT %(batch)s
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE points_webhookdelivery d
   SET next_attempt_at = %(lease)s
  FROM due
 WHERE d.id = due.id
RETURNING d.id
"""


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    duration_ms: int
    error: str = ""
    response_body: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class SendRun:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    endpoints_disabled: list[int] = field(default_factory=list)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer other than 2xx: a failure, never a POST to another address.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_event(*, url: str, body: bytes, signature: str, event: OutboxEvent) -> AttemptOutcome:
    """POST one signed event. Never raises for what the network or the receiver does."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "loyalty-webhooks/1",
            SIGNATURE_HEADER: signature,
            "Loyalty-Event-Id": str(event.pk),
            "Loyalty-Event-Type": event.type,
        },
    )
    started = time.monotonic()
    status, error, text = None, "", b""
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
            text = response.read(RESPONSE_KEPT_CHARS)
    except urllib.error.HTTPError as answer:  # a non-2xx answer
        status = answer.code
        try:
            text = answer.read(RESPONSE_KEPT_CHARS)
        except (OSError, http.client.HTTPException):
            text = b""
        answer.close()
    except (OSError, http.client.HTTPException, ValueError) as failure:
        error = f"{type(failure).__name__}: {failure}"
    duration_ms = int((time.monotonic() - started) * 1000)
    return AttemptOutcome(
        status_code=status,
        duration_ms=duration_ms,
        error=error,
        response_body=text.decode("utf-8", errors="replace")[:RESPONSE_KEPT_CHARS],
    )


def _send_horizon() -> int:
    """Nothing at or after the oldest event not yet fanned out is sent: an earlier event of the
    same member may still become a delivery (another fan-out chunk in flight)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) FROM points_outboxevent WHERE published_at IS NULL")
        oldest = cursor.fetchone()[0]
    return oldest if oldest is not None else 2**63 - 1


def _claim(*, now: datetime, batch_size: int) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "now": now,
                "lease": now + CLAIM_LEASE,
                "horizon": _send_horizon(),
                "batch": batch_size,
            },
        )
        return [row[0] for row in cursor.fetchall()]


def record_attempt(
    *, delivery_id: int, outcome: AttemptOutcome, now: datetime
) -> WebhookDelivery | None:
    """Log an attempt and move the delivery and its endpoint on, in one short transaction.

    Success: delivered; the endpoint's failure run ends. Failure: retry after
    `retry_delay(attempts)` or give up after MAX_ATTEMPTS; the endpoint pauses for
    `retry_delay(failures in a row)` and is disabled when that run reaches its failure limit.
    Locks the endpoint row, then the delivery row. None when an operator deleted the endpoint
    while the POST was under way.
    """
    with transaction.atomic():
        endpoint_id = (
            WebhookDelivery.objects.filter(pk=delivery_id)
            .values_list("endpoint_id", flat=True)
            .first()
        )
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if endpoint is None or delivery is None:
            return None
        WebhookAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            succeeded=outcome.succeeded,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            response_body=outcome.response_body,
        )
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        if outcome.succeeded:
            delivery.state = Delivery.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            endpoint.consecutive_failures = 0
            endpoint.paused_until = None
        else:
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.state = Delivery.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.state = Delivery.RETRYING
                delivery.next_attempt_at = now + retry_delay(delivery.attempts)
            endpoint.consecutive_failures += 1
            endpoint.paused_until = now + retry_delay(endpoint.consecutive_failures)
            if endpoint.is_active and endpoint.consecutive_failures >= endpoint.failure_limit:
                _disable(endpoint=endpoint, outcome=outcome, now=now)
        delivery.save(
            update_fields=[
                "attempts",
                "last_status_code",
                "state",
                "delivered_at",
                "next_attempt_at",
            ]
        )
        endpoint.save(
            update_fields=[
                "consecutive_failures",
                "paused_until",
                "is_active",
                "disabled_at",
                "disabled_reason",
            ]
        )
    return delivery


def _describe(outcome: AttemptOutcome) -> str:
    if outcome.status_code is not None:
        return _("HTTP %(code)d") % {"code": outcome.status_code}
    return outcome.error or _("no answer")


def _disable(*, endpoint: WebhookEndpoint, outcome: AttemptOutcome, now: datetime) -> None:
    endpoint.is_active = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = _(
        "Disabled after %(count)d failed attempts in a row; the last one: %(last)s."
    ) % {"count": endpoint.consecutive_failures, "last": _describe(outcome)}
    logger.error("webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)
    endpoint_id, reason = endpoint.pk, endpoint.disabled_reason
    transaction.on_commit(lambda: alert_operators(endpoint_id=endpoint_id, reason=reason))


def endpoint_operators() -> Iterable[str]:
    """Email addresses of the active staff who may change webhook endpoints (and so switch a
    disabled one back on)."""
    permission = {"codename": "change_webhookendpoint", "content_type__app_label": "points"}
    users = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .filter(
            Q(is_superuser=True)
            | Q(**{f"user_permissions__{key}": value for key, value in permission.items()})
            | Q(**{f"groups__permissions__{key}": value for key, value in permission.items()})
        )
        .exclude(email="")
        .distinct()
        .order_by("email")
    )
    return list(users.values_list("email", flat=True).distinct())


def alert_operators(*, endpoint_id: int, reason: str) -> int:
    """Email the endpoint's disabling to the operators who can switch it back on."""
    endpoint = WebhookEndpoint.objects.select_related("partner").filter(pk=endpoint_id).first()
    recipients = endpoint_operators()
    if endpoint is None or not recipients:
        logger.error("webhook endpoint %s disabled; no operator to email", endpoint_id)
        return 0
    subject = _("Webhook endpoint disabled: %(endpoint)s") % {"endpoint": endpoint}
    message = _(
        "The webhook endpoint %(url)s of %(partner)s was disabled.\n%(reason)s\n\n"
        "Its events are still queued, none is lost. When the receiver works again, switch the "
        "endpoint back on in the admin (webhook endpoints): sending resumes in order."
    ) % {"url": endpoint.url, "partner": endpoint.partner.name, "reason": reason}
    try:
        return send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, list(recipients))
    except Exception:
        # Runs after the disabling committed, in the middle of a sending run: a mail server
        # that is down must not stop the run (the admin banner and the log still tell).
        logger.exception("could not email the disabling of webhook endpoint %s", endpoint_id)
        return 0


def _release(*, delivery_ids: list[int], until: datetime) -> None:
    # Claimed but not sent (its endpoint failed earlier in this run): due again when it resumes.
    WebhookDelivery.objects.filter(pk__in=delivery_ids, state__in=UNDELIVERED).update(
        next_attempt_at=until
    )


def send_due_deliveries(
    *,
    now: datetime,
    batch_size: int = SEND_BATCH,
    budget_seconds: float = RUN_BUDGET_SECONDS,
) -> SendRun:
    """Send every delivery due at `now`, each member's in event order, no transaction open
    during a POST. Safe to run concurrently (claims skip each other's rows)."""
    run = SendRun()
    started = time.monotonic()
    paused: dict[int, datetime] = {}
    while time.monotonic() - started < budget_seconds:
        claimed = _claim(now=now, batch_size=batch_size)
        if not claimed:
            break
        deliveries = (
            WebhookDelivery.objects.filter(pk__in=claimed)
            .select_related("event", "endpoint")
            .order_by("event_id")
        )
        for delivery in deliveries:
            endpoint = delivery.endpoint
            if endpoint.pk in paused:
                _release(delivery_ids=[delivery.pk], until=paused[endpoint.pk])
                continue
            body = event_body(delivery.event)
            signature = signature_header(
                secret=endpoint.secret, timestamp=int(now.timestamp()), body=body
            )
            outcome = post_event(
                url=endpoint.url, body=body, signature=signature, event=delivery.event
            )
            recorded = record_attempt(delivery_id=delivery.pk, outcome=outcome, now=now)
            if recorded is None:
                continue
            run.attempts += 1
            if outcome.succeeded:
                run.delivered += 1
                continue
            run.failed += 1
            if recorded.state == Delivery.FAILED:
                run.gave_up += 1
            endpoint.refresh_from_db(fields=["is_active", "paused_until"])
            paused[endpoint.pk] = endpoint.paused_until or now
            if not endpoint.is_active:
                run.endpoints_disabled.append(endpoint.pk)
    return run


@dataclass(frozen=True)
class WebhookRun:
    fan_out: FanOutRun
    send: SendRun


def deliver_webhooks(*, now: datetime | None = None) -> WebhookRun:
    """The periodic job: queue new outbox events, then send what is due."""
    now = now or timezone.now()
    fanned = fan_out_events(now=now)
    sent = send_due_deliveries(now=now)
    return WebhookRun(fan_out=fanned, send=sent)


_PURGE_SQL = """
WITH doomed AS (
    SELECT id FROM points_webhookdelivery
     WHERE state IN ('delivered', 'failed') AND created_at < %(before)s
     LIMIT %(batch)s
       FOR UPDATE SKIP LOCKED
),
attempts AS (
    DELETE FROM points_webhookattempt a USING doomed d WHERE a.delivery_id = d.id
)
DELETE FROM points_webhookdelivery w USING doomed d WHERE w.id = d.id
"""


def purge_deliveries(*, before: datetime, batch_size: int = FAN_OUT_BATCH) -> int:
    """Delete delivered and given-up deliveries created before `before`, with their attempt
    log, in chunks (one transaction each). Undelivered ones are kept whatever their age.
    Returns how many deliveries were deleted."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_PURGE_SQL, {"before": before, "batch": batch_size})
            chunk = cursor.rowcount
        deleted += chunk
        if chunk < batch_size:
            return deleted


def redeliver(*, delivery_ids: Iterable[int], now: datetime | None = None) -> int:
    """Send these deliveries again at the next run, whatever their state, with a fresh budget of
    attempts; their active endpoints' pause after a failure ends (the operator asked for now).
    The attempt log is kept. Returns how many were queued."""
    now = now or timezone.now()
    with transaction.atomic():
        deliveries = WebhookDelivery.objects.filter(pk__in=list(delivery_ids))
        WebhookEndpoint.objects.filter(
            is_active=True, pk__in=deliveries.values("endpoint_id")
        ).update(paused_until=None)
        return deliveries.update(state=Delivery.PENDING, attempts=0, next_attempt_at=now)
