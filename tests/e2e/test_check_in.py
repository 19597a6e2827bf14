"""A member checks in on the mall's home page on a phone: points and the streak appear, and the
button is gone for the rest of the day."""

from __future__ import annotations

import pytest

from campaigns.models import EarningRule
from points.models import Account
from rewards_mall.services import create_mall_link
from tests.rewards_mall.conftest import member_with_points

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_checks_in_on_the_home_page(live_server, phone, screenshot, entry_tier):
    EarningRule.objects.create(
        code="check-in", name="签到", event_type="check_in", status="active", fixed_points=5
    )
    member = member_with_points("u-3001", 0, name="李雷")
    link = create_mall_link(member=member)
    phone.goto(f"{live_server.url}/mall/enter/{link.token}/")

    phone.get_by_test_id("check-in-button").click()
    phone.wait_for_url(f"{live_server.url}/mall/")

    assert "签到成功：获得 5 积分，已连续签到 1 天。" in phone.content()
    assert phone.get_by_test_id("checked-in").is_visible()
    assert phone.get_by_test_id("check-in-button").count() == 0
    assert phone.get_by_test_id("balance").inner_text() == "5"
    assert Account.objects.get(member=member).available == 5
    screenshot(phone, "check-in-01-done")
