"""Reads of the rewards mall shared by the API, the admin and the mall pages.

`member_price` is the ONE place a member's price of a reward is computed; the API, the mall
pages and the redemption service all call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Prefetch, QuerySet, Sum
from django.utils import timezone

from members.models import Member, Tier
from points.models import Partner
from rewards_mall.exceptions import RedemptionNotFound
from rewards_mall.models import Category, Redemption, Reward, TierPrice

UNAVAILABLE_INACTIVE = "inactive"
UNAVAILABLE_NOT_YET = "not_yet"
UNAVAILABLE_ENDED = "ended"
UNAVAILABLE_TIER = "tier"


@dataclass(frozen=True)
class Price:
    points: int
    cash: Decimal | None

    def times(self, quantity: int) -> Price:
        cash = None if self.cash is None else self.cash * quantity
        return Price(points=self.points * quantity, cash=cash)


@dataclass(frozen=True)
class Offer:
    """A reward as one member sees it: their price and whether they may redeem it now."""

    reward: Reward
    price: Price
    unavailable: str | None

    @property
    def available(self) -> bool:
        return self.unavailable is None and self.reward.stock > 0


def member_price(*, reward: Reward, member: Member | None) -> Price:
    """The price of one unit of `reward` for `member`: the explicit price of the member's tier
    if the reward has one, else the list points price with the tier's redemption price
    adjustment (Tier.adjusted_points_price; the cash part is unchanged). Uses `tier_prices`
    when prefetched.
    """
    if member is not None:
        for tier_price in _tier_prices(reward):
            if tier_price.tier_id == member.tier_id:
                return Price(points=tier_price.points_price, cash=tier_price.cash_price)
        points = member.tier.adjusted_points_price(reward.points_price)
        return Price(points=points, cash=reward.cash_price)
    return Price(points=reward.points_price, cash=reward.cash_price)


def _tier_prices(reward: Reward):
    prefetched = getattr(reward, "_prefetched_objects_cache", {})
    if "tier_prices" in prefetched:
        return prefetched["tier_prices"]
    return reward.tier_prices.all()


def allowed_tier_ids(reward: Reward) -> set[int]:
    return {tier.pk for tier in reward.tiers.all()}


def unavailable_reason(
    *, reward: Reward, member: Member | None, now: datetime | None = None
) -> str | None:
    """Why `member` may not redeem `reward` at `now` (None: they may; stock aside)."""
    now = now or timezone.now()
    if not reward.is_active:
        return UNAVAILABLE_INACTIVE
    if reward.available_from is not None and now < reward.available_from:
        return UNAVAILABLE_NOT_YET
    if reward.available_until is not None and now >= reward.available_until:
        return UNAVAILABLE_ENDED
    tiers = allowed_tier_ids(reward)
    if tiers and (member is None or member.tier_id not in tiers):
        return UNAVAILABLE_TIER
    return None


def reward_queryset() -> QuerySet[Reward]:
    """Rewards with what pricing and availability read, loaded in three queries in all."""
    return Reward.objects.select_related("category").prefetch_related(
        Prefetch("tiers", queryset=Tier.objects.only("id", "code")),
        Prefetch("tier_prices", queryset=TierPrice.objects.all()),
    )


def reward_by_code(*, code: str) -> Reward | None:
    return reward_queryset().filter(code=code).first()


def catalogue(
    *,
    member: Member | None,
    category: str | None = None,
    affordable_points: int | None = None,
    only_available: bool = True,
    now: datetime | None = None,
) -> list[Offer]:
    """The rewards a member sees, featured first: with `only_available`, only those they may
    redeem now (active, in their window, allowed to their tier); with `affordable_points`, only
    those whose member price is at most that many points."""
    now = now or timezone.now()
    rewards = reward_queryset()
    if only_available:
        rewards = rewards.filter(is_active=True)
    if category:
        rewards = rewards.filter(category__code=category)
    offers = []
    for reward in rewards:
        offer = Offer(
            reward=reward,
            price=member_price(reward=reward, member=member),
            unavailable=unavailable_reason(reward=reward, member=member, now=now),
        )
        if only_available and offer.unavailable is not None:
            continue
        if affordable_points is not None and offer.price.points > affordable_points:
            continue
        offers.append(offer)
    return offers


def categories() -> QuerySet[Category]:
    return Category.objects.filter(is_active=True)


def units_redeemed(*, reward_id: int, member_id: int) -> int:
    """Units of a reward the member holds in redemptions that were not cancelled."""
    total = (
        Redemption.objects.filter(reward_id=reward_id, member_id=member_id)
        .exclude(status=Redemption.Status.CANCELLED)
        .aggregate(total=Sum("quantity"))["total"]
    )
    return total or 0


def member_redemptions(*, member: Member) -> QuerySet[Redemption]:
    """The member's own redemptions, newest first."""
    return (
        Redemption.objects.filter(member_id=member.pk)
        .select_related("reward")
        .prefetch_related("coupon_codes")
    )


def member_redemption(*, member: Member, redemption_id: int) -> Redemption:
    """One of the member's own redemptions; another member's is RedemptionNotFound."""
    redemption = member_redemptions(member=member).filter(pk=redemption_id).first()
    if redemption is None:
        raise RedemptionNotFound(redemption=redemption_id)
    return redemption


def partner_redemption(*, partner: Partner, redemption_id: int) -> Redemption:
    """A redemption as the partner that placed it sees it; any other's is RedemptionNotFound."""
    redemption = (
        Redemption.objects.filter(pk=redemption_id, partner_id=partner.pk)
        .select_related("reward", "member")
        .prefetch_related("coupon_codes")
        .first()
    )
    if redemption is None:
        raise RedemptionNotFound(redemption=redemption_id)
    return redemption


@dataclass(frozen=True)
class TierProgress:
    tier: Tier
    next_tier: Tier | None
    growth: int
    needed: int
    percent: int


def tier_progress(*, member: Member) -> TierProgress:
    """The member's tier and how far their growth value is towards the next one."""
    tier = member.tier
    next_tier = (
        Tier.objects.filter(rank__gt=tier.rank, growth_threshold__gt=tier.growth_threshold)
        .order_by("rank")
        .first()
    )
    if next_tier is None:
        return TierProgress(tier=tier, next_tier=None, growth=member.growth, needed=0, percent=100)
    span = next_tier.growth_threshold - tier.growth_threshold
    done = min(max(member.growth - tier.growth_threshold, 0), span)
    return TierProgress(
        tier=tier,
        next_tier=next_tier,
        growth=member.growth,
        needed=max(next_tier.growth_threshold - member.growth, 0),
        percent=int(done * 100 / span),
    )
