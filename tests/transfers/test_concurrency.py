"""Transfers and conversions under concurrent calls: exact totals, no deadlock, clean ledger.

Real threads, each with its own connection, against real PostgreSQL (`transaction=True`):
`run_concurrently` fails a test whose threads are still waiting after its timeout (a deadlock
for the user). tests/conftest.py checks the ledger invariant after every test as well.
"""

from __future__ import annotations

import itertools
from collections import Counter

from rest_framework.test import APIClient

from loyalty_site.api.keys import create_partner_key
from points import services
from points.exceptions import DailyLimitExceeded, InsufficientPoints
from points.models import Account, Conversion, Entry, ExchangePartner, Transfer
from points.services import check_ledger_invariants
from tests.concurrency.conftest import TRANSACTIONAL
from tests.concurrency.test_lock_order import locks_and_writes, statements_run
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import ExchangePartnerFactory, MemberFactory

pytestmark = TRANSACTIONAL

START = 10_000
ROUNDS = 8


def balances(members) -> list[int]:
    by_member = dict(Account.objects.values_list("member_id", "available"))
    return [by_member.get(member.pk, 0) for member in members]


def test_sixteen_threads_transfer_both_ways_and_convert_and_every_point_adds_up(limits):
    # given: four members with 10,000 points each, no daily limits, a 10-points-per-mile partner
    limits(out=None, into=None)
    ExchangePartnerFactory(code="airline-x")
    members = [MemberFactory(external_id=f"u-{n}") for n in range(4)]
    for member in members:
        services.earn(member=member, points=START)
    # Twelve threads transfer along every pair in both directions (A->B while B->A), four more
    # convert out and in on the same accounts.
    pairs = list(itertools.permutations(range(4), 2))
    assert len(pairs) == 12

    def transfers(sender: int, recipient: int):
        return [
            services.transfer_points(
                sender=members[sender], recipient=members[recipient], points=1 + n * 7 % 50
            )
            for n in range(ROUNDS)
        ]

    def conversions(member: int):
        return [
            services.convert_points(
                member=members[member],
                programme_code="airline-x",
                direction="out" if n % 2 else "in",
                amount=100 + n if n % 2 else 3 + n,
            )
            for n in range(ROUNDS)
        ]

    # when
    outcomes = run_concurrently(
        *[lambda s=s, r=r: transfers(s, r) for s, r in pairs],
        *[lambda m=m: conversions(m) for m in range(4)],
    )

    # then: nothing failed, nothing deadlocked, and every balance is exactly what was done
    assert unexpected(outcomes) == []
    expected = [START] * 4
    for (sender, recipient), outcome in zip(pairs, outcomes[:12], strict=True):
        for result in outcome.value:
            expected[sender] -= result.transfer.points
            expected[recipient] += result.transfer.points
    for member, outcome in enumerate(outcomes[12:]):
        for result in outcome.value:
            sign = -1 if result.conversion.direction == "out" else 1
            expected[member] += sign * result.points
    assert balances(members) == expected
    assert Transfer.objects.count() == 12 * ROUNDS
    assert Conversion.objects.count() == 4 * ROUNDS
    assert Entry.objects.filter(kind="transfer").count() == 2 * 12 * ROUNDS
    assert Transfer.objects.filter(out_entry__isnull=True).count() == 0
    # Transfers move points between members and never create or destroy any.
    net_converted = sum(expected) - 4 * START
    assert net_converted == sum(
        (1 if c.direction == "in" else -1) * c.points for c in Conversion.objects.all()
    )
    assert check_ledger_invariants() == []


def test_sixteen_transfers_from_one_balance_give_exactly_what_it_holds(limits):
    limits(out=None, into=None)
    sender = MemberFactory()
    recipients = [MemberFactory() for _ in range(16)]
    services.earn(member=sender, points=1000)

    outcomes = run_concurrently(
        *[
            lambda r=r: services.transfer_points(sender=sender, recipient=r, points=100)
            for r in recipients
        ]
    )

    assert unexpected(outcomes, InsufficientPoints) == []
    assert sum(outcome.ok for outcome in outcomes) == 10
    assert balances([sender]) == [0]
    assert sum(balances(recipients)) == 1000
    assert check_ledger_invariants() == []


def test_concurrent_transfers_and_conversions_keep_to_the_daily_limits(limits):
    limits(out=500, into=None)
    sender, recipient = MemberFactory(), MemberFactory()
    services.earn(member=sender, points=5000)
    ExchangePartnerFactory(code="airline-x", daily_out_limit=300)

    outcomes = run_concurrently(
        *[
            lambda: services.transfer_points(sender=sender, recipient=recipient, points=100)
            for _ in range(8)
        ],
        *[
            lambda: services.convert_points(
                member=sender, programme_code="airline-x", direction="out", amount=100
            )
            for _ in range(8)
        ],
    )

    assert unexpected(outcomes, DailyLimitExceeded) == []
    kinds = Counter(type(outcome.value).__name__ for outcome in outcomes if outcome.ok)
    assert kinds == {"TransferResult": 5, "ConversionResult": 3}
    assert balances([sender, recipient]) == [5000 - 500 - 300, 500]
    assert check_ledger_invariants() == []


def test_concurrent_duplicates_of_one_idempotency_key_transfer_once(limits):
    limits(out=None, into=None)
    sender, recipient = MemberFactory(external_id="u-a"), MemberFactory(external_id="u-b")
    services.earn(member=sender, points=1000)
    ExchangePartnerFactory(code="airline-x")
    _api_key, plain_key = create_partner_key(partner_name="POS", scopes=["points:spend"])

    def post(path: str, body: dict, key: str):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
        response = client.post(f"/api/v1/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        return response.status_code, response.headers.get("Idempotent-Replayed")

    outcomes = run_concurrently(
        *[
            lambda: post(
                "members/u-a/points/transfer", {"to": "u-b", "points": 100}, "same-transfer"
            )
            for _ in range(8)
        ],
        *[
            lambda: post(
                "members/u-a/points/convert",
                {"programme": "airline-x", "direction": "out", "amount": 100},
                "same-convert",
            )
            for _ in range(8)
        ],
    )

    assert unexpected(outcomes) == []
    answers = [outcome.value for outcome in outcomes]
    for group in (answers[:8], answers[8:]):
        assert [answer for answer in group if answer == (201, None)] == [(201, None)]
        assert {status for status, _replayed in group} <= {201, 409}
    assert Transfer.objects.count() == Conversion.objects.count() == 1
    assert balances([sender, recipient]) == [800, 100]
    assert ExchangePartner.objects.count() == 1
    assert check_ledger_invariants() == []


def test_a_transfer_locks_both_accounts_in_id_order_before_it_writes(limits):
    limits(out=None, into=None)
    first, second = MemberFactory(), MemberFactory()
    for member in (first, second):
        services.earn(member=member, points=100)
    # The higher account id gives to the lower one: the lock still takes the lower id first.
    sender, recipient = sorted([first, second], key=lambda m: -m.account.pk)

    with statements_run() as statements:
        services.transfer_points(sender=sender, recipient=recipient, points=10)

    events = locks_and_writes(statements)
    writes = [index for index, (what, _table) in enumerate(events) if what != "lock"]
    assert events[: writes[0]] == [("lock", "points_account")], events
    lock_sql = next(sql for sql in statements if "FOR UPDATE" in sql)
    assert 'ORDER BY "points_account"."id" ASC' in lock_sql, lock_sql
