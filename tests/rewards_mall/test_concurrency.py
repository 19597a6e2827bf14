"""Many members (or one member clicking twice) redeeming at the same moment on real
PostgreSQL: stock and coupon codes are never oversold, the per-member limit holds, and the
ledger invariant holds afterwards. Each thread has its own database connection."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import close_old_connections, connection

from loyalty_site.exceptions import LoyaltyError
from points.models import Account, Entry
from points.services import check_ledger_invariants
from rewards_mall.models import CouponCode, Redemption, Reward
from rewards_mall.services import cancel_redemption, import_coupon_codes, redeem
from tests.factories import RewardFactory
from tests.rewards_mall.conftest import member_with_points

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = {"recipient": "A", "phone": "1", "address": "B", "city": "C"}


def run_at_once(calls) -> list[str]:
    """Run each call in its own thread, released together; returns "placed" or the error code."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=30)
            call()
            outcomes[index] = "placed"
        except LoyaltyError as error:
            outcomes[index] = error.code
        except Exception as error:
            outcomes[index] = f"crash: {error!r}"
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    close_old_connections()
    return outcomes


def test_stock_is_never_oversold_when_many_members_redeem_at_once():
    reward = RewardFactory(code="hot", points_price=100, stock=5)
    members = [member_with_points(f"m-{n}", 500) for n in range(20)]

    outcomes = run_at_once(
        [lambda m=m: redeem(member=m, reward_code="hot", shipping_address=ADDRESS) for m in members]
    )

    assert Counter(outcomes) == {"placed": 5, "out_of_stock": 15}
    reward.refresh_from_db()
    assert reward.stock == 0
    assert Redemption.objects.count() == 5
    assert Entry.objects.filter(kind="redeem").count() == 5
    assert check_ledger_invariants() == []


def test_coupon_codes_are_never_handed_out_twice():
    coupon = RewardFactory(code="coffee", kind="coupon", points_price=10, stock=0)
    import_coupon_codes(reward=coupon, codes=[f"CODE-{n:03d}" for n in range(7)])
    members = [member_with_points(f"m-{n}", 100) for n in range(16)]

    outcomes = run_at_once([lambda m=m: redeem(member=m, reward_code="coffee") for m in members])

    assert Counter(outcomes) == {"placed": 7, "out_of_stock": 9}
    issued = CouponCode.objects.filter(redemption__isnull=False)
    assert issued.count() == 7
    assert len(set(issued.values_list("redemption", flat=True))) == 7  # one code per order
    coupon.refresh_from_db()
    assert coupon.stock == 0
    assert check_ledger_invariants() == []


def test_a_double_click_redeems_once_when_the_limit_is_one():
    reward = RewardFactory(code="limited", points_price=100, stock=50, per_member_limit=1)
    member = member_with_points("clicker", 1000)

    outcomes = run_at_once(
        [lambda: redeem(member=member, reward_code="limited", shipping_address=ADDRESS)] * 6
    )

    assert Counter(outcomes) == {"placed": 1, "limit_exceeded": 5}
    reward.refresh_from_db()
    assert reward.stock == 49
    assert Entry.objects.filter(kind="redeem").count() == 1
    assert Account.objects.get(member=member).available == 900
    assert check_ledger_invariants() == []


def test_the_same_form_submitted_from_two_tabs_at_once_places_one_order():
    RewardFactory(code="unlimited", points_price=100, stock=50)
    member = member_with_points("tabs", 1000)

    outcomes = run_at_once(
        [
            lambda: redeem(
                member=member,
                reward_code="unlimited",
                shipping_address=ADDRESS,
                request_token="form-xyz",
            )
        ]
        * 4
    )

    assert outcomes == ["placed"] * 4  # each click answers with the one order
    assert Redemption.objects.count() == 1
    assert Entry.objects.filter(kind="redeem").count() == 1


def test_redemptions_and_cancellations_racing_keep_stock_and_points_exact():
    reward = RewardFactory(code="race", points_price=100, stock=3)
    members = [member_with_points(f"r-{n}", 300) for n in range(6)]
    early = [redeem(member=m, reward_code="race", shipping_address=ADDRESS) for m in members[:3]]

    outcomes = run_at_once(
        [lambda r=r: cancel_redemption(redemption=r) for r in early]
        + [
            lambda m=m: redeem(member=m, reward_code="race", shipping_address=ADDRESS)
            for m in members[3:]
        ]
    )

    placed_now = Redemption.objects.exclude(status="cancelled").count()
    reward.refresh_from_db()
    assert outcomes[:3] == ["placed"] * 3  # every cancellation went through
    assert set(outcomes[3:]) <= {"placed", "out_of_stock"}
    assert reward.stock == 3 - placed_now
    assert placed_now == outcomes[3:].count("placed")
    assert Reward.objects.filter(stock__lt=0).count() == 0
    assert check_ledger_invariants() == []


def test_a_redemption_waits_while_someone_else_holds_the_reward_row():
    """Someone else holding the reward's row (an admin saving it, another redemption) makes a
    redemption wait, and it completes once that lock is released."""
    from django.db import transaction

    from rewards_mall.lock_objects import lock_reward

    reward = RewardFactory(code="locked", points_price=100, stock=5)
    member = member_with_points("waiter", 500)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with transaction.atomic():
                lock_reward(reward_id=reward.pk)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holding.wait(10)
    outcome = []
    redeemer = threading.Thread(
        target=lambda: (
            outcome.append(redeem(member=member, reward_code="locked", shipping_address=ADDRESS)),
            connection.close(),
        )
    )
    redeemer.start()
    redeemer.join(1.0)

    assert redeemer.is_alive()  # blocked on the reward's row
    assert not Redemption.objects.exists() and Account.objects.get(member=member).available == 500
    release.set()
    holder.join(10)
    redeemer.join(10)
    assert len(outcome) == 1 and Redemption.objects.count() == 1
    close_old_connections()


def test_the_database_itself_refuses_negative_stock():
    from django.db import IntegrityError, transaction

    reward = RewardFactory(code="guarded", stock=1)

    with pytest.raises(IntegrityError), transaction.atomic():
        Reward.objects.filter(pk=reward.pk).update(stock=-1)
