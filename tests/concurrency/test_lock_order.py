"""Lock order: every balance change locks the account row (then the order row) before it writes,
holds it to the end of its transaction, and locks nothing else a member or a job would wait on.

In the style of Saleor's `assert_locks_rows_before_write` (the captured SQL) and of Django's
select_for_update tests (a second connection with a short lock_timeout, from another thread).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from points import services
from points.models import Account, Lot, Order
from points.services import check_ledger_invariants
from tests.concurrency.conftest import TRANSACTIONAL
from tests.concurrency.threads import HeldOpen
from tests.factories import MemberFactory, OperatorFactory, PartnerFactory

LOCK_NOT_AVAILABLE = "55P03"
WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(points_\w+)\"?", re.I)
ROW_LOCK = re.compile(r"\bFOR\s+UPDATE\s+OF\s+\"?(\w+)\"?", re.I)


class Ledger:
    """One member with points, a redemption to give back, a purchase and a point payment."""

    def __init__(self) -> None:
        self.member = MemberFactory()
        self.partner = PartnerFactory()
        self.operator = OperatorFactory()
        services.earn(member=self.member, points=1000)
        self.redemption = services.take_for_redemption(
            member=self.member, points=50, redemption_id="r-1"
        )
        services.record_purchase(
            member=self.member,
            partner=self.partner,
            reference="o-1",
            amount=Decimal("100.00"),
            currency="CNY",
            points=100,
        )
        self.account = Account.objects.get(member=self.member)
        self.order = Order.objects.get(reference="o-1")

    def writes(self) -> dict[str, Callable[[], object]]:
        """Every service that changes this account's balance, ready to run once."""
        member, partner = self.member, self.partner
        return {
            "earn": lambda: services.earn(member=member, points=5),
            "record_purchase": lambda: services.record_purchase(
                member=member,
                partner=partner,
                reference="o-2",
                amount=Decimal("7.00"),
                currency="CNY",
                points=7,
            ),
            "spend": lambda: services.spend(member=member, points=10, reference="pay-1"),
            "take_for_redemption": lambda: services.take_for_redemption(
                member=member, points=10, redemption_id="r-2"
            ),
            "give_back_redemption": lambda: services.give_back_redemption(entry=self.redemption),
            "adjust_down": lambda: services.adjust(
                member=member, points=-3, reason="fix", operator=self.operator
            ),
            "adjust_up": lambda: services.adjust(
                member=member, points=3, reason="fix", operator=self.operator
            ),
            "refund_order": lambda: services.refund_order(
                partner=partner, reference="o-1", amount=Decimal("10.00")
            ),
        }


@contextlib.contextmanager
def statements_run() -> Iterator[list[str]]:
    """The SQL of every statement this connection runs inside the block, whatever the cursor."""
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield statements


def locks_and_writes(statements: list[str]) -> list[tuple[str, str]]:
    """[("lock" | "insert" | "update" | "delete", table)] in the order the statements ran (and
    the order they appear within a statement)."""
    events = []
    for sql in statements:
        found = [(m.start(), "lock", m.group(1)) for m in ROW_LOCK.finditer(sql)]
        found += [
            (m.start(), m.group(1).split()[0].lower(), m.group(2)) for m in WRITE.finditer(sql)
        ]
        events += [(what, table) for _at, what, table in sorted(found)]
    return events


@pytest.mark.django_db
@pytest.mark.parametrize(
    "service",
    [
        "earn",
        "record_purchase",
        "spend",
        "take_for_redemption",
        "give_back_redemption",
        "adjust_down",
        "adjust_up",
        "refund_order",
    ],
)
def test_every_balance_change_locks_the_account_row_before_it_writes(service):
    ledger = Ledger()

    with statements_run() as statements:
        ledger.writes()[service]()

    events = locks_and_writes(statements)
    # Creating a point payment's order row (INSERT ... ON CONFLICT DO NOTHING) changes nothing
    # that exists; every other write changes the ledger.
    writes = [
        index
        for index, (what, table) in enumerate(events)
        if what != "lock" and (what, table) != ("insert", "points_order")
    ]
    assert writes, events
    first_write = writes[0]
    # Either an explicit SELECT ... FOR UPDATE OF the account, or the statement's first write is
    # the account row itself (INSERT ... ON CONFLICT DO UPDATE locks it before the rest).
    locked_first = ("lock", "points_account") in events[:first_write] or events[first_write] == (
        "insert",
        "points_account",
    )
    assert locked_first, events
    order_locks = [i for i, event in enumerate(events) if event == ("lock", "points_order")]
    if order_locks:
        # The fixed order: account rows, then the order row, then the writes.
        assert events.index(("lock", "points_account")) < order_locks[0] < first_write, events
    assert {table for what, table in events if what == "lock"} <= {
        "points_account",
        "points_order",
    }, events


def lock_is_held(sql: str, params: list) -> bool:
    """True when this connection cannot take the row lock of `sql` within 200 ms."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
            cursor.execute(sql, params)
    except OperationalError as error:
        assert getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE, error
        return True
    return False


def account_locked(account_id: int) -> bool:
    return lock_is_held("SELECT id FROM points_account WHERE id = %s FOR UPDATE", [account_id])


@TRANSACTIONAL
def test_a_second_connection_waits_for_the_account_row_while_a_service_holds_it():
    ledger = Ledger()
    bystander = MemberFactory()
    services.earn(member=bystander, points=10)
    bystander_account = Account.objects.get(member=bystander)

    for name, write in ledger.writes().items():
        assert not account_locked(ledger.account.pk), name
        with HeldOpen(write):
            assert account_locked(ledger.account.pk), f"{name} does not hold the account row"
            # Only that account: another member's account and the member's own row stay free.
            assert not account_locked(bystander_account.pk), name
            assert not lock_is_held(
                "SELECT id FROM members_member WHERE id = %s FOR UPDATE", [ledger.member.pk]
            ), f"{name} locks the member row"
            if name == "refund_order":
                assert lock_is_held(
                    "SELECT id FROM points_order WHERE id = %s FOR UPDATE", [ledger.order.pk]
                )
        assert not account_locked(ledger.account.pk), name
    assert check_ledger_invariants() == []


@TRANSACTIONAL
def test_the_expiry_job_goes_on_with_other_accounts_while_one_is_busy_then_waits_for_it():
    now = timezone.now()
    due, as_of = now + timedelta(days=1), now + timedelta(days=2)
    busy, other = MemberFactory(), MemberFactory()
    busy_lot = services.earn(member=busy, points=100, expires_at=due).lot
    other_lot = services.earn(member=other, points=100, expires_at=due).lot
    runs = []
    job = threading.Thread(
        target=lambda: (runs.append(services.run_expiry(as_of=as_of)), connections.close_all()),
        daemon=True,
    )

    with HeldOpen(lambda: services.spend(member=busy, points=30)):
        job.start()
        deadline = time.monotonic() + 10
        while Lot.objects.get(pk=other_lot.pk).state != "expired":
            assert time.monotonic() < deadline, "the job stopped at the busy account"
            time.sleep(0.02)
        assert Lot.objects.get(pk=busy_lot.pk).state == "active"
        assert job.is_alive()  # its last pass waits for the busy account

    job.join(30)
    assert not job.is_alive()
    [run] = runs
    assert (run.lots, run.points) == (2, 70 + 100)
    assert Account.objects.get(member=busy).available == 0
    assert check_ledger_invariants() == []
