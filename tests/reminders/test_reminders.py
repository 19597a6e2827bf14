"""Expiry reminders, in process: who is reminded, when, in which language, on which channel,
and never twice (the killed run is in test_killed_run.py)."""

from __future__ import annotations

from datetime import date

import pytest
from django.core import mail
from django.core.management import call_command

from campaigns import reminders, sms, tasks
from campaigns.models import MessageTemplate, ReminderDelivery, ReminderSettings
from campaigns.reminders import send_expiry_reminders, window_for
from members.models import InboxMessage, Member
from members.services import erase_member, member_set_status
from points.models import Account, Lot, OutboxEvent
from points.services import spend
from tests.reminders.conftest import at, member_with_points

pytestmark = pytest.mark.django_db

EXPIRES = date(2031, 3, 10)


def deliveries(**filters) -> list[tuple]:
    rows = ReminderDelivery.objects.filter(**filters).order_by("channel", "window_days")
    return list(rows.values_list("channel", "window_days", "expires_on", "points", "status"))


def sent_everywhere(window: int, points: int, expires_on: date = EXPIRES) -> list[tuple]:
    return [
        (channel, window, expires_on, points, "sent")
        for channel in sorted(["email", "sms", "inbox", "webhook"])
    ]


# --- Windows -------------------------------------------------------------------------------------
def test_the_smallest_window_holding_the_days_left_applies():
    assert window_for(0, [7, 30]) == 7
    assert window_for(7, [7, 30]) == 7
    assert window_for(8, [7, 30]) == 30
    assert window_for(30, [7, 30]) == 30
    assert window_for(31, [7, 30]) is None


def test_points_expiring_within_30_days_get_the_30_day_reminder_on_every_channel():
    member = member_with_points("u-1", (300, EXPIRES), (200, EXPIRES), (999, date(2031, 6, 1)))

    run = send_expiry_reminders(as_of=at("2031-02-20 10:00"))

    # The two lots of 10 March in one message; the June lot is not due.
    assert deliveries(member=member) == sent_everywhere(30, 500)
    assert run.groups == 1
    assert run.sent == 2  # email and SMS; inbox and webhook are written with the claim
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [member.email]
    assert [m.to for m in sms.outbox] == [member.phone]


def test_points_further_out_than_every_window_get_nothing():
    member_with_points("u-1", (300, EXPIRES))

    run = send_expiry_reminders(as_of=at("2031-02-01 10:00"))

    assert run.groups == 0
    assert ReminderDelivery.objects.count() == 0
    assert mail.outbox == [] and sms.outbox == []


def test_each_window_reminds_once_so_a_member_hears_30_then_7_days_before():
    member = member_with_points("u-1", (300, EXPIRES))

    send_expiry_reminders(as_of=at("2031-02-08 10:00"))  # 30 days left
    send_expiry_reminders(as_of=at("2031-02-09 10:00"))  # still the 30-day window: nothing
    send_expiry_reminders(as_of=at("2031-03-03 10:00"))  # 7 days left
    send_expiry_reminders(as_of=at("2031-03-09 10:00"))  # still the 7-day window: nothing

    assert deliveries(member=member) == sorted(
        sent_everywhere(7, 300) + sent_everywhere(30, 300), key=lambda row: (row[0], row[1])
    )
    assert [m.subject for m in mail.outbox] == [
        "您的 300 积分将于 2031-03-10 过期",
        "您的 300 积分将于 2031-03-10 过期",
    ]
    assert len(sms.outbox) == 2
    assert InboxMessage.objects.filter(member=member).count() == 2
    assert OutboxEvent.objects.filter(type="points.expiring_soon").count() == 2


def test_points_first_seen_inside_the_7_day_window_get_only_the_7_day_reminder():
    member = member_with_points("u-1", (300, EXPIRES))

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    assert deliveries(member=member) == sent_everywhere(7, 300)
    assert len(mail.outbox) == 1


def test_days_are_counted_in_the_programme_time_zone():
    member = member_with_points("u-1", (300, EXPIRES))

    # 1 a.m. on 3 March in Shanghai is still 2 March in UTC: 7 days left, not 8.
    send_expiry_reminders(as_of=at("2031-03-03 01:00"))

    assert deliveries(member=member, channel="email") == [("email", 7, EXPIRES, 300, "sent")]


def test_each_expiry_date_is_reminded_separately():
    member = member_with_points("u-1", (300, EXPIRES), (40, date(2031, 3, 25)))

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    assert sorted(
        ReminderDelivery.objects.filter(member=member, channel="email").values_list(
            "window_days", "expires_on", "points"
        )
    ) == [(7, EXPIRES, 300), (30, date(2031, 3, 25), 40)]
    assert len(mail.outbox) == 2


def test_points_spent_or_already_expired_are_not_reminded():
    spent = member_with_points("u-spent", (300, EXPIRES))
    spend(member=spent, points=300, reference="all-of-it")
    member_with_points("u-past", (300, date(2031, 3, 1)))

    run = send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    assert run.groups == 0
    assert ReminderDelivery.objects.count() == 0


