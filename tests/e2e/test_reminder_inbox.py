"""The expiry reminder in the member's inbox on the mall's home page, on a phone: the unread
count, the message in Chinese, and marking it read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.reminders import send_expiry_reminders
from members.models import InboxMessage
from points.expiry import end_of_day
from points.services import earn, programme_settings
from rewards_mall.services import create_mall_link
from tests.reminders.conftest import seed_reminder_defaults
from tests.rewards_mall.conftest import member_with_points

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_reads_the_expiry_reminder_in_the_mall_and_marks_it_read(
    live_server, phone, screenshot, entry_tier
):
    seed_reminder_defaults()
    member = member_with_points("u-2001", 0, name="王小明")
    zone = programme_settings().zone
    expires_on = timezone.now().astimezone(zone).date() + timedelta(days=5)
    earn(member=member, points=260, expires_at=end_of_day(expires_on, zone))
    send_expiry_reminders()
    link = create_mall_link(member=member)

    phone.goto(f"{live_server.url}/mall/enter/{link.token}/")

    inbox = phone.get_by_test_id("inbox")
    # "1 条未读" once the lead merges the translations of i18n-reminders.tsv.
    assert phone.get_by_test_id("inbox-unread").inner_text().startswith("1 ")
    message = inbox.get_by_test_id("inbox-message")
    assert "积分即将过期" in message.inner_text()
    assert f"您有 260 积分将于 {expires_on.isoformat()} 过期（还剩 5 天）" in message.inner_text()
    screenshot(phone, "reminder-01-inbox")

    message.get_by_test_id("inbox-mark-read").click()
    phone.wait_for_url("**/mall/#inbox")
    assert phone.get_by_test_id("inbox-unread").count() == 0
    assert InboxMessage.objects.get(member=member).read_at is not None
    screenshot(phone, "reminder-02-read")
