"""Expiry reminders, the services: find members whose points expire within a configured
window, and send one message per member, window, expiry date and channel, never two
(docs/adr/0011-expiry-reminders.md).

A run has two phases, both restartable at any point:
1. Claim (chunked by account, each chunk one transaction): the due (member, expiry date)
   groups are computed in SQL; one ReminderDelivery row per channel is inserted with
   ON CONFLICT DO NOTHING on the unique (member, window, date, channel), so only new rows come
   back. Inbox messages and `points.expiring_soon` outbox events are written in the same
   transaction and their rows marked sent: exactly once. Email and SMS rows keep their
   rendered text, status `claimed`.
2. Send (email and SMS, one row at a time): the row goes `sending` in its own committed
   statement (FOR UPDATE SKIP LOCKED, so parallel runs share the queue), is handed to the
   backend, then goes `sent`. A run killed before `sending` leaves `claimed` rows that the next
   run sends; a row killed in `sending` is in doubt and is never sent again by the job (at most
   once; the admin lists it and can queue it again).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.utils import DNS_NAME
from django.db import connection, transaction
from django.template import Context, Template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns.exceptions import InvalidReminderRun
from campaigns.models import Channel, MessageTemplate, ReminderDelivery, ReminderSettings
from campaigns.sms import SmsSender, sms_sender
from members.services import InboxDraft, post_inbox_messages
from points.expiry import end_of_day
from points.services import programme_settings, record_outbox_events

Status = ReminderDelivery.Status
EXPIRING_SOON = "points.expiring_soon"
EXTERNAL_CHANNELS = (Channel.EMAIL, Channel.SMS)
# A send that raised is retried by later runs until it has been tried this often.
MAX_ATTEMPTS = 3
SUBJECT_LENGTH = 200

Progress = Callable[[int, int], None]


@dataclass
class ReminderRun:
    """What a run did: due (member, expiry date) groups seen, rows claimed per channel, and the
    outcome of the email and SMS sends."""

    groups: int = 0
    chunks: int = 0
    claimed: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class DueGroup:
    """Points of one member expiring on one date (programme time zone)."""

    account_id: int
    member_id: int
    external_id: str
    name: str
    email: str
    phone: str
    language: str
    expires_on: date
    points: int


# Accounts with active points expiring in [as_of, horizon], in account order (lot_fifo_idx).
_PICK_ACCOUNTS_SQL = """
SELECT DISTINCT l.account_id
  FROM points_lot l
 WHERE l.state = 'active' AND l.remaining > 0
   AND l.expires_at >= %(as_of)s AND l.expires_at <= %(horizon)s
   AND l.account_id > %(after)s
 ORDER BY l.account_id
 LIMIT %(batch)s
"""

_COUNT_ACCOUNTS_SQL = """
SELECT count(DISTINCT l.account_id)
  FROM points_lot l
 WHERE l.state = 'active' AND l.remaining > 0
   AND l.expires_at >= %(as_of)s AND l.expires_at <= %(horizon)s
"""

_DUE_GROUPS_SQL = """
SELECT a.id, m.id, m.external_id, m.name, m.email, m.phone, m.language,
       (l.expires_at AT TIME ZONE %(zone)s)::date AS expires_on, sum(l.remaining)::bigint
  FROM points_account a
  JOIN members_member m ON m.id = a.member_id
  JOIN points_lot l ON l.account_id = a.id
 WHERE a.id = ANY(%(accounts)s)
   AND m.status = 'active'
   AND l.state = 'active' AND l.remaining > 0
   AND l.expires_at >= %(as_of)s AND l.expires_at <= %(horizon)s
 GROUP BY a.id, m.id, expires_on
 ORDER BY a.id, expires_on
"""

_CLAIM_SQL = """
INSERT INTO campaigns_reminderdelivery
       (member_id, window_days, expires_on, channel, points, recipient, language, status,
        subject, body, as_of, claimed_at, attempts, error)
SELECT u.member_id, u.window_days, u.expires_on, u.channel, u.points, u.recipient, u.language,
       'claimed', '', '', %(as_of)s, now(), 0, ''
  FROM unnest(%(members)s::bigint[], %(windows)s::int[], %(dates)s::date[],
              %(channels)s::text[], %(points)s::bigint[], %(recipients)s::text[],
              %(languages)s::text[])
       AS u(member_id, window_days, expires_on, channel, points, recipient, language)
    ON CONFLICT ON CONSTRAINT reminderdelivery_once DO NOTHING
