"""Concurrent refunds of one order: never more refunded, reversed or returned than there was."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from django.db.models import Sum

from points import services
from points.exceptions import AlreadyRefunded
from points.models import Account, Entry, Order
from points.services import check_ledger_invariants
from tests.concurrency.conftest import TRANSACTIONAL
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import MemberFactory, PartnerFactory

pytestmark = TRANSACTIONAL


def buy(member, partner, amount: str, points: int, reference: str = "o-1"):
    return services.record_purchase(
        member=member,
        partner=partner,
        reference=reference,
        amount=Decimal(amount),
        currency="CNY",
        points=points,
    )


def refund(partner, amount: str | None, reference: str = "o-1"):
    return services.refund_order(
        partner=partner,
        reference=reference,
        amount=None if amount is None else Decimal(amount),
    )


def reversed_points(account: Account) -> int:
    total = Entry.objects.filter(account=account, kind="reverse").aggregate(s=Sum("amount"))["s"]
    return -(total or 0)


def test_eight_partial_refunds_at_once_refund_no_more_than_the_order():
    member, partner = MemberFactory(), PartnerFactory()
    buy(member, partner, "100.00", 100)

    outcomes = run_concurrently(*[(lambda: refund(partner, "30.00")) for _ in range(8)])

    assert unexpected(outcomes, AlreadyRefunded) == []
    assert [outcome.ok for outcome in outcomes].count(True) == 3
    assert sum(outcome.value.points_reversed for outcome in outcomes if outcome.ok) == 90
    order = Order.objects.get()
    assert (order.refunded_amount, order.points_reversed) == (Decimal("90.00"), 90)
    account = Account.objects.get(member=member)
    assert (account.available, reversed_points(account)) == (10, 90)
    assert check_ledger_invariants() == []


def test_full_and_partial_refunds_at_once_reverse_the_share_of_what_was_refunded():
    member, partner = MemberFactory(), PartnerFactory()
    buy(member, partner, "99.99", 99)
    amounts = [None, None, "33.33", "33.33", "33.33", "50.00", "0.01", "0.01"]

    outcomes = run_concurrently(*[(lambda a=amount: refund(partner, a)) for amount in amounts])

    assert unexpected(outcomes, AlreadyRefunded) == []
    order = Order.objects.get()
    assert Decimal("0") < order.refunded_amount <= Decimal("99.99")
    # The floor of the cumulative share, whatever order the refunds ran in.
    share = int(
        (Decimal(99) * order.refunded_amount / Decimal("99.99")).to_integral_value(ROUND_FLOOR)
    )
    assert order.points_reversed == share
    assert sum(outcome.value.points_reversed for outcome in outcomes if outcome.ok) == share
    account = Account.objects.get(member=member)
    assert (account.available, reversed_points(account)) == (99 - share, share)
    assert check_ledger_invariants() == []


def test_refunds_of_one_point_payment_at_once_return_the_points_once():
    member, partner = MemberFactory(), PartnerFactory()
    services.earn(member=member, points=500)
    services.spend(member=member, points=300, partner=partner, reference="pay-1")

    outcomes = run_concurrently(
        *[(lambda: refund(partner, None, reference="pay-1")) for _ in range(6)]
    )

    assert unexpected(outcomes, AlreadyRefunded) == []
    assert [outcome.ok for outcome in outcomes].count(True) == 1
    account = Account.objects.get(member=member)
    assert (account.available, account.lifetime_spent) == (500, 0)
    assert Entry.objects.filter(kind="reverse").count() == 1
    assert check_ledger_invariants() == []
