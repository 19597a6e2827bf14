"""The member-facing mall pages, driven with Django's test client.

A member sees and acts on their own data only: the session holds their id, and another
member's redemption or history is a 404 or simply absent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from points.selectors import member_points_summary
from points.services import earn
from rewards_mall.models import MallLoginLink, Redemption, Reward
from rewards_mall.services import create_mall_link, redeem, set_mall_password
from tests.factories import RewardCategoryFactory, RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

ADDRESS = {"recipient": "王小明", "phone": "13800138000", "address": "长安街 1 号", "city": "北京"}
FORM_ADDRESS = {"recipient": "王小明", "phone": "138", "address": "长安街 1 号", "city": "北京"}


def enter(client, member):
    link = create_mall_link(member=member)
    response = client.get(f"/mall/enter/{link.token}/")
    assert response.status_code == 302
    return client


@pytest.fixture
def english(client):
    client.cookies["django_language"] = "en"
    return client


@pytest.fixture
def as_member(english, member):
    return enter(english, member)


def page(response) -> str:
    return response.content.decode()


# --- Getting in --------------------------------------------------------------------------------
def test_pages_need_a_logged_in_member(client):
    response = client.get("/mall/rewards/")

    assert response.status_code == 302
    assert response["Location"] == "/mall/login/?next=%2Fmall%2Frewards%2F"


def test_a_forged_or_expired_link_is_refused(english, member):
    link = create_mall_link(member=member)
    MallLoginLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = english.get(f"/mall/enter/{link.token}/")
    forged = english.get(f"/mall/enter/{link.token[:-2]}xx/")

    assert expired.status_code == forged.status_code == 400
    assert "This link cannot be used" in page(expired)
    assert english.get("/mall/").status_code == 302


def test_the_link_opens_the_mall_in_the_members_language(client, member):
    member.language = "en"
    member.save()

    enter(client, member)

    assert client.cookies["django_language"].value == "en"
    assert "Available points" in page(client.get("/mall/"))


def test_a_demo_member_logs_in_with_a_password(english, member):
    set_mall_password(member=member, raw="s3cret-pass")

    wrong = english.post("/mall/login/", {"login": "u-1001", "password": "nope"})
    right = english.post(
        "/mall/login/", {"login": member.phone, "password": "s3cret-pass", "next": "/mall/history/"}
    )

    assert "is wrong" in page(wrong)
    assert (right.status_code, right["Location"]) == (302, "/mall/history/")
    assert english.get("/mall/history/").status_code == 200


def test_logging_out_ends_the_session(as_member):
    as_member.post("/mall/logout/")

    assert as_member.get("/mall/").status_code == 302


# --- Home, catalogue, reward -------------------------------------------------------------
def test_home_shows_balance_expiring_points_and_tier_progress(as_member, member):
    earn(member=member, points=50, expires_at=timezone.now() + timedelta(days=10))
    TierFactory(code="silver", name="Silver", rank=1, growth_threshold=1000)
    member.growth = 250
    member.save()

    html = page(as_member.get("/mall/"))

    assert 'data-testid="balance">1050<' in html
    soon = timezone.localtime(timezone.now() + timedelta(days=10)).strftime("%Y-%m-%d")
    assert soon in html and "50 points" in html
    assert 'aria-valuenow="25"' in html
    assert "750 more growth value to reach Silver" in html


def test_the_home_page_is_chinese_by_default(client, member):
    html = page(enter(client, member).get("/mall/"))

    assert '<html lang="zh-hans">' in html
    assert "可用积分" in html


def test_the_catalogue_filters_by_category_and_by_what_i_can_afford(as_member):
    drinks = RewardCategoryFactory(code="drinks", name_en="Drinks")
    RewardFactory(code="tea", name_en="Green tea", category=drinks, points_price=100)
    RewardFactory(code="lamp", name_en="Desk lamp", points_price=5000)

    everything = page(as_member.get("/mall/rewards/"))
    drinks_only = page(as_member.get("/mall/rewards/?category=drinks"))
    affordable = page(as_member.get("/mall/rewards/?affordable=1"))

    assert "Green tea" in everything and "Desk lamp" in everything
    assert "Green tea" in drinks_only and "Desk lamp" not in drinks_only
    assert "Green tea" in affordable and "Desk lamp" not in affordable


def test_the_reward_page_says_why_it_cannot_be_redeemed(as_member):
    RewardFactory(code="lamp", points_price=5000)
    RewardFactory(code="gone", stock=0)
    RewardFactory(code="gold", points_price=1).tiers.add(TierFactory(code="gold", rank=3))

    assert "you need 4000 more" in page(as_member.get("/mall/rewards/lamp/"))
    assert "out of stock" in page(as_member.get("/mall/rewards/gone/"))
    assert "for members of other tiers" in page(as_member.get("/mall/rewards/gold/"))
    assert as_member.get("/mall/rewards/nothing-here/").status_code == 404


# --- Redeeming ----------------------------------------------------------------------------
def test_redeeming_goes_through_a_confirmation_with_an_address(as_member, member, reward):
    confirm = as_member.get("/mall/rewards/tea-set/redeem/")
    token = confirm.context["form"]["token"].value()

    missing = as_member.post("/mall/rewards/tea-set/redeem/", {"token": token, "quantity": 1})
    assert missing.status_code == 200 and not Redemption.objects.exists()
    done = as_member.post(
        "/mall/rewards/tea-set/redeem/", {"token": token, "quantity": 1, **FORM_ADDRESS}
    )

    assert 'data-testid="balance-after">700<' in page(confirm)
    assert "This field is required." in page(missing)
    redemption = Redemption.objects.get()
    assert done["Location"] == f"/mall/redemptions/{redemption.pk}/"
    assert redemption.shipping_address["address"] == "长安街 1 号"
    detail = page(as_member.get(done["Location"]))
    assert "Redeemed!" in detail and 'data-testid="status">placed<' in detail
    assert member_points_summary(member=member)["available"] == 700


def test_a_double_submitted_confirmation_places_one_order(as_member, reward):
    form = {"token": "one-form", "quantity": 1, **FORM_ADDRESS}

    first = as_member.post("/mall/rewards/tea-set/redeem/", form)
    second = as_member.post("/mall/rewards/tea-set/redeem/", form)

    assert first["Location"] == second["Location"]
    assert Redemption.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stock": 0}, "Sorry, this reward is out of stock."),
        ({"points_price": 1500}, "Not enough points: this needs 1500 points and you have 1000."),
        ({"per_member_limit": 1}, "You have reached the limit for this reward (1 per member)."),
    ],
)
def test_a_refused_redemption_says_why_clearly(as_member, member, reward, change, message):
    if "per_member_limit" in change:
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    Reward.objects.filter(pk=reward.pk).update(**change)
    before = member_points_summary(member=member)["available"]

    response = as_member.post(
        "/mall/rewards/tea-set/redeem/", {"token": "t-1", "quantity": 1, **FORM_ADDRESS}
    )

    assert response.status_code == 422
    assert message in page(response)
    assert member_points_summary(member=member)["available"] == before


def test_a_member_cancels_a_placed_order_and_gets_the_points_back(as_member, member, reward):
    redemption = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    as_member.post(f"/mall/redemptions/{redemption.pk}/cancel/")

    redemption.refresh_from_db()
    assert redemption.status == "cancelled"
    assert member_points_summary(member=member)["available"] == 1000


def test_history_lists_entries_with_the_balance_after_each(as_member, member, reward):
    redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    html = page(as_member.get("/mall/history/"))

    assert "Redeemed a reward" in html and "-300" in html
    rows = html.split('data-kind="')[1:]
    assert rows[0].startswith("redeem") and ">700</td>" in rows[0]
    assert rows[1].startswith("earn") and ">1000</td>" in rows[1]


# --- Isolation --------------------------------------------------------------------------------
def test_a_member_cannot_see_or_cancel_another_members_redemption(
    as_member, member, other_member, reward
):
    theirs = redeem(member=other_member, reward_code="tea-set", shipping_address=ADDRESS)

    assert as_member.get(f"/mall/redemptions/{theirs.pk}/").status_code == 404
    assert as_member.post(f"/mall/redemptions/{theirs.pk}/cancel/").status_code == 404
    listing = page(as_member.get("/mall/redemptions/"))
    assert f"#{theirs.pk}" not in listing
    theirs.refresh_from_db()
    assert theirs.status == "placed"
    assert member_points_summary(member=other_member)["available"] == 700


def test_a_members_history_shows_only_their_own_entries(as_member, member, other_member):
    earn(member=other_member, points=4321, memo="someone else's bonus")

    html = page(as_member.get("/mall/history/"))

    assert "4321" not in html and "someone else" not in html
    assert "1000" in html


def test_the_session_only_carries_the_member_id(as_member, member):
    assert dict(as_member.session) == {"mall_member_id": member.pk}


def test_the_language_switch_changes_the_pages(client, member):
    enter(client, member)
    assert "可用积分" in page(client.get("/mall/"))

    client.post("/i18n/setlang/", {"language": "en", "next": "/mall/"})

    assert "Available points" in page(client.get("/mall/"))


def test_a_login_is_locked_for_a_while_after_many_wrong_passwords(english):
    from rewards_mall.services import MALL_LOGIN_ATTEMPTS
    from tests.rewards_mall.conftest import member_with_points

    member = member_with_points("u-guessed", 0)
    set_mall_password(member=member, raw="right-password")
    for _attempt in range(MALL_LOGIN_ATTEMPTS):
        english.post("/mall/login/", {"login": "u-guessed", "password": "guess"})

    locked = english.post("/mall/login/", {"login": "u-guessed", "password": "right-password"})

    assert locked.status_code == 200
    assert "Too many failed attempts" in page(locked)
    assert english.get("/mall/").status_code == 302


def test_history_says_when_pending_points_become_available(as_member, member):
    later = timezone.now() + timedelta(days=10)
    earn(member=member, points=40, available_at=later)

    html = page(as_member.get("/mall/history/"))

    newest = html.split('data-kind="')[1]
    assert newest.startswith("earn") and "+40" in newest and ">1000</td>" in newest
    assert f"pending, available from {timezone.localtime(later):%Y-%m-%d}" in newest
