"""`expire_points` and `release_pending_points` killed with SIGKILL mid-run over thousands of
lots, then run again: every due lot is dealt with exactly once and the totals are exact."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from loyalty_site.bulk_data import create_earned_lots, create_members
from points.lock_objects import lock_account
from points.models import Account, Entry, OutboxEvent
from tests.concurrency.threads import HeldOpen
from tests.fault.conftest import (
    create_pending_lots,
    iso,
    kill_when,
    run,
    scalar,
    start,
    wait_until_the_killed_session_ends,
)

pytestmark = pytest.mark.django_db(transaction=True)

ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2031, 1, 1, tzinfo=ZONE)
MEMBERS = 1500
DUE_PER_MEMBER = 4
POINTS = 100
BATCH_SIZE = "100"


def count_lots(condition: str) -> int:
    """Lots meeting an SQL condition, in which %s stands for AS_OF."""
    params = [AS_OF] * condition.count("%s")
    return scalar(f"SELECT count(*) FROM points_lot WHERE {condition}", params)


def accounts_where(block, condition: str) -> int:
    return scalar(
        f"SELECT count(*) FROM points_account WHERE id BETWEEN %s AND %s AND ({condition})",
        [block.first_account_id, block.first_account_id + block.count - 1],
    )


def test_expiry_killed_mid_run_then_run_again_expires_every_due_lot_exactly_once():
    block = create_members(MEMBERS, prefix="fault-expiry")
    due = create_earned_lots(
        block,
        lots_per_account=DUE_PER_MEMBER,
        points_per_lot=POINTS,
        expires_between=(datetime(2030, 1, 1, tzinfo=ZONE), datetime(2030, 12, 31, tzinfo=ZONE)),
    )
    create_earned_lots(
        block,
        lots_per_account=1,
        points_per_lot=POINTS,
        expires_between=(datetime(2031, 6, 1, tzinfo=ZONE), datetime(2031, 12, 31, tzinfo=ZONE)),
        seed=12,
    )
    busy_account = block.first_account_id + MEMBERS // 2

    # A member busy paying all along: the job skips that account and can never finish first.
    with HeldOpen(lambda: lock_account(account_id=busy_account)):
        job = start("expire_points", "--as-of", iso(AS_OF), "--batch-size", BATCH_SIZE)
        kill_when(job, lambda: count_lots("state = 'expired'") >= due // 3)
    wait_until_the_killed_session_ends()
    expired_before = count_lots("state = 'expired'")
    assert 0 < expired_before < due

    rerun = run("expire_points", "--as-of", iso(AS_OF), "--batch-size", BATCH_SIZE)

    assert rerun.returncode == 0, rerun.stderr
    assert count_lots("expires_at < %s AND (state <> 'expired' OR remaining <> 0)") == 0
    assert count_lots("expires_at >= %s AND state = 'active' AND remaining = 100") == MEMBERS
    # Exactly one expire allocation per due lot, of all its points; none on the others.
    assert (
        scalar(
            """
        SELECT count(*) FILTER (WHERE n = 1 AND points = -100 AND l.expires_at < %s),
               count(*)
          FROM (SELECT a.lot_id, count(*) AS n, sum(a.points) AS points
                  FROM points_allocation a JOIN points_entry e ON e.id = a.entry_id
                 WHERE e.kind = 'expire' GROUP BY a.lot_id) x
          JOIN points_lot l ON l.id = x.lot_id
        """,
            [AS_OF],
        )
        == due
    )
    assert (
        scalar(
            "SELECT count(*) FROM points_allocation a JOIN points_entry e ON e.id = a.entry_id"
            " WHERE e.kind = 'expire'"
        )
        == due
    )
    # One expire entry and one event per account, and balances down to the lot not yet due.
    assert Entry.objects.filter(kind="expire").count() == MEMBERS
    assert -sum(Entry.objects.filter(kind="expire").values_list("amount", flat=True)) == (
        due * POINTS
    )
    assert OutboxEvent.objects.filter(type="points.expired").count() == MEMBERS
    assert accounts_where(block, "available <> 100 OR lifetime_expired <> 400") == 0
    check = run("check_ledger")
    assert check.returncode == 0, check.stdout + check.stderr


def test_release_killed_mid_run_then_run_again_releases_every_due_lot_exactly_once():
    block = create_members(MEMBERS, prefix="fault-release")
    far = datetime(2033, 12, 31, tzinfo=ZONE)
    due = create_pending_lots(
        block,
        lots_per_account=3,
        points_per_lot=POINTS,
        available_between=(datetime(2030, 1, 1, tzinfo=ZONE), datetime(2030, 6, 30, tzinfo=ZONE)),
        expires_at=far,
        reference="fault-due",
    )
    create_pending_lots(
        block,
        lots_per_account=1,
        points_per_lot=POINTS,
        available_between=(datetime(2031, 2, 1, tzinfo=ZONE), datetime(2031, 3, 1, tzinfo=ZONE)),
        expires_at=far,
        reference="fault-later",
    )
    busy_account = block.first_account_id + MEMBERS // 3

    with HeldOpen(lambda: lock_account(account_id=busy_account)):
        job = start("release_pending_points", "--as-of", iso(AS_OF), "--batch-size", BATCH_SIZE)
        kill_when(job, lambda: count_lots("state = 'active'") >= due // 3)
    wait_until_the_killed_session_ends()
    released_before = count_lots("state = 'active'")
    assert 0 < released_before < due

    rerun = run("release_pending_points", "--as-of", iso(AS_OF), "--batch-size", BATCH_SIZE)

    assert rerun.returncode == 0, rerun.stderr
    assert count_lots("available_at <= %s AND (state <> 'active' OR remaining <> 100)") == 0
    assert count_lots("available_at > %s AND state = 'pending' AND remaining = 100") == MEMBERS
    releases = Entry.objects.filter(kind="release")
    assert releases.count() == MEMBERS
    assert set(releases.values_list("available_delta", "pending_delta")) == {(300, -300)}
    assert OutboxEvent.objects.filter(type="points.released").count() == MEMBERS
    assert accounts_where(block, "available <> 300 OR pending <> 100") == 0
    assert Account.objects.filter(available=300, pending=100).count() == MEMBERS
    check = run("check_ledger")
    assert check.returncode == 0, check.stdout + check.stderr