RETURNING id, member_id, window_days, expires_on, channel
"""

_FILL_SQL = """
UPDATE campaigns_reminderdelivery d
   SET subject = u.subject, body = u.body, status = u.status,
       sent_at = CASE WHEN u.status = 'sent' THEN now() END
  FROM unnest(%(ids)s::bigint[], %(subjects)s::text[], %(bodies)s::text[], %(statuses)s::text[])
       AS u(id, subject, body, status)
 WHERE d.id = u.id
"""

# The next row to send, taken by this run alone; `sending` commits before the send.
_TAKE_NEXT_SQL = """
UPDATE campaigns_reminderdelivery d
   SET status = 'sending', attempts = d.attempts + 1, attempted_at = now()
 WHERE d.id = (SELECT id FROM campaigns_reminderdelivery
                WHERE status IN ('claimed', 'failed') AND attempts < %(max_attempts)s
                  AND channel = ANY(%(channels)s) AND expires_on >= %(today)s
                  AND id > %(after)s
                ORDER BY id LIMIT 1
                  FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.channel, d.recipient, d.subject, d.body, d.member_id, d.window_days,
          d.expires_on
"""

_COUNT_QUEUE_SQL = """
SELECT count(*) FROM campaigns_reminderdelivery
 WHERE status IN ('claimed', 'failed') AND attempts < %(max_attempts)s
   AND channel = ANY(%(channels)s) AND expires_on >= %(today)s
"""


def window_for(days_left: int, windows: list[int]) -> int | None:
    """The smallest window that holds `days_left` (windows sorted ascending), or None.

    One reminder per window: points 5 days from expiry get the 7-day one, whether or not the
    30-day one went out before (a lot earned late, a job that did not run)."""
    for window in windows:
        if days_left <= window:
            return window
    return None


def _mall_url() -> str:
    try:
        path = reverse("rewards_mall:home")
    except NoReverseMatch:
        return ""
    base = getattr(settings, "MALL_BASE_URL", "")
    return f"{base.rstrip('/')}{path}" if base else ""


class _Renderer:
    """Templates compiled once per run; each message rendered in the member's language."""

    def __init__(self) -> None:
        self.templates = {t.channel: t for t in MessageTemplate.objects.all()}
        self.compiled: dict[tuple[str, str], tuple[Template, Template]] = {}
        self.mall_url = _mall_url()

    def render(self, *, channel: str, group: DueGroup, window: int, today: date) -> tuple[str, str]:
        template = self.templates.get(channel)
        if template is None:
            return _default_text(group=group)
        language = "en" if group.language.startswith("en") else "zh-hans"
        key = (channel, language)
        if key not in self.compiled:
            subject, body = template.sources(language)
            self.compiled[key] = (Template(subject), Template(body))
        subject, body = self.compiled[key]
        context = {
            "name": group.name or group.external_id,
            "points": group.points,
            "expires_on": group.expires_on,
            "days_left": (group.expires_on - today).days,
            "window_days": window,
            "mall_url": self.mall_url,
        }
        # Plain text (email, SMS, the inbox escapes when it shows it): no HTML escaping here.
        with translation.override(language):
            return (
                subject.render(Context(context, autoescape=False)).strip()[:SUBJECT_LENGTH],
                body.render(Context(context, autoescape=False)).strip(),
            )


def _default_text(*, group: DueGroup) -> tuple[str, str]:
    # Only when an operator deleted a channel's template: still say the essentials.
    language = "en" if group.language.startswith("en") else "zh-hans"
    with translation.override(language):
        subject = _("Your points are expiring soon")
        body = _("%(points)d points expire on %(date)s.") % {
            "points": group.points,
            "date": group.expires_on.isoformat(),
        }
    return subject, body


def _recipient(channel: str, group: DueGroup) -> str | None:
    """Who gets it on this channel; None when the member cannot be reached there."""
    if channel == Channel.EMAIL:
        return group.email or None
    if channel == Channel.SMS:
        return group.phone or None
    return group.external_id


def _webhook_payload(*, group: DueGroup, window: int, today: date, as_of: datetime, zone) -> dict:
    return {
        "member": group.external_id,
        "points": group.points,
        "expires_on": group.expires_on.isoformat(),
        "expires_at": end_of_day(group.expires_on, zone).isoformat(),
        "days_left": (group.expires_on - today).days,
        "window_days": window,
        "as_of": as_of.isoformat(),
    }


@transaction.atomic
def _claim_chunk(
    *,
    groups: list[DueGroup],
    windows: list[int],
    channels: list[str],
    today: date,
    as_of: datetime,
    zone,
    renderer: _Renderer,
    run: ReminderRun,
) -> None:
    rows = []
    for group in groups:
        window = window_for((group.expires_on - today).days, windows)
        if window is None:
            continue
        for channel in channels:
            recipient = _recipient(channel, group)
            if recipient is not None:
                rows.append((group, window, channel, recipient))
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "as_of": as_of,
                "members": [g.member_id for g, _w, _c, _r in rows],
                "windows": [w for _g, w, _c, _r in rows],
                "dates": [g.expires_on for g, _w, _c, _r in rows],
                "channels": [c for _g, _w, c, _r in rows],
                "points": [g.points for g, _w, _c, _r in rows],
                "recipients": [r for _g, _w, _c, r in rows],
                "languages": [g.language for g, _w, _c, _r in rows],
            },
        )
        claimed = cursor.fetchall()
    if not claimed:
        return
    by_key = {(g.member_id, w, g.expires_on, c): g for g, w, c, _r in rows}
    ids, subjects, bodies, statuses = [], [], [], []
    inbox: list[InboxDraft] = []
    events: list[tuple[int, str, dict]] = []
    for delivery_id, member_id, window, expires_on, channel in claimed:
        group = by_key[(member_id, window, expires_on, channel)]
        run.claimed[channel] = run.claimed.get(channel, 0) + 1
        if channel == Channel.WEBHOOK:
            payload = _webhook_payload(
                group=group, window=window, today=today, as_of=as_of, zone=zone
            )
            events.append((group.account_id, group.external_id, payload))
            subject, body, status = EXPIRING_SOON, json.dumps(payload), Status.SENT
        else:
            subject, body = renderer.render(
                channel=channel, group=group, window=window, today=today
            )
            status = Status.SENT if channel == Channel.INBOX else Status.CLAIMED
            if channel == Channel.INBOX:
                inbox.append(InboxDraft(member_id=member_id, title=subject, body=body))
        ids.append(delivery_id)
        subjects.append(subject)
        bodies.append(body)
        statuses.append(status)
    # The messages commit with their delivery rows: a killed chunk leaves neither.
    if inbox:
        post_inbox_messages(drafts=inbox)
    if events:
        record_outbox_events(type=EXPIRING_SOON, events=events)
    with connection.cursor() as cursor:
        cursor.execute(
            _FILL_SQL, {"ids": ids, "subjects": subjects, "bodies": bodies, "statuses": statuses}
        )


