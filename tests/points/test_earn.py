"""earn and record_purchase: lots, pending points, orders, and the one-statement hot path."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from members.exceptions import MemberClosed, MemberFrozen
from points import services
from points.exceptions import (
    DuplicateReference,
    InvalidLedgerRequest,
    InvalidPoints,
    ReferenceOfAnotherMember,
)
from points.models import Account, Entry, Lot, Order, OutboxEvent
from points.selectors import member_points_summary
from tests.factories import MemberFactory
from tests.points.conftest import at

pytestmark = pytest.mark.django_db


def purchase(member, partner, reference="o-1", amount="100.00", points=100, **extra):
    return services.record_purchase(
        member=member,
        partner=partner,
        reference=reference,
        amount=Decimal(amount),
        currency="CNY",
        paid_with_points=Decimal(extra.pop("paid_with_points", "0")),
        points=points,
        **extra,
    )


def test_earn_credits_available_points_as_a_new_lot(member, partner):
    # given a member without an account yet

    # when
    result = services.earn(member=member, points=120, partner=partner, reference="r-9", memo="hi")

    # then
    account = Account.objects.get(member=member)
    assert (account.available, account.pending, account.lifetime_earned) == (120, 0, 120)
    assert result.entry.kind == "earn"
    assert (result.entry.amount, result.entry.available_delta, result.entry.pending_delta) == (
        120,
        120,
        0,
    )
    assert result.entry.balance_after == 120
    assert result.entry.partner_id == partner.pk
    assert (result.entry.reference, result.entry.memo) == ("r-9", "hi")
    assert result.entry.created_at is not None
    assert (result.lot.amount, result.lot.remaining, result.lot.state) == (120, 120, "active")
    assert result.lot.earn_entry_id == result.entry.pk
    assert Lot.objects.get(pk=result.lot.pk).remaining == 120


def test_earn_returns_the_rows_as_stored(member, partner):
    result = services.earn(
        member=member, points=5, partner=partner, source_type="rule", source_id=7
    )

    stored = Entry.objects.get(pk=result.entry.pk)
    assert [getattr(stored, f.attname) for f in Entry._meta.concrete_fields] == [
        getattr(result.entry, f.attname) for f in Entry._meta.concrete_fields
    ]
    assert (stored.source_type, stored.source_id) == ("rule", "7")


def test_earn_records_its_event_in_the_outbox(member, partner):
    result = services.earn(member=member, points=30, partner=partner, reference="r-1")

    event = OutboxEvent.objects.get()
    assert event.type == "points.earned"
    assert event.member_external_id == "u-1001"
    assert event.published_at is None
    assert event.payload["entry_id"] == result.entry.pk
    assert event.payload["points"] == 30
    assert event.payload["available"] == 30
    assert event.payload["reference"] == "r-1"


@override_settings(PROGRAMME_CACHE_SECONDS=3600)
def test_earn_is_one_sql_statement(member, partner, django_assert_num_queries):
    services.earn(member=member, points=1, partner=partner)  # the settings copy is warm now

    with django_assert_num_queries(1):
        services.earn(member=member, points=10, partner=partner, reference="r-2")

    assert Account.objects.get(member=member).available == 11


def test_earn_with_a_future_available_at_is_pending(member):
    release = timezone.now() + timedelta(days=7)

    result = services.earn(member=member, points=40, available_at=release)

    account = Account.objects.get(member=member)
    assert (account.available, account.pending) == (0, 40)
    assert (result.entry.available_delta, result.entry.pending_delta) == (0, 40)
    assert result.entry.available_at == release
    assert (result.lot.state, result.lot.available_at) == ("pending", release)
    assert member_points_summary(member=member)["pending"] == 40


def test_earn_with_a_past_available_at_is_available_at_once(member):
    result = services.earn(member=member, points=40, available_at=timezone.now() - timedelta(1))

    assert result.lot.state == "active"
    assert result.entry.available_at is None
    assert Account.objects.get(member=member).available == 40


def test_earn_takes_an_explicit_expiry_date(member):
    moment = at("2030-01-01 12:00")

    result = services.earn(member=member, points=1, expires_at=moment)

    assert result.lot.expires_at == moment


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True, None])
def test_earn_refuses_points_that_are_not_a_positive_whole_number(member, points):
    with pytest.raises(InvalidPoints) as raised:
        services.earn(member=member, points=points)

    assert raised.value.code == "validation_error"
    assert not Entry.objects.exists()


def test_a_frozen_member_earns_nothing_and_nothing_is_written(member):
    member.status = member.Status.FROZEN
    member.save()

    with pytest.raises(MemberFrozen) as raised:
        services.earn(member=member, points=10)

    assert raised.value.code == "member_frozen"
    assert not Entry.objects.exists()
    assert not Account.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_member_frozen_after_being_loaded_earns_nothing(member):
    # The service reads the status in its own statement, not from the caller's object.
    type(member).objects.filter(pk=member.pk).update(status="frozen")

    with pytest.raises(MemberFrozen):
        services.earn(member=member, points=10)

    assert not Entry.objects.exists()


def test_a_closed_member_earns_nothing(member):
    member.status = member.Status.CLOSED
    member.save()

    with pytest.raises(MemberClosed):
        services.earn(member=member, points=10)


def test_earn_with_an_order_makes_it_that_orders_earn(member, partner):
    order = purchase(member, partner, points=0).order

    result = services.earn(member=member, points=25, order=order)

    order.refresh_from_db()
    assert (order.earn_entry_id, order.points_earned) == (result.entry.pk, 25)
    # Refused after the points were written: the enclosing transaction must roll back.
    with pytest.raises(DuplicateReference), transaction.atomic():
        services.earn(member=member, points=5, order=order)
    assert Entry.objects.count() == 1


def test_purchase_records_the_order_and_its_points(member, partner):
    result = purchase(member, partner, reference="o-7", amount="256.00", points=256)

    order = Order.objects.get(reference="o-7")
    assert result.order == order
    assert (order.amount, order.currency, order.points_earned) == (Decimal("256.00"), "CNY", 256)
    assert order.partner == partner
    assert order.earn_entry_id == result.earn.entry.pk
    assert order.account == Account.objects.get(member=member)
    assert result.earn.entry.reference == "o-7"
    assert Account.objects.get(member=member).available == 256


@override_settings(PROGRAMME_CACHE_SECONDS=3600)
def test_purchase_is_one_sql_statement(member, partner, django_assert_num_queries):
    purchase(member, partner, reference="warm-up")

    with django_assert_num_queries(1):
        purchase(member, partner, reference="o-8")


def test_a_purchase_that_earns_nothing_is_still_an_order(member, partner):
    result = purchase(member, partner, amount="0.50", points=0)

    assert result.earn is None
    assert Order.objects.get().earn_entry_id is None
    assert not Entry.objects.exists()
    assert Account.objects.get(member=member).available == 0


def test_the_same_reference_twice_for_a_partner_is_refused_and_writes_nothing(member, partner):
    purchase(member, partner, reference="o-1", points=100)

    with pytest.raises(DuplicateReference) as raised:
        purchase(member, partner, reference="o-1", points=100)

    assert raised.value.code == "validation_error"
    assert Entry.objects.count() == 1
    assert Account.objects.get(member=member).available == 100


def test_the_same_reference_at_another_partner_is_another_order(member, partner):
    from tests.factories import PartnerFactory

    purchase(member, partner, reference="o-1")
    purchase(member, PartnerFactory(name="Shop"), reference="o-1")

    assert Order.objects.count() == 2


def test_purchase_points_are_pending_for_the_programmes_return_window(member, partner, configure):
    configure(pending_days=14)
    occurred = timezone.now() - timedelta(days=1)

    result = purchase(member, partner, points=80, occurred_at=occurred)

    assert result.earn.lot.state == "pending"
    assert result.earn.lot.available_at == occurred + timedelta(days=14)
    assert Account.objects.get(member=member).pending == 80


def test_an_old_purchase_past_its_return_window_is_available_at_once(member, partner, configure):
    configure(pending_days=14)

    result = purchase(member, partner, points=80, occurred_at=timezone.now() - timedelta(30))

    assert result.earn.lot.state == "active"


def test_a_purchase_completes_the_order_a_point_payment_created_first(member, partner):
    services.earn(member=member, points=500)
    services.spend(member=member, points=500, partner=partner, reference="o-9")

    result = purchase(
        member, partner, reference="o-9", amount="100.00", points=95, paid_with_points="5.00"
    )

    order = Order.objects.get(reference="o-9")
    assert result.order.pk == order.pk
    assert (order.amount, order.paid_with_points, order.points_earned) == (
        Decimal("100.00"),
        Decimal("5.00"),
        95,
    )
    assert order.spend_entry_id is not None
    assert order.points_spent == 500


def test_a_reference_of_another_members_payment_is_refused(member, other_member, partner):
    services.earn(member=other_member, points=100)
    services.spend(member=other_member, points=100, partner=partner, reference="o-9")

    with pytest.raises(ReferenceOfAnotherMember):
        purchase(member, partner, reference="o-9")

    assert not Entry.objects.filter(account__member=member).exists()


@pytest.mark.parametrize(
    ("amount", "paid_with_points", "reference"),
    [("-1.00", "0", "o-1"), ("10.00", "11.00", "o-1"), ("10.00", "0", "")],
)
def test_purchase_validates_its_amounts_and_reference(
    member, partner, amount, paid_with_points, reference
):
    with pytest.raises(InvalidLedgerRequest):
        purchase(
            member, partner, reference=reference, amount=amount, paid_with_points=paid_with_points
        )


def test_accounts_are_created_once_per_member_even_when_asked_twice(member):
    first = services.account_for_member(member=member)
    second = services.account_for_member(member=member)

    assert first.pk == second.pk
    assert Account.objects.count() == 1


def test_a_new_account_copies_the_programmes_negative_balance_limit(configure):
    configure(negative_balance_limit=300)

    account = services.account_for_member(member=MemberFactory())

    assert account.credit_limit == 300
