"""The member's inbox on the mall home page, and the reminders' admin pages."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth.models import Permission

from campaigns.models import MessageTemplate, ReminderDelivery, ReminderSettings
from campaigns.reminders import send_expiry_reminders
from members.models import InboxMessage, Member
from members.services import InboxDraft, mark_inbox_read, post_inbox_messages
from rewards_mall.services import create_mall_link
from tests.factories import MemberFactory, OperatorFactory
from tests.reminders.conftest import at, member_with_points

pytestmark = pytest.mark.django_db

EXPIRES = date(2031, 3, 10)


def enter(client, member):
    link = create_mall_link(member=member)
    assert client.get(f"/mall/enter/{link.token}/").status_code == 302
    return client


def page(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


# --- Inbox ---------------------------------------------------------------------------------------
def test_the_reminder_shows_in_the_members_inbox_on_the_mall_home_page(client):
    member = member_with_points("u-1", (300, EXPIRES), language=Member.Language.EN)
    other = member_with_points("u-2", (999, EXPIRES))
    send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    client.cookies["django_language"] = "en"

    html = page(enter(client, member).get("/mall/"))

    assert "Points expiring soon" in html
    assert "300 points expire on 2031-03-10 (5 days left)" in html
    assert 'data-testid="inbox-unread">1 unread<' in html
    assert "999" not in html  # the other member's reminder is not shown
    assert InboxMessage.objects.filter(member=other).count() == 1


def test_the_home_page_shows_the_inbox_in_chinese(client):
    member = member_with_points("u-1", (300, EXPIRES), name="王小明")
    send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    client.cookies["django_language"] = "zh-hans"

    html = page(enter(client, member).get("/mall/"))

    assert "积分即将过期" in html
    assert "您有 300 积分将于 2031-03-10 过期（还剩 5 天）" in html


def test_a_member_marks_one_message_or_all_of_them_read(client):
    member = MemberFactory(external_id="u-1")
    post_inbox_messages(
        drafts=[InboxDraft(member_id=member.pk, title=f"Notice {n}", body="…") for n in range(3)]
    )
    first = InboxMessage.objects.filter(member=member).order_by("id").first()
    client.cookies["django_language"] = "en"
    enter(client, member)

    one = client.post("/mall/inbox/read/", {"message": first.pk})
    assert one.status_code == 302 and one["Location"] == "/mall/#inbox"
    assert 'data-testid="inbox-unread">2 unread<' in page(client.get("/mall/"))

    client.post("/mall/inbox/read/")
    html = page(client.get("/mall/"))
    assert "inbox-unread" not in html
    assert InboxMessage.objects.filter(member=member, read_at__isnull=True).count() == 0


def test_a_member_cannot_mark_another_members_message_read(client):
    member, other = MemberFactory(external_id="u-1"), MemberFactory(external_id="u-2")
    (theirs,) = post_inbox_messages(drafts=[InboxDraft(member_id=other.pk, title="Theirs")])
    enter(client, member)

    client.post("/mall/inbox/read/", {"message": theirs.pk})

    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert mark_inbox_read(member=member, message_ids=[theirs.pk]) == 0


def test_an_empty_inbox_says_so(client):
    member = MemberFactory(external_id="u-1")
    client.cookies["django_language"] = "en"

    html = page(enter(client, member).get("/mall/"))

    assert "No messages." in html


def test_the_inbox_text_is_escaped_on_the_page(client):
    member = MemberFactory(external_id="u-1")
    post_inbox_messages(drafts=[InboxDraft(member_id=member.pk, title="<script>x</script>")])

    html = page(enter(client, member).get("/mall/"))

    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


# --- Admin ---------------------------------------------------------------------------------------
def test_the_admin_pages_of_reminders_open(admin_client):
    member_with_points("u-1", (300, EXPIRES))
    send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    delivery = ReminderDelivery.objects.get(channel="email")

    settings_page = admin_client.get("/admin/campaigns/remindersettings/")
    assert settings_page.status_code == 302
    assert page(admin_client.get(settings_page["Location"]))
    assert page(admin_client.get("/admin/campaigns/messagetemplate/"))
    email = MessageTemplate.objects.get(channel="email")
    assert "{{ points }}" in page(
        admin_client.get(f"/admin/campaigns/messagetemplate/{email.pk}/change/")
    )
    listing = page(admin_client.get("/admin/campaigns/reminderdelivery/"))
    assert "u-1@example.com" in listing  # a superuser sees personal data
    assert page(admin_client.get(f"/admin/campaigns/reminderdelivery/{delivery.pk}/change/"))


def test_operators_without_the_right_see_recipients_masked(client):
    member_with_points("u-1", (300, EXPIRES))
    send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    operator = OperatorFactory(is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_reminderdelivery"))
    client.force_login(operator)

    listing = page(client.get("/admin/campaigns/reminderdelivery/"))

    assert "u-1@example.com" not in listing
    assert "u***@example.com" in listing


def test_saving_the_settings_in_admin_validates_the_windows(admin_client):
    url = "/admin/campaigns/remindersettings/1/change/"
    form = {"windows": "30,x", "email_enabled": "on", "inbox_enabled": "on"}

    refused = admin_client.post(url, form, HTTP_ACCEPT_LANGUAGE="en")
    accepted = admin_client.post(url, {**form, "windows": "14，3"})

    assert refused.status_code == 200 and "whole numbers of days" in refused.content.decode()
    assert accepted.status_code == 302
    saved = ReminderSettings.get()
    assert saved.window_days == [3, 14]
    assert saved.enabled_channels() == ["email", "inbox"]


def test_the_admin_queues_a_reminder_in_doubt_again(admin_client):
    member_with_points("u-1", (300, EXPIRES))
    send_expiry_reminders(as_of=at("2031-03-05 10:00"))
    ReminderDelivery.objects.filter(channel="sms").update(status="sending")

    response = admin_client.post(
        "/admin/campaigns/reminderdelivery/",
        {
            "action": "queue_again",
            "_selected_action": list(ReminderDelivery.objects.values_list("pk", flat=True)),
        },
    )

    assert response.status_code == 302
    assert list(
        ReminderDelivery.objects.filter(status="claimed").values_list("channel", flat=True)
    ) == ["sms"]
