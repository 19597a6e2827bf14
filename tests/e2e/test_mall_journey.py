"""A member's journey through the mall on a phone, in headless Chromium against the real
server (pytest-django's live_server): a partner asks for a mall link, the member opens it,
sees their balance, redeems a reward, and finds the order and the ledger entry."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from loyalty_site.api.keys import create_partner_key
from points.services import check_ledger_invariants, earn
from rewards_mall.models import Redemption
from tests.factories import RewardCategoryFactory, RewardFactory
from tests.rewards_mall.conftest import member_with_points

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def mall_link(live_server, external_id: str) -> str:
    """POST /api/v1/members/{id}/mall-link over HTTP, as a partner app does."""
    _key, plain = create_partner_key(partner_name="Member app", scopes=["members:write"])
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/members/{external_id}/mall-link",
        data=b"",
        method="POST",
        headers={"Authorization": f"Api-Key {plain}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["url"]


@pytest.fixture
def shop(db):
    member = member_with_points("u-1001", 1000, name="王小明")
    earn(member=member, points=120, expires_at=timezone.now() + timedelta(days=20))
    home = RewardCategoryFactory(code="home", name_zh="家居", name_en="Home")
    RewardFactory(
        code="tea-set",
        name_zh="青瓷茶具套装",
        name_en="Celadon tea set",
        description_zh="六件套，礼盒包装。",
        category=home,
        points_price=300,
        stock=12,
        is_featured=True,
    )
    RewardFactory(code="lamp", name_zh="护眼台灯", name_en="Desk lamp", points_price=2500)
    return member


def test_a_member_opens_a_mall_link_redeems_and_sees_the_order_and_the_ledger(
    live_server, phone, screenshot, shop
):
    url = mall_link(live_server, "u-1001")

    phone.goto(url)
    balance = phone.get_by_test_id("balance")
    assert balance.inner_text() == "1120"
    assert phone.get_by_test_id("expiring").inner_text().count("120") == 1
    screenshot(phone, "01-home")

    tabs = phone.locator("nav.tabbar")
    tabs.get_by_role("link", name="奖品").click()
    phone.get_by_text("我能兑换的").click()  # the "I can afford it" filter
    phone.wait_for_url("**affordable=1**")
    assert phone.get_by_test_id("reward-lamp").count() == 0
    screenshot(phone, "02-catalogue-affordable")
    phone.get_by_test_id("reward-tea-set").click()
    assert phone.get_by_test_id("price").inner_text() == "300"
    screenshot(phone, "03-reward")

    phone.get_by_test_id("redeem").click()
    assert phone.get_by_test_id("balance-after").inner_text() == "820"
    phone.get_by_label("地址").fill("上海市黄浦区南京东路 100 号")
    phone.get_by_label("城市").fill("上海")
    screenshot(phone, "04-confirm")
    phone.get_by_test_id("confirm").click()

    phone.wait_for_url("**/mall/redemptions/*/")
    assert phone.get_by_test_id("status").inner_text() == "已下单"
    assert phone.get_by_test_id("points-spent").inner_text() == "300"
    assert "兑换成功" in phone.content()
    screenshot(phone, "05-order")

    tabs.get_by_role("link", name="积分明细").click()
    newest = phone.locator('[data-testid="ledger"] tbody tr').first
    assert newest.get_attribute("data-kind") == "redeem"
    assert "-300" in newest.inner_text() and "820" in newest.inner_text()
    screenshot(phone, "06-history")

    redemption = Redemption.objects.get()
    assert (redemption.member.external_id, redemption.status) == ("u-1001", "placed")
    assert redemption.shipping_address["city"] == "上海"
    assert check_ledger_invariants() == []


def test_a_used_mall_link_cannot_be_opened_again_and_the_switch_gives_english(
    live_server, phone, screenshot, shop
):
    url = mall_link(live_server, "u-1001")
    phone.goto(url)
    phone.get_by_test_id("lang-switch").click()
    assert "Available points" in phone.content()

    phone.context.clear_cookies()
    phone.goto(url)

    assert phone.get_by_test_id("link-error").is_visible()
    assert "此链接无法使用" in phone.content()  # no language cookie any more: Chinese
    screenshot(phone, "07-used-link")