def claim_reminders(
    *,
    as_of: datetime,
    batch_size: int = 1000,
    progress: Progress | None = None,
    run: ReminderRun | None = None,
) -> ReminderRun:
    """Phase 1: claim a delivery row for every due member, window, date and channel not
    claimed before; write inbox messages and webhook events with their claims."""
    if timezone.is_naive(as_of):
        raise InvalidReminderRun(_("as_of must be timezone-aware."))
    if batch_size <= 0:
        raise InvalidReminderRun(_("batch_size must be greater than zero."))
    run = run or ReminderRun()
    reminder_settings = ReminderSettings.get()
    windows = reminder_settings.window_days
    channels = reminder_settings.enabled_channels()
    if not windows or not channels:
        return run
    zone = programme_settings().zone
    today = as_of.astimezone(zone).date()
    horizon = end_of_day(today + timedelta(days=windows[-1]), zone)
    params = {"as_of": as_of, "horizon": horizon}
    total = 0
    if progress is not None:
        with connection.cursor() as cursor:
            cursor.execute(_COUNT_ACCOUNTS_SQL, params)
            total = cursor.fetchone()[0]
        progress(0, total)
    renderer = _Renderer()
    after, done = 0, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_PICK_ACCOUNTS_SQL, {**params, "after": after, "batch": batch_size})
            accounts = [row[0] for row in cursor.fetchall()]
            if not accounts:
                break
            cursor.execute(_DUE_GROUPS_SQL, {**params, "accounts": accounts, "zone": str(zone.key)})
            groups = [DueGroup(*row) for row in cursor.fetchall()]
        run.groups += len(groups)
        run.chunks += 1
        _claim_chunk(
            groups=groups,
            windows=windows,
            channels=channels,
            today=today,
            as_of=as_of,
            zone=zone,
            renderer=renderer,
            run=run,
        )
        after = accounts[-1]
        done += len(accounts)
        if progress is not None:
            progress(done, max(total, done))
    return run


class _Outlets:
    """The email connection (opened once per run) and the SMS sender."""

    def __init__(self, sms: SmsSender | None) -> None:
        self._sms = sms
        self._mail = None

    def sms(self) -> SmsSender:
        if self._sms is None:
            self._sms = sms_sender()
        return self._sms

    def mail(self):
        if self._mail is None:
            self._mail = get_connection()
        return self._mail

    def drop_mail(self) -> None:
        # After an error the connection may be broken: the next message opens a new one.
        if self._mail is not None:
            with contextlib.suppress(Exception):  # closing a broken one may fail too
                self._mail.close()
            self._mail = None


