"""32 workers earning and spending on ONE account at once: exact totals, no deadlock."""

from __future__ import annotations

import random
from collections import Counter

from points import services
from points.exceptions import InsufficientPoints
from points.models import Account, Entry
from points.services import check_ledger_invariants
from tests.concurrency.conftest import TRANSACTIONAL
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import MemberFactory, OperatorFactory

pytestmark = TRANSACTIONAL

WORKERS = 32
OPERATIONS_PER_WORKER = 12
CREDIT_LIMIT = 200
OPENING_BALANCE = 300


def mixed_operations(member, operator, seed: int) -> tuple[list[tuple[str, int]], int]:
    """A worker's random mix of writes; returns ([(entry kind, available change)] of each write
    that succeeded, number of writes refused for lack of points)."""
    rng = random.Random(seed)
    done: list[tuple[str, int]] = []
    refused = 0
    redemptions = []
    for step in range(OPERATIONS_PER_WORKER):
        action = rng.choice(["earn", "spend", "adjust", "redeem", "give_back", "give_back"])
        points = rng.randint(1, 60)
        try:
            if action == "earn":
                services.earn(member=member, points=points)
                done.append(("earn", points))
            elif action == "spend":
                services.spend(member=member, points=points)
                done.append(("spend", -points))
            elif action == "adjust":
                signed = points if rng.random() < 0.4 else -points
                services.adjust(member=member, points=signed, reason="race", operator=operator)
                done.append(("adjust", signed))
            elif action == "redeem":
                entry = services.take_for_redemption(
                    member=member, points=points, redemption_id=f"r-{seed}-{step}"
                )
                redemptions.append(entry)
                done.append(("redeem", -points))
            elif redemptions:
                entry = redemptions.pop(rng.randrange(len(redemptions)))
                services.give_back_redemption(entry=entry)
                done.append(("reverse", -entry.amount))
        except InsufficientPoints:
            refused += 1
    return done, refused


def test_32_workers_on_one_account_leave_the_exact_balance_within_the_credit_limit(configure):
    configure(negative_balance_limit=CREDIT_LIMIT)
    member = MemberFactory()
    operator = OperatorFactory()
    services.earn(member=member, points=OPENING_BALANCE)

    outcomes = run_concurrently(
        *[(lambda seed=seed: mixed_operations(member, operator, seed)) for seed in range(WORKERS)]
    )

    assert unexpected(outcomes) == []
    done = [write for outcome in outcomes for write in outcome.value[0]]
    refused = sum(outcome.value[1] for outcome in outcomes)
    account = Account.objects.get(member=member)
    assert account.available == OPENING_BALANCE + sum(change for _kind, change in done)
    assert account.pending == 0
    assert account.available >= -CREDIT_LIMIT

    # One entry per successful write, nothing lost and nothing doubled.
    expected_kinds = Counter(kind for kind, _change in done) + Counter({"earn": 1})
    assert Counter(Entry.objects.filter(account=account).values_list("kind", flat=True)) == (
        expected_kinds
    )
    # Every entry saw the balance left by the one before it: the writes were serialised.
    running = 0
    for delta, balance_after in (
        Entry.objects.filter(account=account)
        .order_by("id")
        .values_list("available_delta", "balance_after")
    ):
        running += delta
        assert balance_after == running
        assert balance_after >= -CREDIT_LIMIT
    spent = -sum(change for kind, change in done if kind in {"spend", "redeem", "reverse"})
    assert account.lifetime_spent == spent
    # The mix reached the limit (writes were refused) and used every kind of write.
    assert refused > 0
    assert set(expected_kinds) == {"earn", "spend", "adjust", "redeem", "reverse"}
    assert check_ledger_invariants() == []
