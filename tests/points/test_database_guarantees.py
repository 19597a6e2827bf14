"""The database itself refuses bad ledger writes: triggers and constraints, not only Python."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError

from points import services
from points.models import Account, Allocation, Entry, Lot, Order

pytestmark = pytest.mark.django_db


def raw(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def earned(member, partner):
    return services.earn(member=member, points=100, partner=partner, reference="r-1")


def test_database_refuses_a_raw_update_of_a_ledger_entry(earned):
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        raw("UPDATE points_entry SET amount = 1000 WHERE id = %s", [earned.entry.pk])

    assert Entry.objects.get(pk=earned.entry.pk).amount == 100


def test_database_refuses_a_raw_delete_of_a_ledger_entry(earned):
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        raw("DELETE FROM points_entry WHERE id = %s", [earned.entry.pk])

    assert Entry.objects.filter(pk=earned.entry.pk).exists()


def test_orm_update_and_delete_of_entries_are_refused_too(earned):
    with pytest.raises(DatabaseError), transaction.atomic():
        Entry.objects.filter(pk=earned.entry.pk).update(memo="edited")
    with pytest.raises(DatabaseError), transaction.atomic():
        Entry.objects.filter(pk=earned.entry.pk).delete()

    assert Entry.objects.get(pk=earned.entry.pk).memo == ""


def test_database_refuses_truncate_of_the_entry_table(earned):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        # Only the test database allows TRUNCATE (tests/conftest.py); production never does.
        raw("SET LOCAL loyalty.allow_ledger_truncate = off")
        raw("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE waits for no deferred FK checks
        raw("TRUNCATE points_entry CASCADE")

    assert Entry.objects.count() == 1


def test_database_refuses_changing_or_deleting_allocations(member, partner, earned):
    spent = services.spend(member=member, points=40, partner=partner)
    allocation = Allocation.objects.get(entry=spent.entry)

    with pytest.raises(DatabaseError), transaction.atomic():
        raw("UPDATE points_allocation SET points = -1 WHERE id = %s", [allocation.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        raw("DELETE FROM points_allocation WHERE id = %s", [allocation.pk])

    assert Allocation.objects.get(pk=allocation.pk).points == -40


def test_deleting_an_account_with_points_is_refused(member, earned):
    with pytest.raises(ProtectedError):
        Account.objects.filter(member=member).delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        raw("SET CONSTRAINTS ALL IMMEDIATE")
        raw("DELETE FROM points_account WHERE member_id = %s", [member.pk])


def test_available_balance_cannot_go_below_the_credit_limit(member, earned):
    account = Account.objects.get(member=member)

    with (
        pytest.raises(IntegrityError, match="account_available_within_credit_limit"),
        transaction.atomic(),
    ):
        Account.objects.filter(pk=account.pk).update(available=-1)

    Account.objects.filter(pk=account.pk).update(credit_limit=50)
    with (
        pytest.raises(IntegrityError, match="account_available_within_credit_limit"),
        transaction.atomic(),
    ):
        Account.objects.filter(pk=account.pk).update(available=-51)
    Account.objects.filter(pk=account.pk).update(credit_limit=0)


def test_pending_balance_cannot_go_negative(member, earned):
    with pytest.raises(IntegrityError, match="account_pending_not_negative"), transaction.atomic():
        Account.objects.filter(member=member).update(pending=-1)


@pytest.mark.parametrize(
    ("remaining", "constraint"),
    [(-1, "lot_remaining_within_amount"), (101, "lot_remaining_within_amount")],
)
def test_lot_remaining_stays_between_zero_and_its_amount(earned, remaining, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        raw("UPDATE points_lot SET remaining = %s WHERE id = %s", [remaining, earned.lot.pk])


def test_an_expired_lot_holds_no_points(earned):
    with pytest.raises(IntegrityError, match="lot_expired_is_empty"), transaction.atomic():
        Lot.objects.filter(pk=earned.lot.pk).update(state=Lot.State.EXPIRED)


def test_an_entry_amount_is_the_sum_of_its_balance_changes(earned):
    with pytest.raises(IntegrityError, match="entry_amount_is_sum_of_deltas"), transaction.atomic():
        Entry.objects.create(
            account_id=earned.entry.account_id,
            kind=Entry.Kind.ADJUST,
            amount=10,
            available_delta=5,
            pending_delta=0,
            balance_after=105,
        )


def test_a_reference_is_unique_per_partner_even_without_a_partner(member, partner, earned):
    account = Account.objects.get(member=member)
    Order.objects.create(partner=partner, reference="o-1", account=account)
    Order.objects.create(partner=None, reference="o-1", account=account)

    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(partner=partner, reference="o-1", account=account)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(partner=None, reference="o-1", account=account)


def test_a_redemption_can_be_given_back_only_once_even_bypassing_the_service(member, earned):
    taken = services.take_for_redemption(member=member, points=10, redemption_id=1)
    services.give_back_redemption(entry=taken)

    with (
        pytest.raises(IntegrityError, match="entry_redemption_given_back_once"),
        transaction.atomic(),
    ):
        Entry.objects.create(
            account_id=taken.account_id,
            kind=Entry.Kind.REVERSE,
            amount=0,
            balance_after=0,
            source_type="redemption",
            related_entry=taken,
        )
