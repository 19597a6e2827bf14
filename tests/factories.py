"""factory_boy factories shared by every test folder (add yours; don't rewrite others')."""

from __future__ import annotations

from decimal import Decimal

import factory

from members.models import Member, Tier
from points.models import Partner


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"tier-{n}")
    name = factory.LazyAttribute(lambda tier: tier.code.title())
    # The default programme's entry tier (migration members.0002) holds rank 0.
    rank = factory.Sequence(lambda n: n + 1)
    growth_threshold = factory.LazyAttribute(lambda tier: tier.rank * 1000)


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    external_id = factory.Sequence(lambda n: f"u-{n:05d}")
    name = factory.Faker("name")
    phone = factory.Sequence(lambda n: f"138{n:08d}")
    email = factory.LazyAttribute(lambda member: f"{member.external_id}@example.com")
    tier = factory.LazyFunction(Tier.entry_tier)


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Partner {n}")


class OperatorFactory(factory.django.DjangoModelFactory):
    """A back-office user (operator) as recorded on adjustments."""

    class Meta:
        model = "auth.User"
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"operator-{n}")
    is_staff = True


class RewardCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "rewards_mall.Category"
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"category-{n}")
    name_zh = factory.Sequence(lambda n: f"分类 {n}")
    name_en = factory.Sequence(lambda n: f"Category {n}")


class RewardFactory(factory.django.DjangoModelFactory):
    """A physical reward in stock, 100 points, no limit, always available, for every tier."""

    class Meta:
        model = "rewards_mall.Reward"
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"reward-{n}")
    name_zh = factory.Sequence(lambda n: f"奖品 {n}")
    name_en = factory.Sequence(lambda n: f"Reward {n}")
    kind = "physical"
    points_price = 100
    stock = 10


class ExchangePartnerFactory(factory.django.DjangoModelFactory):
    """Another programme to exchange with: 10 of our points per unit, factor 1 (0.5-1.5),
    no daily limits."""

    class Meta:
        model = "points.ExchangePartner"
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"programme-{n}")
    name = factory.LazyAttribute(lambda partner: partner.code.title())
    unit_name = "miles"
    base_rate = factory.LazyFunction(lambda: Decimal("10"))
    min_factor = factory.LazyFunction(lambda: Decimal("0.5"))
    max_factor = factory.LazyFunction(lambda: Decimal("1.5"))
    factor = factory.LazyFunction(lambda: Decimal("1"))
    daily_out_limit = None
    daily_in_limit = None
