"""Redeeming, cancelling and fulfilling through the services: what members and operators see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from members.exceptions import MemberFrozen
from points.exceptions import InsufficientPoints
from points.models import Allocation, Entry, OutboxEvent
from points.selectors import member_points_summary
from points.services import earn
from rewards_mall.exceptions import (
    InvalidRedemption,
    InvalidRewardChange,
    InvalidStatusTransition,
    LimitExceeded,
    OutOfStock,
    RewardUnavailable,
)
from rewards_mall.models import CouponCode, Redemption, Reward, TierPrice
from rewards_mall.selectors import member_price
from rewards_mall.services import (
    bulk_mark_shipped,
    cancel_redemption,
    import_coupon_codes,
    mark_delivered,
    mark_fulfilled,
    mark_shipped,
    redeem,
    reward_upsert,
)
from tests.factories import RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

ADDRESS = {"recipient": "王小明", "phone": "13800138000", "address": "长安街 1 号", "city": "北京"}


def available(member) -> int:
    return member_points_summary(member=member)["available"]


def stock(reward) -> int:
    reward.refresh_from_db()
    return reward.stock


def test_a_redemption_takes_the_points_and_one_unit_of_stock(member, reward):
    redemption = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    assert redemption.status == "placed"
    assert redemption.points_spent == 300
    assert available(member) == 700
    assert stock(reward) == 9
    entry = Entry.objects.get(pk=redemption.redeem_entry_id)
    assert (entry.kind, entry.amount, entry.balance_after) == ("redeem", -300, 700)
    assert entry.source_id == str(redemption.pk)
    assert redemption.shipping_address["city"] == "北京"
    assert OutboxEvent.objects.filter(type="redemption.updated").count() == 1


def test_quantity_multiplies_the_price_and_the_stock_taken(member, reward):
    redemption = redeem(member=member, reward_code="tea-set", quantity=3, shipping_address=ADDRESS)

    assert redemption.points_spent == 900
    assert available(member) == 100
    assert stock(reward) == 7


def test_points_plus_cash_records_the_cash_due(member):
    RewardFactory(code="spa", kind="service", points_price=200, cash_price="49.90")

    redemption = redeem(member=member, reward_code="spa", quantity=2)

    assert str(redemption.cash_due) == "99.80"
    assert redemption.points_spent == 400


def test_an_explicit_tier_price_overrides_the_list_price(member, reward):
    gold = TierFactory(code="gold", rank=3)
    TierPrice.objects.create(reward=reward, tier=gold, points_price=240)

    assert member_price(reward=reward, member=member).points == 300
    member.tier = gold
    member.save()
    assert member_price(reward=reward, member=member).points == 240
    assert (
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS).points_spent == 240
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"stock": 0}, OutOfStock),
        ({"points_price": 1001}, InsufficientPoints),
        ({"is_active": False}, RewardUnavailable),
        ({"available_from": timezone.now() + timedelta(days=1)}, RewardUnavailable),
        ({"available_until": timezone.now() - timedelta(seconds=1)}, RewardUnavailable),
    ],
)
def test_a_refused_redemption_takes_nothing(member, reward, change, error):
    Reward.objects.filter(pk=reward.pk).update(**change)

    with pytest.raises(error):
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    assert available(member) == 1000
    assert stock(reward) == (0 if change == {"stock": 0} else 10)
    assert not Redemption.objects.exists()
    assert not Entry.objects.filter(kind="redeem").exists()


def test_a_reward_for_other_tiers_is_unavailable(member, reward):
    reward.tiers.add(TierFactory(code="gold", rank=3))

    with pytest.raises(RewardUnavailable) as refused:
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    assert refused.value.data["reason"] == "tier"
    assert available(member) == 1000


def test_an_unknown_reward_is_unavailable(member):
    with pytest.raises(RewardUnavailable):
        redeem(member=member, reward_code="no-such-thing")


def test_the_per_member_limit_counts_earlier_redemptions_but_not_cancelled_ones(member, reward):
    Reward.objects.filter(pk=reward.pk).update(per_member_limit=2)
    first = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    with pytest.raises(LimitExceeded):
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    cancel_redemption(redemption=first)
    redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    assert available(member) == 400


def test_goods_need_a_shipping_address(member, reward):
    with pytest.raises(InvalidRedemption):
        redeem(member=member, reward_code="tea-set", shipping_address={"city": " "})

    assert available(member) == 1000
    assert stock(reward) == 10


def test_a_frozen_member_cannot_redeem(member, reward):
    member.status = "frozen"
    member.save()

    with pytest.raises(MemberFrozen):
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    assert stock(reward) == 10
    assert not Redemption.objects.exists()


def test_the_same_confirmation_form_submitted_twice_places_one_order(member, reward):
    first = redeem(
        member=member, reward_code="tea-set", shipping_address=ADDRESS, request_token="form-1"
    )
    second = redeem(
        member=member, reward_code="tea-set", shipping_address=ADDRESS, request_token="form-1"
    )

    assert second.pk == first.pk
    assert available(member) == 700
    assert stock(reward) == 9


def test_cancelling_gives_back_exactly_the_lots_taken_and_the_stock(member, reward):
    earn(member=member, points=100, expires_at=timezone.now() + timedelta(days=3))
    redemption = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    taken = sorted(
        Allocation.objects.filter(entry_id=redemption.redeem_entry_id).values_list("lot", "points")
    )

    cancelled = cancel_redemption(redemption=redemption, reason="changed my mind")

    given = sorted(
        Allocation.objects.filter(entry_id=cancelled.return_entry_id).values_list("lot", "points")
    )
    assert given == [(lot, -points) for lot, points in taken]
    assert len(taken) == 2  # the 100 expiring soonest went first, then 200 of the 1000
    assert cancelled.status == "cancelled"
    assert available(member) == 1100
    assert stock(reward) == 10


def test_a_redemption_is_cancelled_once(member, reward):
    redemption = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    cancel_redemption(redemption=redemption)

    with pytest.raises(InvalidStatusTransition):
        cancel_redemption(redemption=redemption)

    assert available(member) == 1000
    assert stock(reward) == 10


def test_goods_go_placed_shipped_delivered_and_a_shipped_order_cannot_be_cancelled(member, reward):
    redemption = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    shipped = mark_shipped(redemption=redemption, tracking_number="SF123", carrier="SF")
    with pytest.raises(InvalidStatusTransition):
        cancel_redemption(redemption=shipped)
    delivered = mark_delivered(redemption=shipped)

    assert (shipped.status, shipped.tracking_number) == ("shipped", "SF123")
    assert delivered.status == "delivered" and delivered.delivered_at is not None
    with pytest.raises(InvalidStatusTransition):
        mark_shipped(redemption=delivered, tracking_number="SF999")
    assert available(member) == 700


def test_only_goods_are_shipped_and_a_shipment_needs_a_tracking_number(member, reward):
    RewardFactory(code="massage", kind="service", points_price=50)
    service = redeem(member=member, reward_code="massage")
    goods = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)

    with pytest.raises(InvalidStatusTransition):
        mark_shipped(redemption=service, tracking_number="SF1")
    with pytest.raises(InvalidStatusTransition):
        mark_shipped(redemption=goods, tracking_number="  ")
    assert mark_fulfilled(redemption=service).status == "fulfilled"
    with pytest.raises(InvalidStatusTransition):
        mark_delivered(redemption=goods)


def test_bulk_mark_shipped_reports_the_lines_it_could_not_ship(member, reward):
    one = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    two = redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS)
    cancel_redemption(redemption=two)

    result = bulk_mark_shipped(
        rows=[(one.pk, "YT1", "YTO"), (two.pk, "YT2", ""), ("abc", "YT3", ""), (999999, "YT4", "")]
    )

    assert result.shipped == [one.pk]
    assert [line for line, _message in result.errors] == [3, 4, 5]
    one.refresh_from_db()
    assert (one.status, one.tracking_number, one.carrier) == ("shipped", "YT1", "YTO")


def test_a_coupon_rewards_stock_is_its_unused_codes(member):
    coupon = RewardFactory(code="coffee", kind="coupon", points_price=100, stock=0)

    assert import_coupon_codes(reward=coupon, codes=["A1", "A2", "A3", "A2", " "]) == 3
    assert stock(coupon) == 3
    assert import_coupon_codes(reward=coupon, codes=["A3", "A4"]) == 1
    redemption = redeem(member=member, reward_code="coffee", quantity=2)

    codes = sorted(CouponCode.objects.filter(redemption=redemption).values_list("code", flat=True))
    assert codes == ["A1", "A2"]
    assert stock(coupon) == 2
    cancel_redemption(redemption=redemption)
    assert stock(coupon) == 4
    assert not CouponCode.objects.filter(redemption__isnull=False).exists()


def test_a_coupon_rewards_stock_cannot_be_set_by_hand(db):
    coupon = RewardFactory(code="coffee", kind="coupon", points_price=100, stock=0)
    import_coupon_codes(reward=coupon, codes=["A1"])

    with pytest.raises(InvalidRewardChange):
        reward_upsert(code="coffee", partner=None, stock=50)

    reward, created = reward_upsert(code="coffee", partner=None, stock=1, points_price=90)
    assert (created, reward.stock, reward.points_price) == (False, 1, 90)


def test_reward_upsert_creates_then_updates_and_leaves_what_is_not_given(db):
    reward, created = reward_upsert(
        code="mug", partner=None, name="马克杯", points_price=80, stock=5, category="home"
    )
    again, created_again = reward_upsert(code="mug", partner=None, stock=7)

    assert (created, created_again) == (True, False)
    assert (again.pk, again.name_zh, again.points_price, again.stock) == (
        reward.pk,
        "马克杯",
        80,
        7,
    )
    assert again.category.code == "home"