def test_the_amount_is_what_is_left_of_the_lots():
    member = member_with_points("u-1", (300, EXPIRES), (500, date(2031, 12, 31)))
    spend(member=member, points=120, reference="part")  # FIFO: from the lot expiring first

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    assert deliveries(member=member, channel="webhook") == [("webhook", 7, EXPIRES, 180, "sent")]


def test_frozen_and_closed_members_are_not_reminded():
    frozen = member_with_points("u-frozen", (300, EXPIRES))
    closed = member_with_points("u-closed", (300, EXPIRES))
    member_set_status(member=frozen, status=Member.Status.FROZEN, reason="check", operator=None)
    member_set_status(member=closed, status=Member.Status.CLOSED, reason="left", operator=None)

    run = send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    assert run.groups == 0
    assert ReminderDelivery.objects.count() == 0


def test_a_member_without_email_or_phone_still_gets_the_inbox_and_webhook():
    member = member_with_points("u-1", (300, EXPIRES), email="", phone="")

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    assert [row[0] for row in deliveries(member=member)] == ["inbox", "webhook"]
    assert mail.outbox == [] and sms.outbox == []


def test_windows_and_channels_come_from_the_settings():
    member = member_with_points("u-1", (300, EXPIRES))
    ReminderSettings.objects.filter(pk=1).update(
        windows="14, 3", email_enabled=False, webhook_enabled=False
    )

    send_expiry_reminders(as_of=at("2031-02-20 10:00"))  # 18 days: outside 14
    send_expiry_reminders(as_of=at("2031-02-25 10:00"))  # 13 days: the 14-day window

    assert deliveries(member=member) == [
        ("inbox", 14, EXPIRES, 300, "sent"),
        ("sms", 14, EXPIRES, 300, "sent"),
    ]
    assert mail.outbox == []


# --- Templates and languages -------------------------------------------------------------------
def test_each_member_reads_the_reminder_in_their_language():
    member_with_points("u-zh", (300, EXPIRES), name="王小明")
    member_with_points("u-en", (80, EXPIRES), name="Li Lei", language=Member.Language.EN)

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    emails = {message.to[0]: message for message in mail.outbox}
    chinese, english = emails["u-zh@example.com"], emails["u-en@example.com"]
    assert chinese.subject == "您的 300 积分将于 2031-03-10 过期"
    assert chinese.body.startswith("王小明，您好：")
    assert "2031年3月10日" in chinese.body and "还剩 5 天" in chinese.body
    assert english.subject == "80 of your points expire on 2031-03-10"
    assert english.body.startswith("Hello Li Lei,")
    assert "10 March 2031 (5 days left)" in english.body
    texts = {message.to: message.text for message in sms.outbox}
    assert texts[Member.objects.get(external_id="u-en").phone].startswith("[Points reminder]")
    assert texts[Member.objects.get(external_id="u-zh").phone].startswith("【积分提醒】王小明")
    inbox = {m.member.external_id: m.title for m in InboxMessage.objects.select_related("member")}
    assert inbox == {"u-zh": "积分即将过期", "u-en": "Points expiring soon"}


def test_templates_edited_in_admin_are_used_and_english_falls_back_to_chinese():
    member_with_points("u-en", (80, EXPIRES), name="Li Lei", language=Member.Language.EN)
    MessageTemplate.objects.filter(channel="email").update(
        subject_zh_hans="{{ name }}: {{ points }} 积分 {{ window_days }} 天提醒",
        body_zh_hans="{{ days_left }} 天后过期 <b>",
        subject_en="",
        body_en="",
    )

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    (message,) = mail.outbox
    assert message.subject == "Li Lei: 80 积分 7 天提醒"
    assert message.body == "5 天后过期 <b>"  # plain text: nothing escaped


def test_a_template_with_a_syntax_error_is_refused():
    template = MessageTemplate.objects.get(channel="sms")
    template.body_en = "{% if points %}unclosed"

    with pytest.raises(Exception, match="Template error"):
        template.full_clean()


# --- Exactly once ------------------------------------------------------------------------------
def test_running_twice_sends_nothing_the_second_time():
    member_with_points("u-1", (300, EXPIRES))
    member_with_points("u-2", (50, EXPIRES))

    first = send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    second = send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    call_command("send_expiry_reminders", "--as-of", "2031-03-06T09:00:00+08:00")

    assert first.claimed == {"email": 2, "sms": 2, "inbox": 2, "webhook": 2}
    assert (second.claimed, second.sent) == ({}, 0)
    assert len(mail.outbox) == 2 and len(sms.outbox) == 2
    assert InboxMessage.objects.count() == 2
    assert OutboxEvent.objects.filter(type="points.expiring_soon").count() == 2
    assert ReminderDelivery.objects.exclude(status="sent").count() == 0


