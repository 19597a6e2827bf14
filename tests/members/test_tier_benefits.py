"""Tier benefits other tests do not cover: the redemption price adjustment in the mall's one
price function, the translatable name, and rank swaps in the tier admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from members.models import Tier
from rewards_mall.selectors import member_price
from tests.factories import MemberFactory, RewardFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("adjustment", "list_price", "expected"),
    [("-20", 100, 80), ("20", 100, 120), ("0", 99, 99), ("-20", 99, 79), ("-99", 1, 1)],
)
def test_the_tiers_price_adjustment_applies_to_the_points_price(
    tiers, adjustment, list_price, expected
):
    gold = tiers["gold"]
    gold.redemption_price_adjustment = Decimal(adjustment)
    gold.save()
    member = MemberFactory(tier=gold)
    reward = RewardFactory(points_price=list_price)

    assert member_price(reward=reward, member=member).points == expected
    assert member_price(reward=reward, member=None).points == list_price


def test_the_tier_name_is_shown_in_the_active_language(tiers):
    with translation.override("en"):
        assert str(tiers["gold"]) == "Gold"
    with translation.override("zh-hans"):
        assert str(tiers["gold"]) == "金卡"


def test_the_admin_swaps_two_tiers_ranks_in_one_save(admin_client, tiers):
    ordered = list(Tier.objects.order_by("rank"))
    data = {
        "form-TOTAL_FORMS": str(len(ordered)),
        "form-INITIAL_FORMS": str(len(ordered)),
        "_save": "Save",
    }
    swapped = {tiers["silver"].pk: 2, tiers["gold"].pk: 1}
    for index, tier in enumerate(ordered):
        data[f"form-{index}-id"] = str(tier.pk)
        data[f"form-{index}-rank"] = str(swapped.get(tier.pk, tier.rank))
        data[f"form-{index}-growth_threshold"] = str(tier.growth_threshold)

    response = admin_client.post(reverse("admin:members_tier_changelist"), data)

    assert response.status_code == 302, response.context["cl"].formset.errors
    assert Tier.objects.get(code="gold").rank == 1
    assert Tier.objects.get(code="silver").rank == 2
