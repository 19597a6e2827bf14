"""Row locks of the rewards mall, in the project's one lock order (points/lock_objects.py):
the reward's stock row FIRST, then the redemption row, then points Account rows by id (taken
inside points.services). Each helper returns SELECT ... FOR UPDATE OF the table itself."""

from __future__ import annotations

from django.db.models import QuerySet

from rewards_mall.models import CouponCode, Redemption, Reward


def reward_qs_select_for_update() -> QuerySet[Reward]:
    return Reward.objects.order_by("pk").select_for_update(of=("self",))


def lock_reward(*, reward_id: int) -> Reward:
    return reward_qs_select_for_update().get(pk=reward_id)


def lock_redemption(*, redemption_id: int) -> Redemption:
    """Lock a redemption row; if it holds stock, its reward must be locked first."""
    return (
        Redemption.objects.select_for_update(of=("self",))
        .select_related("reward", "member")
        .get(pk=redemption_id)
    )


def take_unused_coupon_codes(*, reward_id: int, count: int) -> list[CouponCode]:
    """Up to `count` unused codes of a reward, locked; codes another transaction is handing out
    right now are skipped (FOR UPDATE SKIP LOCKED) rather than waited for."""
    return list(
        CouponCode.objects.filter(reward_id=reward_id, redemption__isnull=True)
        .order_by("id")
        .select_for_update(skip_locked=True)[:count]
    )