def test_claimed_rows_left_by_a_dead_run_are_sent_by_the_next_but_rows_in_doubt_are_not():
    member_with_points("u-1", (300, EXPIRES))
    member_with_points("u-2", (50, EXPIRES))
    reminders.claim_reminders(as_of=at("2031-03-05 10:00"))  # the run died after claiming
    in_doubt = ReminderDelivery.objects.get(member__external_id="u-2", channel="email")
    in_doubt.status = ReminderDelivery.Status.SENDING  # ...or while handing this one over
    in_doubt.save()

    run = send_expiry_reminders(as_of=at("2031-03-05 11:00"))

    assert run.sent == 3
    assert sorted(m.to[0] for m in mail.outbox) == ["u-1@example.com"]
    assert len(sms.outbox) == 2
    in_doubt.refresh_from_db()
    assert in_doubt.status == "sending"


def test_a_failed_send_is_recorded_and_retried_by_the_next_run():
    member = member_with_points("u-1", (300, EXPIRES))

    class RefusingSender:
        def send(self, *, to, text, reference):
            raise sms.SmsError("gateway answered 503")

    first = send_expiry_reminders(as_of=at("2031-03-05 10:00"), sms=RefusingSender())
    failed = ReminderDelivery.objects.get(member=member, channel="sms")
    second = send_expiry_reminders(as_of=at("2031-03-05 11:00"))

    assert (first.sent, first.failed) == (1, 1)
    assert (failed.status, failed.attempts, failed.error) == (
        "failed",
        1,
        "SmsError: gateway answered 503",
    )
    assert second.sent == 1
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == ("sent", 2, "")
    assert len(sms.outbox) == 1


def test_a_reminder_whose_date_has_passed_is_never_sent_late():
    member_with_points("u-1", (300, EXPIRES))
    reminders.claim_reminders(as_of=at("2031-03-05 10:00"))

    run = reminders.send_claimed_reminders(as_of=at("2031-03-11 10:00"))

    assert (run.sent, run.skipped) == (0, 2)
    assert mail.outbox == [] and sms.outbox == []


def test_queue_again_sends_rows_in_doubt_with_the_next_run():
    member_with_points("u-1", (300, EXPIRES))
    reminders.claim_reminders(as_of=at("2031-03-05 10:00"))
    ReminderDelivery.objects.filter(channel="email").update(status="sending", attempts=1)

    queued = reminders.queue_deliveries_again(deliveries=ReminderDelivery.objects.all())
    run = reminders.send_claimed_reminders(as_of=at("2031-03-05 11:00"))

    assert queued == 1
    assert run.sent == 2
    assert len(mail.outbox) == 1
    assert mail.outbox[0].extra_headers["Message-ID"].startswith("<reminder-")


# --- Webhook -------------------------------------------------------------------------------------
def test_the_expiring_soon_event_is_written_for_the_partners_webhooks():
    member = member_with_points("u-1", (300, EXPIRES))

    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    (event,) = OutboxEvent.objects.filter(type="points.expiring_soon")
    assert event.account_id == Account.objects.get(member=member).pk
    assert event.member_external_id == "u-1"
    assert event.published_at is None
    assert event.payload == {
        "member": "u-1",
        "points": 300,
        "expires_on": "2031-03-10",
        "expires_at": Lot.objects.get(account__member=member)
        .expires_at.astimezone(at("2031-01-01 00:00").tzinfo)
        .isoformat(),
        "days_left": 5,
        "window_days": 7,
        "as_of": "2031-03-05T10:00:00+08:00",
    }


# --- Entry points --------------------------------------------------------------------------------
def test_the_command_reports_what_it_did(capsys):
    member_with_points("u-1", (300, EXPIRES))

    call_command("send_expiry_reminders", "--as-of", "2031-03-05T10:00", "--batch-size", "1")

    out = capsys.readouterr().out
    assert "1 due groups" in out
    assert "email 1, inbox 1, sms 1, webhook 1" in out
    assert "sent 2, failed 0, skipped 0" in out


def test_the_celery_task_runs_the_job():
    member_with_points("u-1", (300, EXPIRES))

    result = tasks.send_expiry_reminders(as_of="2031-03-05T10:00:00+08:00")

    assert result["sent"] == 2 and result["claimed"]["inbox"] == 1


def test_the_beat_schedule_runs_reminders_daily():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["send-expiry-reminders"]
    assert entry["task"] == "campaigns.send_expiry_reminders"
    assert entry["schedule"].hour == {10} and entry["schedule"].minute == {0}


# --- Personal data -------------------------------------------------------------------------------
def test_erasing_a_member_clears_the_reminder_texts_and_the_inbox():
    member = member_with_points("u-1", (300, EXPIRES), name="王小明")
    send_expiry_reminders(as_of=at("2031-03-05 10:00"))

    erase_member(member=member, operator=None, reason="PIPL request")

    assert InboxMessage.objects.filter(member=member).count() == 0
    assert set(
        ReminderDelivery.objects.filter(member=member).values_list("recipient", "subject", "body")
    ) == {("", "", "")}
    assert ReminderDelivery.objects.filter(member=member, status="sent").count() == 4