def _deliver(outlets: _Outlets, row: tuple) -> None:
    delivery_id, channel, recipient, subject, body, member_id, window, expires_on = row
    reference = f"reminder-{delivery_id}"
    if channel == Channel.EMAIL:
        message = EmailMessage(
            subject=subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[recipient],
            connection=outlets.mail(),
            headers={
                # Stable per delivery: a copy sent again by an operator is recognisably the same.
                "Message-ID": f"<{reference}@{DNS_NAME}>",
                "X-Loyalty-Reminder": f"{member_id}/{window}/{expires_on.isoformat()}",
            },
        )
        message.send()
    else:
        outlets.sms().send(to=recipient, text=body, reference=reference)


def send_claimed_reminders(
    *,
    as_of: datetime,
    sms: SmsSender | None = None,
    progress: Progress | None = None,
    run: ReminderRun | None = None,
) -> ReminderRun:
    """Phase 2: send the claimed email and SMS rows, each at most once.

    Call it outside a transaction (the command and the task do): each row's `sending` then
    commits before the message is handed to the backend, so a killed run can never send it a
    second time. Inside a caller's transaction it works, but a rollback would forget sends."""
    run = run or ReminderRun()
    reminder_settings = ReminderSettings.get()
    channels = [c for c in reminder_settings.enabled_channels() if c in EXTERNAL_CHANNELS]
    today = as_of.astimezone(programme_settings().zone).date()
    # A reminder for a date already past would be wrong: never send it.
    run.skipped += ReminderDelivery.objects.filter(
        status__in=[Status.CLAIMED, Status.FAILED], expires_on__lt=today
    ).update(status=Status.SKIPPED)
    if not channels:
        return run
    params = {"max_attempts": MAX_ATTEMPTS, "channels": channels, "today": today}
    total = 0
    if progress is not None:
        with connection.cursor() as cursor:
            cursor.execute(_COUNT_QUEUE_SQL, params)
            total = cursor.fetchone()[0]
        progress(0, total)
    outlets = _Outlets(sms)
    after, done = 0, 0
    try:
        while True:
            with connection.cursor() as cursor:
                cursor.execute(_TAKE_NEXT_SQL, {**params, "after": after})
                row = cursor.fetchone()
            if row is None:
                break
            after = row[0]
            try:
                _deliver(outlets, row)
            except Exception as error:
                if row[1] == Channel.EMAIL:
                    outlets.drop_mail()
                ReminderDelivery.objects.filter(pk=row[0]).update(
                    status=Status.FAILED, error=f"{type(error).__name__}: {error}"[:2000]
                )
                run.failed += 1
            else:
                ReminderDelivery.objects.filter(pk=row[0]).update(
                    status=Status.SENT, sent_at=timezone.now(), error=""
                )
                run.sent += 1
            done += 1
            if progress is not None:
                progress(done, max(total, done))
    finally:
        outlets.drop_mail()
    return run


def send_expiry_reminders(
    *,
    as_of: datetime | None = None,
    batch_size: int = 1000,
    sms: SmsSender | None = None,
    claim_progress: Progress | None = None,
    send_progress: Progress | None = None,
) -> ReminderRun:
    """The daily job: claim what is due as of `as_of` (default now), then send.

    Idempotent: a second run with the same `as_of` claims and sends nothing new; a run killed
    at any point and run again sends what was left, and no message twice."""
    as_of = as_of or timezone.now()
    run = claim_reminders(as_of=as_of, batch_size=batch_size, progress=claim_progress)
    return send_claimed_reminders(as_of=as_of, sms=sms, progress=send_progress, run=run)


@transaction.atomic
def queue_deliveries_again(*, deliveries) -> int:
    """Operator's decision for email/SMS rows in doubt (`sending`) or failed: send them with
    the next run. Returns how many rows were queued."""
    return deliveries.filter(
        channel__in=EXTERNAL_CHANNELS, status__in=[Status.SENDING, Status.FAILED]
    ).update(status=Status.CLAIMED, attempts=0, error="")


def erase_reminder_personal_data(*, member) -> None:
    """Personal data erasure step (members.personal_data): the delivery rows keep their
    dates, points and outcome but lose the address and the text, which carries the name."""
    ReminderDelivery.objects.filter(member_id=member.pk).update(recipient="", subject="", body="")
