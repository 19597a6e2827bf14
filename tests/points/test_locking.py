"""Locks are really taken before writes; races end in one clean outcome (real threads)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from members.models import Tier
from points import services
from points.exceptions import DuplicateReference
from points.models import Account, Entry, Lot, Order
from tests.points.conftest import at

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _entry_tier(transactional_db):
    # Transactional tests empty every table afterwards, data migrations' rows included.
    Tier.objects.get_or_create(rank=0, defaults={"code": "member", "name": "Member"})


class AccountLockHolder(threading.Thread):
    """Holds the row lock of an account in another connection until `release` is set."""

    def __init__(self, account_id: int) -> None:
        super().__init__(daemon=True)
        self.account_id = account_id
        self.locked = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=self.account_id)
                self.locked.set()
                self.release.wait(10)
        finally:
            connections.close_all()


def in_thread(function) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = function()
        except Exception as error:  # reported to the test through `outcome`
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_spend_waits_for_the_account_lock_before_writing(member, partner):
    services.earn(member=member, points=100)
    holder = AccountLockHolder(Account.objects.get(member=member).pk)
    holder.start()
    assert holder.locked.wait(5)

    spender, outcome = in_thread(lambda: services.spend(member=member, points=60))
    time.sleep(0.5)

    assert spender.is_alive()  # blocked on the lock: nothing was written yet
    assert not Entry.objects.filter(kind="spend").exists()
    holder.release.set()
    spender.join(10)
    assert "error" not in outcome
    assert Account.objects.get(member=member).available == 40


def test_earn_waits_for_the_account_lock_too(member):
    services.earn(member=member, points=1)
    holder = AccountLockHolder(Account.objects.get(member=member).pk)
    holder.start()
    assert holder.locked.wait(5)

    earner, outcome = in_thread(lambda: services.earn(member=member, points=10))
    time.sleep(0.5)

    assert earner.is_alive()
    holder.release.set()
    earner.join(10)
    assert "error" not in outcome
    assert Account.objects.get(member=member).available == 11


def test_outside_a_transaction_earn_commits_its_one_statement(member):
    assert not connection.in_atomic_block

    result = services.earn(member=member, points=10)

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT available FROM points_account WHERE member_id = %s", [member.pk])
        assert cursor.fetchone() == (10,)
    assert Lot.objects.get().pk == result.lot.pk


def test_a_purchase_racing_another_with_the_same_reference_writes_nothing(member, partner):
    """The second purchase passes its check before the first commits; its statement then
    finds the order taken and fails as a whole, even in autocommit."""
    first_written = threading.Event()
    finish_first = threading.Event()

    def first_purchase():
        with transaction.atomic():
            services.record_purchase(
                member=member,
                partner=partner,
                reference="o-1",
                amount=Decimal("10"),
                currency="CNY",
                points=10,
            )
            first_written.set()
            finish_first.wait(10)

    first, first_outcome = in_thread(first_purchase)
    assert first_written.wait(5)
    second, second_outcome = in_thread(
        lambda: services.record_purchase(
            member=member,
            partner=partner,
            reference="o-1",
            amount=Decimal("10"),
            currency="CNY",
            points=10,
        )
    )
    time.sleep(0.5)
    assert second.is_alive()  # waiting on the first's uncommitted order row
    finish_first.set()
    first.join(10)
    second.join(10)

    assert "error" not in first_outcome
    assert isinstance(second_outcome.get("error"), DuplicateReference)
    assert Order.objects.count() == 1
    assert Entry.objects.count() == 1
    assert Account.objects.get(member=member).available == 10


def test_expiry_leaves_a_busy_account_for_a_later_pass_and_still_finishes(member, other_member):
    for someone in (member, other_member):
        services.earn(member=someone, points=10, expires_at=at("2030-01-01 00:00"))
    holder = AccountLockHolder(Account.objects.get(member=member).pk)
    holder.start()
    assert holder.locked.wait(5)
    threading.Timer(1.0, holder.release.set).start()

    run = services.run_expiry(as_of=at("2030-01-02 00:00"))

    assert run.lots == 2
    assert run.passes >= 2  # the locked account was skipped, then waited for
    assert set(Account.objects.values_list("available", flat=True)) == {0}


def test_concurrent_refunds_of_one_order_never_refund_more_than_it_cost(member, partner):
    services.record_purchase(
        member=member,
        partner=partner,
        reference="o-1",
        amount=Decimal("100.00"),
        currency="CNY",
        points=100,
    )
    barrier = threading.Barrier(4)

    def refund_40():
        barrier.wait(5)
        return services.refund_order(partner=partner, reference="o-1", amount=Decimal("40"))

    threads = [in_thread(refund_40) for _ in range(4)]
    for thread, _outcome in threads:
        thread.join(15)

    succeeded = [outcome for _thread, outcome in threads if "result" in outcome]
    assert len(succeeded) == 2
    order = Order.objects.get()
    assert (order.refunded_amount, order.points_reversed) == (Decimal("80.00"), 80)
    assert Account.objects.get(member=member).available == 20
