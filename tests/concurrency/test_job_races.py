"""The batch jobs racing members' writes over the same lots: no point both spent and expired,
no pending point spent before its release."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db.models import Sum
from django.utils import timezone

from points import services
from points.exceptions import InsufficientPoints
from points.models import Account, Allocation, Lot
from points.services import check_ledger_invariants
from tests.concurrency.conftest import TRANSACTIONAL
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import MemberFactory

pytestmark = TRANSACTIONAL

ROUNDS = 6
MEMBERS_PER_ROUND = 4
PAYMENT_GAP = 0.005


def pay_after(delay: float, **spend):
    time.sleep(delay)
    return services.spend(**spend)


def taken_from(lot: Lot, kind: str) -> int:
    """Points the entries of `kind` took from `lot` (these tests give nothing back)."""
    total = Allocation.objects.filter(lot=lot, entry__kind=kind).aggregate(total=Sum("points"))
    return -(total["total"] or 0)


def test_a_spend_racing_the_expiry_job_never_spends_an_expired_point():
    now = timezone.now()
    due, later, as_of = now + timedelta(days=1), now + timedelta(days=60), now + timedelta(days=2)

    for _round in range(ROUNDS):
        members = [MemberFactory() for _ in range(MEMBERS_PER_ROUND)]
        for member in members:
            for _lot in range(3):
                services.earn(member=member, points=100, expires_at=due)
            services.earn(member=member, points=100, expires_at=later)

        # Two expiry runs at once (an overlapping schedule) and one 250-point payment per member,
        # the payments a few milliseconds apart so that the runs reach some accounts first.
        outcomes = run_concurrently(
            *[(lambda: services.run_expiry(as_of=as_of, batch_size=1)) for _ in range(2)],
            *[
                (lambda m=member, n=n: pay_after(n * PAYMENT_GAP, member=m, points=250))
                for n, member in enumerate(members)
            ],
        )

        assert unexpected(outcomes, InsufficientPoints) == []
        expiry_runs, spends = outcomes[:2], outcomes[2:]
        assert services.expire_lots(as_of=as_of) == 0  # the racing runs left nothing due
        # A payment that came first used up two of the due lots: one lot left to expire, not 3.
        expected_lots = sum(1 if spend.ok else 3 for spend in spends)
        assert sum(run.value.lots for run in expiry_runs) == expected_lots
        for member, spend in zip(members, spends, strict=True):
            account = Account.objects.get(member=member)
            lots = list(Lot.objects.filter(account=account).order_by("expires_at", "id"))
            spent = sum(taken_from(lot, "spend") for lot in lots)
            expired = sum(taken_from(lot, "expire") for lot in lots)
            # Whoever won, the member keeps exactly the lot that was not due.
            assert account.available == 100
            assert (spent, expired) == ((250, 50) if spend.ok else (0, 300))
            assert account.lifetime_expired == expired
            for lot in lots[:3]:
                # A lot used up by the payment stays active with nothing left to expire.
                expired_here = taken_from(lot, "expire")
                assert (lot.state, lot.remaining) == ("expired" if expired_here else "active", 0)
                assert taken_from(lot, "spend") + expired_here == lot.amount
                assert Allocation.objects.filter(lot=lot, entry__kind="expire").count() <= 1
            assert (lots[3].state, lots[3].remaining) == ("active", 100)
        assert check_ledger_invariants() == []


def test_a_spend_racing_the_release_job_uses_pending_points_only_once_released():
    now = timezone.now()
    release_at, as_of = now + timedelta(hours=1), now + timedelta(hours=2)

    for _round in range(ROUNDS):
        members = [MemberFactory() for _ in range(MEMBERS_PER_ROUND)]
        for member in members:
            services.earn(member=member, points=100)
            for _lot in range(2):
                services.earn(member=member, points=100, available_at=release_at)

        outcomes = run_concurrently(
            lambda: services.run_release(as_of=as_of, batch_size=1),
            *[
                (lambda m=member, n=n: pay_after(n * PAYMENT_GAP, member=m, points=250))
                for n, member in enumerate(members)
            ],
        )

        assert unexpected(outcomes, InsufficientPoints) == []
        assert outcomes[0].value.lots == MEMBERS_PER_ROUND * 2
        assert services.release_pending_points(as_of=as_of) == 0
        for member, spend in zip(members, outcomes[1:], strict=True):
            account = Account.objects.get(member=member)
            # Paid only after the release made 300 available; refused while 200 were pending.
            assert (account.available, account.pending) == ((50, 0) if spend.ok else (300, 0))
            assert set(Lot.objects.filter(account=account).values_list("state", flat=True)) == {
                "active"
            }
        assert check_ledger_invariants() == []
