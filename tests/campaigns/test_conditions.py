"""Each condition of an earning rule, over POST /events."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import EarningRule, ExcludedProduct, RuleRate
from members.models import Segment, SegmentMembership
from tests.campaigns.conftest import awarded
from tests.factories import MemberFactory, PartnerFactory, TierFactory

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args) -> str:
    return datetime(*args, tzinfo=SHANGHAI).isoformat()


def test_default_rule_is_an_earning_rule_listed_in_rules_applied(pos, member):
    body = pos.purchase("u-1001", "o-1", "256.99").json()
    assert body["points_awarded"] == 256
    assert body["rules_applied"] == [{"rule": "default-purchase", "points": 256}]


def test_minimum_amount(pos, member, only_rule):
    only_rule(min_amount=Decimal("100"))
    assert awarded(pos.purchase("u-1001", "o-1", "99.99")) == 0
    assert awarded(pos.purchase("u-1001", "o-2", "100.00")) == 100


def test_channels_and_stores(pos, member, only_rule):
    only_rule(channels=["app"], stores=["s-1"])
    assert awarded(pos.purchase("u-1001", "o-1", "10", channel="pos", store="s-1")) == 0
    assert awarded(pos.purchase("u-1001", "o-2", "10", channel="app", store="s-2")) == 0
    assert awarded(pos.purchase("u-1001", "o-3", "10", channel="app", store="s-1")) == 10


def test_partners(pos, member, only_rule):
    only_rule(partners=[PartnerFactory()])
    assert awarded(pos.purchase("u-1001", "o-1", "10")) == 0
    EarningRule.objects.get(code="r1").partners.add(pos.partner)
    assert awarded(pos.purchase("u-1001", "o-2", "10")) == 10


def test_categories_scope_the_amount_and_rates_by_category_or_sku(pos, member, only_rule):
    rule = only_rule(categories=["drinks", "snacks"])
    RuleRate.objects.create(rule=rule, kind="category", code="drinks", points_per_unit=3)
    RuleRate.objects.create(rule=rule, kind="sku", code="D-9", points_per_unit=5)
    items = [
        {"sku": "D-1", "category": "drinks", "amount": "10.00"},  # 3 x 10
        {"sku": "D-9", "category": "drinks", "amount": "2.00"},  # SKU rate wins: 5 x 2
        {"sku": "S-1", "category": "snacks", "amount": "4.50"},  # rule rate 1 x 4.5
        {"sku": "B-1", "category": "books", "amount": "50.00"},  # out of scope
    ]
    assert awarded(pos.purchase("u-1001", "o-1", "66.50", items=items)) == 30 + 10 + 4
    assert awarded(pos.purchase("u-1001", "o-2", "50", items=items[3:])) == 0


def test_skus(pos, member, only_rule):
    only_rule(skus=["A1"], points_per_unit=Decimal("2"))
    items = [{"sku": "A1", "amount": "10"}, {"sku": "B1", "amount": "10"}]
    assert awarded(pos.purchase("u-1001", "o-1", "20", items=items)) == 20


def test_excluded_products_never_earn(pos, member):
    ExcludedProduct.objects.create(kind="category", code="gift_card")
    ExcludedProduct.objects.create(kind="sku", code="DEPOSIT")
    items = [
        {"sku": "GC", "category": "gift_card", "amount": "100"},
        {"sku": "DEPOSIT", "amount": "20"},
        {"sku": "A1", "amount": "30"},
    ]
    assert awarded(pos.purchase("u-1001", "o-1", "150", items=items)) == 30


def test_points_paid_part_and_flagged_items_never_earn(pos, member):
    items = [{"sku": "GC", "amount": "100", "excluded": True}, {"sku": "A", "amount": "200"}]
    assert awarded(pos.purchase("u-1001", "o-1", "300", paid_with_points="50", items=items)) == 150


def test_tiers(pos, only_rule):
    gold = TierFactory(code="gold", rank=3, growth_threshold=1000)
    MemberFactory(external_id="g", tier=gold)
    MemberFactory(external_id="m")
    only_rule(tiers=[gold])
    assert awarded(pos.purchase("m", "o-1", "10")) == 0
    assert awarded(pos.purchase("g", "o-2", "10")) == 10


def test_segments(pos, only_rule):
    vip = Segment.objects.create(code="vip-test", name="VIP")
    inside = MemberFactory(external_id="in")
    MemberFactory(external_id="out")
    SegmentMembership.objects.create(member=inside, segment=vip, as_of=datetime.now(SHANGHAI))
    only_rule(segments=[vip])
    assert awarded(pos.purchase("out", "o-1", "10")) == 0
    assert awarded(pos.purchase("in", "o-2", "10")) == 10


def test_weekdays_and_time_of_day_in_the_programme_time_zone(pos, member, only_rule):
    # 2026-11-24 is a Tuesday.
    only_rule(weekdays=[2], time_from=time(10), time_to=time(14))
    assert awarded(pos.purchase("u-1001", "o-1", "10", occurred_at=at(2026, 11, 24, 9, 59))) == 0
    assert awarded(pos.purchase("u-1001", "o-2", "10", occurred_at=at(2026, 11, 24, 10))) == 10
    assert awarded(pos.purchase("u-1001", "o-3", "10", occurred_at=at(2026, 11, 24, 14))) == 0
    assert awarded(pos.purchase("u-1001", "o-4", "10", occurred_at=at(2026, 11, 23, 11))) == 0


def test_date_range(pos, member, only_rule):
    only_rule(starts_at=at(2026, 11, 1), ends_at=at(2026, 11, 8))
    assert awarded(pos.purchase("u-1001", "o-1", "10", occurred_at=at(2026, 10, 31, 23))) == 0
    assert awarded(pos.purchase("u-1001", "o-2", "10", occurred_at=at(2026, 11, 1))) == 10
    assert awarded(pos.purchase("u-1001", "o-3", "10", occurred_at=at(2026, 11, 8))) == 0


def test_fixed_points_for_a_configured_event_type(pos, member):
    EarningRule.objects.create(
        code="review", name="review", event_type="review", status="active", fixed_points=20
    )
    body = pos.post("events", {"type": "review", "member": "u-1001"}).json()
    assert body["points_awarded"] == 20
    assert body["rules_applied"] == [{"rule": "review", "points": 20}]


def test_unknown_event_type_is_refused(pos, member):
    response = pos.post("events", {"type": "teleport", "member": "u-1001"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_draft_and_paused_rules_do_not_apply(pos, member, default_rule):
    for status in ("draft", "paused"):
        default_rule.status = status
        default_rule.save()
        assert awarded(pos.purchase("u-1001", f"o-{status}", "10")) == 0
