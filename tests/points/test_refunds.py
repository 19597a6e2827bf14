"""refund_order: proportional reversal, the refund-after-spend policies, points given back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from points import services
from points.exceptions import AlreadyRefunded, InvalidLedgerRequest, OrderNotFound
from points.models import Account, Allocation, Entry, Lot, Order, OutboxEvent
from tests.factories import PartnerFactory
from tests.points.conftest import at

pytestmark = pytest.mark.django_db


def available(member) -> int:
    return Account.objects.get(member=member).available


def buy(member, partner, reference="o-1", amount="256.00", points=None, **extra):
    return services.record_purchase(
        member=member,
        partner=partner,
        reference=reference,
        amount=Decimal(amount),
        currency="CNY",
        points=int(Decimal(amount)) if points is None else points,
        **extra,
    )


def refund(partner, reference="o-1", amount=None):
    return services.refund_order(
        partner=partner, reference=reference, amount=None if amount is None else Decimal(amount)
    )


def test_a_full_refund_reverses_every_point_the_order_earned(member, partner):
    bought = buy(member, partner)

    result = refund(partner)

    assert result.points_reversed == 256
    assert [(e.kind, e.amount) for e in result.entries] == [("reverse", -256)]
    assert result.entries[0].related_entry_id == bought.earn.entry.pk
    assert result.entries[0].reference == "o-1"
    assert available(member) == 0
    order = Order.objects.get()
    assert (order.refunded_amount, order.points_reversed) == (Decimal("256.00"), 256)
    assert OutboxEvent.objects.filter(type="points.reversed").count() == 1


def test_partial_refunds_reverse_the_floor_of_the_cumulative_share(member, partner):
    buy(member, partner, amount="100.00", points=99)

    reversed_points = [
        refund(partner, amount=a).points_reversed for a in ("33.33", "33.33", "33.34")
    ]

    # floor(99 x 33.33%) = 32, floor(99 x 66.66%) = 65, then the rest: 34.
    assert reversed_points == [32, 33, 34]
    assert sum(reversed_points) == 99
    assert available(member) == 0


def test_partial_refunds_of_a_purchase_add_up_to_the_whole(member, partner):
    buy(member, partner, amount="256.00")

    first = refund(partner, amount="100.00")
    second = refund(partner, amount="156.00")

    assert (first.points_reversed, second.points_reversed) == (100, 156)
    assert available(member) == 0


def test_refunding_more_than_was_bought_is_refused(member, partner):
    buy(member, partner, amount="50.00")
    refund(partner, amount="30.00")

    with pytest.raises(AlreadyRefunded) as raised:
        refund(partner, amount="30.00")

    assert raised.value.code == "already_refunded"
    assert available(member) == 20
    assert Order.objects.get().refunded_amount == Decimal("30.00")


def test_a_second_full_refund_is_refused(member, partner):
    buy(member, partner)
    refund(partner)

    with pytest.raises(AlreadyRefunded):
        refund(partner)


def test_an_unknown_reference_is_not_found(member, partner):
    buy(member, partner)

    with pytest.raises(OrderNotFound) as raised:
        refund(partner, reference="nope")
    with pytest.raises(OrderNotFound):
        refund(PartnerFactory(name="Other"), reference="o-1")

    assert raised.value.code == "not_found"


def test_a_refund_amount_must_be_positive(member, partner):
    buy(member, partner)

    with pytest.raises(InvalidLedgerRequest):
        refund(partner, amount="0")


def test_a_refund_during_the_return_window_takes_the_points_from_pending(member, partner):
    buy(member, partner, amount="100.00", available_at=timezone.now() + timedelta(days=14))

    result = refund(partner, amount="40.00")

    account = Account.objects.get(member=member)
    assert (account.available, account.pending) == (0, 60)
    assert (result.entries[0].pending_delta, result.entries[0].available_delta) == (-40, 0)
    assert Lot.objects.get().remaining == 60


def test_a_refund_after_spending_takes_from_other_points_by_default(member, partner):
    bought = buy(member, partner, amount="100.00", expires_at=at("2030-01-01 00:00"))
    other = services.earn(member=member, points=500, expires_at=at("2031-01-01 00:00")).lot
    services.spend(member=member, points=80)  # takes 80 from the order's own lot first

    result = refund(partner)

    assert result.points_reversed == 100
    assert [(e.kind, e.amount) for e in result.entries] == [("reverse", -20), ("reverse", -80)]
    assert "take_from_other_points" in result.entries[1].memo
    assert Lot.objects.get(pk=bought.earn.lot.pk).remaining == 0
    assert Lot.objects.get(pk=other.pk).remaining == 420
    assert available(member) == 420


def test_taking_from_other_points_writes_off_what_the_member_no_longer_has(member, partner):
    buy(member, partner, amount="100.00")
    services.earn(member=member, points=30)
    services.spend(member=member, points=120)

    result = refund(partner)

    assert [e.amount for e in result.entries] == [-10, 0]
    write_off = result.entries[1]
    assert "90 points written off" in write_off.memo
    assert result.points_reversed == 10
    assert available(member) == 0
    assert Order.objects.get().points_written_off == 90


def test_allow_negative_lets_the_balance_go_below_zero_down_to_the_limit(
    member, partner, configure
):
    configure(refund_after_spend_policy="allow_negative", negative_balance_limit=50)
    buy(member, partner, amount="100.00")
    services.spend(member=member, points=100)

    result = refund(partner)

    assert result.points_reversed == 50
    assert available(member) == -50
    assert "allow_negative" in result.entries[0].memo
    assert "50 points written off" in Entry.objects.get(kind="reverse", amount=0).memo


def test_a_negative_balance_is_paid_first_by_the_next_points(member, partner, configure):
    configure(refund_after_spend_policy="allow_negative", negative_balance_limit=500)
    buy(member, partner, amount="100.00")
    services.spend(member=member, points=100)
    refund(partner)
    assert available(member) == -100

    services.earn(member=member, points=30)
    assert available(member) == -70
    with pytest.raises(services.InsufficientPoints):
        services.spend(member=member, points=1)

    result = services.earn(member=member, points=100)
    assert available(member) == 30
    assert Lot.objects.get(pk=result.lot.pk).remaining == 30
    services.spend(member=member, points=30)


def test_write_off_takes_nothing_but_shows_the_decision(member, partner, configure):
    configure(refund_after_spend_policy="write_off")
    buy(member, partner, amount="100.00")
    services.earn(member=member, points=500)
    services.spend(member=member, points=150)  # the order's lot first (same expiry, older)

    result = refund(partner)

    assert result.points_reversed == 0
    assert [(e.kind, e.amount) for e in result.entries] == [("reverse", 0)]
    assert "100 points written off (policy write_off)" in result.entries[0].memo
    assert available(member) == 450


def test_points_that_expired_before_the_refund_are_not_taken_again(member, partner):
    buy(member, partner, amount="100.00", expires_at=at("2030-01-01 00:00"))
    services.earn(member=member, points=500, expires_at=at("2031-01-01 00:00"))
    services.spend(member=member, points=30)
    services.expire_lots(as_of=at("2030-01-02 00:00"))  # the order's other 70 points expire

    result = refund(partner)

    assert result.points_reversed == 30  # the 30 already spent, from other points
    assert available(member) == 600 - 30 - 70 - 30
    order = Order.objects.get()
    assert (order.points_written_off, order.points_lapsed) == (70, 70)
    assert "70 had already expired" in Entry.objects.get(kind="reverse", amount=0).memo


def test_a_refund_of_a_point_payment_gives_the_points_back_to_their_lots(member, partner):
    soon = services.earn(member=member, points=100, expires_at=at("2030-01-01 00:00")).lot
    late = services.earn(member=member, points=100, expires_at=at("2031-01-01 00:00")).lot
    paid = services.spend(member=member, points=150, partner=partner, reference="pay-1")
    services.earn(member=member, points=100, expires_at=at("2029-01-01 00:00"))

    result = refund(partner, reference="pay-1")

    assert result.points_reversed == 0
    [back] = result.entries
    assert (back.kind, back.amount, back.related_entry_id) == ("reverse", 150, paid.entry.pk)
    assert [Lot.objects.get(pk=lot.pk).remaining for lot in (soon, late)] == [100, 100]
    assert available(member) == 300
    with pytest.raises(AlreadyRefunded):
        refund(partner, reference="pay-1")


def test_a_point_payment_is_refunded_in_full_only(member, partner):
    services.earn(member=member, points=100)
    services.spend(member=member, points=50, partner=partner, reference="pay-1")

    with pytest.raises(InvalidLedgerRequest):
        refund(partner, reference="pay-1", amount="1.00")


def test_a_partial_refund_of_a_purchase_paid_partly_with_points(member, partner):
    soon = services.earn(member=member, points=300, expires_at=at("2030-01-01 00:00")).lot
    late = services.earn(member=member, points=300, expires_at=at("2031-01-01 00:00")).lot
    services.spend(member=member, points=500, partner=partner, reference="o-5")
    buy(member, partner, reference="o-5", amount="100.00", points=95, paid_with_points=Decimal(5))
    assert available(member) == 195

    half = refund(partner, reference="o-5", amount="50.00")

    # Half the points paid come back, to the lot taken last first; then half the points earned.
    assert [(e.kind, e.amount) for e in half.entries] == [("reverse", 250), ("reverse", -47)]
    assert Lot.objects.get(pk=late.pk).remaining == 100 + 200
    assert Lot.objects.get(pk=soon.pk).remaining == 50
    assert available(member) == 195 + 250 - 47

    rest = refund(partner, reference="o-5")

    assert [(e.kind, e.amount) for e in rest.entries] == [("reverse", 250), ("reverse", -48)]
    assert [Lot.objects.get(pk=lot.pk).remaining for lot in (soon, late)] == [300, 300]
    assert available(member) == 600
    order = Order.objects.get(reference="o-5")
    assert (order.points_returned, order.points_reversed) == (500, 95)


def test_points_given_back_while_the_balance_is_negative_pay_the_debt(
    member, partner, configure, operator
):
    configure(negative_balance_limit=200)
    services.earn(member=member, points=100)
    services.spend(member=member, points=100, partner=partner, reference="pay-1")
    services.adjust(member=member, points=-150, reason="clawback", operator=operator)
    assert available(member) == -150

    [back] = refund(partner, reference="pay-1").entries

    assert available(member) == -50
    assert sorted(Allocation.objects.filter(entry=back).values_list("points", flat=True)) == [
        -100,
        100,
    ]
    assert Lot.objects.get().remaining == 0
