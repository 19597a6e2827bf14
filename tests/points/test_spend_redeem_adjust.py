"""Points leaving the account: spend, redemptions and their give-back, adjustments."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members.exceptions import MemberFrozen
from points import services
from points.exceptions import (
    AlreadyGivenBack,
    DuplicateReference,
    InsufficientPoints,
    InvalidLedgerRequest,
    InvalidPoints,
    ReferenceOfAnotherMember,
)
from points.models import Account, Allocation, Entry, Lot, Order, OutboxEvent
from tests.points.conftest import at

pytestmark = pytest.mark.django_db


def available(member) -> int:
    return Account.objects.get(member=member).available


def remaining(*lots) -> list[int]:
    return [Lot.objects.get(pk=lot.pk).remaining for lot in lots]


def test_spend_takes_the_lot_that_expires_soonest_first(member, partner):
    late = services.earn(member=member, points=100, expires_at=at("2031-01-01 00:00")).lot
    soon = services.earn(member=member, points=100, expires_at=at("2030-01-01 00:00")).lot

    result = services.spend(member=member, points=150, partner=partner)

    assert remaining(soon, late) == [0, 50]
    assert sorted(
        Allocation.objects.filter(entry=result.entry).values_list("lot_id", "points")
    ) == [
        (late.pk, -50),
        (soon.pk, -100),
    ]
    assert (result.entry.kind, result.entry.amount, result.entry.balance_after) == (
        "spend",
        -150,
        50,
    )
    assert available(member) == 50


def test_lots_that_never_expire_are_spent_last_and_ties_go_to_the_oldest(member, configure):
    configure(expiry_policy="never")
    never = services.earn(member=member, points=100).lot
    first = services.earn(member=member, points=100, expires_at=at("2030-01-01 00:00")).lot
    second = services.earn(member=member, points=100, expires_at=at("2030-01-01 00:00")).lot

    services.spend(member=member, points=150)

    assert remaining(first, second, never) == [0, 50, 100]


def test_spend_answers_the_cash_value_of_the_points(member, configure):
    services.earn(member=member, points=1000)

    result = services.spend(member=member, points=500)
    assert (result.cash_value, result.currency) == (Decimal("5.00"), "CNY")

    configure(point_value=Decimal("0.015"), currency="USD")
    result = services.spend(member=member, points=333)
    assert (result.cash_value, result.currency) == (Decimal("4.99"), "USD")  # rounded down


def test_spend_beyond_the_available_balance_takes_nothing(member):
    services.earn(member=member, points=100)

    with pytest.raises(InsufficientPoints) as raised:
        services.spend(member=member, points=101)

    assert raised.value.code == "insufficient_points"
    assert available(member) == 100
    assert not Entry.objects.filter(kind="spend").exists()
    assert not Allocation.objects.exists()


def test_pending_points_cannot_be_spent(member):
    services.earn(member=member, points=100, available_at=timezone.now() + timedelta(days=3))

    with pytest.raises(InsufficientPoints):
        services.spend(member=member, points=1)


def test_a_member_without_an_account_has_nothing_to_spend(member):
    with pytest.raises(InsufficientPoints):
        services.spend(member=member, points=1)


def test_a_frozen_member_cannot_spend(member):
    services.earn(member=member, points=100)
    type(member).objects.filter(pk=member.pk).update(status="frozen")

    with pytest.raises(MemberFrozen):
        services.spend(member=member, points=10)

    assert available(member) == 100


@pytest.mark.parametrize("points", [0, -1, 2.5])
def test_spend_refuses_points_that_are_not_positive_whole_numbers(member, points):
    with pytest.raises(InvalidPoints):
        services.spend(member=member, points=points)


def test_spend_with_a_reference_is_recorded_on_that_order(member, partner):
    services.earn(member=member, points=1000)

    result = services.spend(member=member, points=500, partner=partner, reference="order-779")

    order = Order.objects.get(partner=partner, reference="order-779")
    assert order.spend_entry_id == result.entry.pk
    assert (order.points_spent, order.paid_with_points, order.amount) == (
        500,
        Decimal("5.00"),
        None,
    )
    assert (result.entry.source_type, result.entry.source_id) == ("order", str(order.pk))
    assert result.entry.reference == "order-779"


def test_points_pay_a_reference_only_once(member, partner):
    services.earn(member=member, points=1000)
    services.spend(member=member, points=100, partner=partner, reference="o-1")

    with pytest.raises(DuplicateReference):
        services.spend(member=member, points=100, partner=partner, reference="o-1")

    assert available(member) == 900


def test_points_cannot_pay_another_members_order(member, other_member, partner):
    services.earn(member=member, points=100)
    services.earn(member=other_member, points=100)
    services.spend(member=other_member, points=10, partner=partner, reference="o-1")

    with pytest.raises(ReferenceOfAnotherMember):
        services.spend(member=member, points=10, partner=partner, reference="o-1")

    assert available(member) == 100


def test_spend_records_its_event(member, partner):
    services.earn(member=member, points=100)

    result = services.spend(member=member, points=60, partner=partner, reference="o-3")

    event = OutboxEvent.objects.get(type="points.spent")
    assert event.payload["entry_id"] == result.entry.pk
    assert event.payload["cash_value"] == "0.60"
    assert event.payload["available"] == 40


def test_redemption_takes_points_fifo_and_names_the_redemption(member, partner):
    soon = services.earn(member=member, points=50, expires_at=at("2030-01-01 00:00")).lot
    late = services.earn(member=member, points=50, expires_at=at("2031-01-01 00:00")).lot

    entry = services.take_for_redemption(
        member=member, points=70, redemption_id=42, partner=partner
    )

    assert (entry.kind, entry.amount, entry.balance_after) == ("redeem", -70, 30)
    assert (entry.source_type, entry.source_id) == ("redemption", "42")
    assert remaining(soon, late) == [0, 30]
    assert Account.objects.get(member=member).lifetime_spent == 70


def test_redemption_beyond_the_balance_takes_nothing(member):
    services.earn(member=member, points=10)

    with pytest.raises(InsufficientPoints):
        services.take_for_redemption(member=member, points=11, redemption_id=1)

    assert available(member) == 10


def test_giving_back_a_redemption_returns_exactly_the_same_lots(member):
    soon = services.earn(member=member, points=50, expires_at=at("2030-01-01 00:00")).lot
    late = services.earn(member=member, points=50, expires_at=at("2031-01-01 00:00")).lot
    taken = services.take_for_redemption(member=member, points=70, redemption_id=9)
    services.earn(member=member, points=500, expires_at=at("2029-01-01 00:00"))

    back = services.give_back_redemption(entry=taken)

    assert remaining(soon, late) == [50, 50]
    assert (back.kind, back.amount, back.related_entry_id) == ("reverse", 70, taken.pk)
    assert sorted(Allocation.objects.filter(entry=back).values_list("lot_id", "points")) == [
        (soon.pk, 50),
        (late.pk, 20),
    ]
    assert available(member) == 600
    assert Account.objects.get(member=member).lifetime_spent == 0


def test_a_redemption_is_given_back_only_once(member):
    services.earn(member=member, points=50)
    taken = services.take_for_redemption(member=member, points=20, redemption_id=9)
    services.give_back_redemption(entry=taken)

    with pytest.raises(AlreadyGivenBack):
        services.give_back_redemption(entry=taken)

    assert available(member) == 50


def test_only_redemption_entries_can_be_given_back(member):
    result = services.earn(member=member, points=50)
    spent = services.spend(member=member, points=10)

    for entry in (result.entry, spent.entry):
        with pytest.raises(InvalidLedgerRequest):
            services.give_back_redemption(entry=entry)


def test_points_given_back_to_an_expired_lot_expire_in_the_next_run(member):
    lot = services.earn(member=member, points=50, expires_at=at("2030-01-01 00:00")).lot
    taken = services.take_for_redemption(member=member, points=30, redemption_id=9)
    services.expire_lots(as_of=at("2030-01-02 00:00"))
    assert Lot.objects.get(pk=lot.pk).state == "expired"

    services.give_back_redemption(entry=taken)

    lot.refresh_from_db()
    assert (lot.state, lot.remaining) == ("active", 30)
    assert available(member) == 30
    assert services.expire_lots(as_of=at("2030-01-02 00:00")) == 1
    assert available(member) == 0


def test_a_positive_adjustment_creates_a_lot_with_reason_and_operator(member, operator, partner):
    entry = services.adjust(
        member=member, points=80, reason="goodwill", operator=operator, partner=partner
    )

    assert (entry.kind, entry.amount, entry.reason, entry.operator_id) == (
        "adjust",
        80,
        "goodwill",
        operator.pk,
    )
    lot = Lot.objects.get(earn_entry=entry)
    assert (lot.amount, lot.state) == (80, "active")
    assert lot.expires_at is not None
    assert Account.objects.get(member=member).lifetime_earned == 0
    assert OutboxEvent.objects.get().type == "points.adjusted"


def test_a_negative_adjustment_takes_fifo(member, operator):
    soon = services.earn(member=member, points=50, expires_at=at("2030-01-01 00:00")).lot
    late = services.earn(member=member, points=50, expires_at=at("2031-01-01 00:00")).lot

    entry = services.adjust(member=member, points=-60, reason="fraud", operator=operator)

    assert (entry.amount, entry.balance_after) == (-60, 40)
    assert remaining(soon, late) == [0, 40]


def test_a_negative_adjustment_may_not_go_below_the_limit(member, operator):
    services.earn(member=member, points=50)

    with pytest.raises(InsufficientPoints):
        services.adjust(member=member, points=-51, reason="fraud", operator=operator)

    assert available(member) == 50


def test_a_negative_adjustment_may_use_the_credit_limit_and_earning_pays_it_back(
    member, operator, configure
):
    configure(negative_balance_limit=100)
    services.earn(member=member, points=50)

    services.adjust(member=member, points=-120, reason="clawback", operator=operator)
    assert available(member) == -70

    result = services.earn(member=member, points=100)

    assert available(member) == 30
    assert (result.lot.amount, result.lot.remaining) == (100, 30)
    assert Allocation.objects.get(entry=result.entry).points == -70


def test_an_adjustment_needs_a_reason_and_a_non_zero_amount(member, operator):
    with pytest.raises(InvalidLedgerRequest):
        services.adjust(member=member, points=10, reason="  ", operator=operator)
    with pytest.raises(InvalidPoints):
        services.adjust(member=member, points=0, reason="x", operator=operator)


def test_operators_can_adjust_a_frozen_member(member, operator):
    member.status = member.Status.FROZEN
    member.save()

    services.adjust(member=member, points=10, reason="correction", operator=operator)
    services.adjust(member=member, points=-5, reason="correction", operator=operator)

    assert available(member) == 5
