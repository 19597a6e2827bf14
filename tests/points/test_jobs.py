"""Expiry and pending release as of a moment; re-runs; the commands and tasks around them."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from points import services, tasks
from points.models import Account, Allocation, Entry, Lot, OutboxEvent
from tests.factories import MemberFactory
from tests.points.conftest import at

pytestmark = pytest.mark.django_db

LAST_DAY = at("2030-01-01 23:59:59.999999")  # a lot valid through 1 January 2030
NEXT_DAY = at("2030-01-02 00:00")


def account(member) -> Account:
    return Account.objects.get(member=member)


def earn_expiring(member, points, when=LAST_DAY):
    return services.earn(member=member, points=points, expires_at=when).lot


def test_points_are_valid_through_their_last_day_and_expire_after_it(member):
    lot = earn_expiring(member, 100)

    assert services.expire_lots(as_of=LAST_DAY) == 0
    assert services.expire_lots(as_of=NEXT_DAY) == 1

    lot.refresh_from_db()
    assert (lot.state, lot.remaining) == ("expired", 0)
    entry = Entry.objects.get(kind="expire")
    assert (entry.amount, entry.available_delta, entry.balance_after) == (-100, -100, 0)
    assert Allocation.objects.get(entry=entry).points == -100
    assert (account(member).available, account(member).lifetime_expired) == (0, 100)
    event = OutboxEvent.objects.get(type="points.expired")
    assert (event.payload["points"], event.payload["entry_id"]) == (100, entry.pk)


def test_only_what_is_left_of_a_lot_expires(member):
    earn_expiring(member, 100)
    later = earn_expiring(member, 50, at("2031-06-30 23:59:59"))
    services.spend(member=member, points=30)

    services.expire_lots(as_of=NEXT_DAY)

    assert Entry.objects.get(kind="expire").amount == -70
    assert account(member).available == 50
    assert Lot.objects.get(pk=later.pk).remaining == 50


def test_one_expire_entry_per_account_for_its_lots_due_together(member, other_member):
    for points in (10, 20, 30):
        earn_expiring(member, points, at(f"2029-12-{points} 23:59:59"))
    earn_expiring(other_member, 5)

    assert services.expire_lots(as_of=NEXT_DAY) == 4

    assert sorted(Entry.objects.filter(kind="expire").values_list("amount", flat=True)) == [-60, -5]


def test_a_rerun_as_of_the_same_moment_changes_nothing(member):
    earn_expiring(member, 100)
    services.expire_lots(as_of=NEXT_DAY)
    entries = Entry.objects.count()

    assert services.expire_lots(as_of=NEXT_DAY) == 0
    assert Entry.objects.count() == entries
    assert account(member).available == 0


def test_lots_without_expiry_and_pending_lots_do_not_expire(member, configure):
    configure(expiry_policy="never")
    services.earn(member=member, points=10)
    services.earn(
        member=member,
        points=20,
        expires_at=at("2029-01-01 00:00"),
        available_at=at("2031-01-01 00:00"),
    )

    assert services.expire_lots(as_of=at("2032-01-01 00:00")) == 0
    assert (account(member).available, account(member).pending) == (10, 20)


def test_a_run_in_small_chunks_gives_the_same_totals_with_progress(member):
    members = [MemberFactory() for _ in range(5)]
    for index, someone in enumerate(members):
        earn_expiring(someone, 10 + index)
        earn_expiring(someone, 100, at("2029-06-30 23:59:59"))
    seen = []

    run = services.run_expiry(
        as_of=NEXT_DAY, batch_size=2, progress=lambda d, t: seen.append((d, t))
    )

    assert (run.lots, run.points) == (10, 5 * 100 + sum(range(10, 15)))
    assert run.chunks >= 3
    assert seen[0] == (0, 10)
    assert seen[-1] == (10, 10)
    assert [done for done, _total in seen] == sorted(done for done, _total in seen)
    assert all(account(someone).available == 0 for someone in members)


def test_a_run_stopped_midway_finishes_exactly_when_run_again(member):
    members = [MemberFactory() for _ in range(6)]
    for someone in members:
        earn_expiring(someone, 7)

    def stop_after_first_chunk(done, total):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        services.expire_lots(as_of=NEXT_DAY, batch_size=2, progress=stop_after_first_chunk)
    assert Lot.objects.filter(state="expired").count() == 2

    assert services.expire_lots(as_of=NEXT_DAY, batch_size=2) == 4
    assert Entry.objects.filter(kind="expire").count() == 6
    assert sum(Account.objects.values_list("lifetime_expired", flat=True)) == 42


def test_an_as_of_without_time_zone_is_refused(member):
    with pytest.raises(services.InvalidLedgerRequest):
        services.expire_lots(as_of=NEXT_DAY.replace(tzinfo=None))


def test_pending_points_become_available_at_their_moment(member):
    result = services.earn(member=member, points=40, available_at=at("2030-01-10 12:00"))

    assert services.release_pending_points(as_of=at("2030-01-10 11:59")) == 0
    assert services.release_pending_points(as_of=at("2030-01-10 12:00")) == 1

    lot = Lot.objects.get(pk=result.lot.pk)
    assert (lot.state, lot.remaining) == ("active", 40)
    assert (account(member).available, account(member).pending) == (40, 0)
    entry = Entry.objects.get(kind="release")
    assert (entry.amount, entry.available_delta, entry.pending_delta) == (0, 40, -40)
    assert entry.balance_after == 40
    assert OutboxEvent.objects.filter(type="points.released").count() == 1
    assert services.release_pending_points(as_of=at("2030-01-10 12:00")) == 0


def test_a_pending_lot_fully_refunded_is_released_empty_without_an_entry(member, partner):
    from decimal import Decimal

    services.record_purchase(
        member=member,
        partner=partner,
        reference="o-1",
        amount=Decimal("40.00"),
        currency="CNY",
        points=40,
        available_at=at("2030-01-10 12:00"),
    )
    services.refund_order(partner=partner, reference="o-1")

    assert services.release_pending_points(as_of=at("2030-01-11 00:00")) == 1

    assert not Entry.objects.filter(kind="release").exists()
    assert Lot.objects.get().state == "active"


def test_released_points_pay_a_negative_balance_first(member, operator, configure):
    configure(negative_balance_limit=100)
    services.earn(member=member, points=10, available_at=at("2030-01-10 12:00"))
    services.earn(member=member, points=50, available_at=at("2030-01-10 12:00"))
    services.adjust(member=member, points=-30, reason="clawback", operator=operator)

    services.release_pending_points(as_of=at("2030-01-11 00:00"))

    assert account(member).available == 30
    assert sorted(Lot.objects.values_list("remaining", flat=True)) == [0, 30]
    services.spend(member=member, points=30)


@pytest.mark.parametrize("batch_size", [1, 4, 5000])
def test_a_chunk_releases_all_of_an_accounts_many_due_lots_and_pays_its_debt_first(
    member, operator, configure, batch_size
):
    configure(negative_balance_limit=1000, expiry_policy="never")
    others = [MemberFactory() for _ in range(3)]
    # Twelve due lots, in an order of release (available_at) unlike their spending order
    # (expires_at, never-expiring last, then id), interleaved with the other members' lots.
    expiries = [at("2031-03-01 00:00"), None, at("2030-06-01 00:00"), at("2032-01-01 00:00")]
    debtor_lots = []
    for index in range(12):
        due_at = at("2030-01-10 08:00") + timedelta(hours=index)
        debtor_lots.append(
            services.earn(
                member=member,
                points=10 + 5 * index,
                available_at=due_at,
                expires_at=expiries[index % 4],
            ).lot
        )
        services.earn(
            member=others[index % 3], points=7, available_at=due_at + timedelta(minutes=30)
        )
    not_yet = services.earn(member=member, points=99, available_at=at("2030-02-01 00:00")).lot
    services.adjust(member=member, points=-250, reason="clawback", operator=operator)
    due_points = sum(lot.amount for lot in debtor_lots)
    debt = 250
    paid = {}
    for lot in sorted(
        debtor_lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or NEXT_DAY, lot.pk)
    ):
        paid[lot.pk] = min(lot.amount, debt)
        debt -= paid[lot.pk]
    # The debt takes eight lots, the last of them only in part (15 of its 45).
    assert debt == 0 and sorted(filter(None, paid.values())) == [10, 15, 20, 25, 30, 40, 50, 60]

    run = services.run_release(as_of=at("2030-01-20 00:00"), batch_size=batch_size)

    assert (run.lots, run.points) == (12 + 12, due_points + 12 * 7)
    mine = account(member)
    assert (mine.available, mine.pending) == (due_points - 250, 99)
    for lot in debtor_lots:
        lot.refresh_from_db()
        assert (lot.state, lot.remaining) == ("active", lot.amount - paid[lot.pk])
    assert Lot.objects.get(pk=not_yet.pk).state == "pending"
    entry = Entry.objects.get(kind="release", account=mine)
    assert (entry.amount, entry.available_delta, entry.pending_delta) == (
        0,
        due_points,
        -due_points,
    )
    assert entry.balance_after == due_points - 250
    assert dict(entry.allocations.values_list("lot_id", "points")) == {
        pk: -points for pk, points in paid.items() if points
    }
    event = OutboxEvent.objects.get(type="points.released", account=mine)
    assert event.payload["entry_id"] == entry.pk
    assert (event.payload["points"], event.payload["available"]) == (due_points, due_points - 250)
    assert event.member_external_id == member.external_id == event.payload["member"]
    for someone in others:
        theirs = account(someone)
        assert (theirs.available, theirs.pending) == (28, 0)
        assert Entry.objects.get(kind="release", account=theirs).available_delta == 28
        assert (
            OutboxEvent.objects.get(type="points.released", account=theirs).payload["points"] == 28
        )
    assert services.release_pending_points(as_of=at("2030-01-20 00:00")) == 0


def _joins_of_two_ctes(plan: dict) -> list[str]:
    """Join nodes of an EXPLAIN (FORMAT JSON) plan whose both sides read a CTE."""

    def reads_cte(node: dict) -> str | None:
        while node.get("Node Type") in ("Hash", "Materialize", "Sort", "Memoize"):
            node = node["Plans"][0]
        return node.get("CTE Name") if node.get("Node Type") == "CTE Scan" else None

    found = []
    children = plan.get("Plans", [])
    if plan.get("Node Type") in ("Nested Loop", "Hash Join", "Merge Join"):
        sides = [
            reads_cte(child)
            for child in children
            if child.get("Parent Relationship") in ("Outer", "Inner")
        ]
        if len(sides) == 2 and all(sides):
            found.append(f"{plan['Node Type']} of {sides[0]} and {sides[1]}")
    for child in children:
        found += _joins_of_two_ctes(child)
    return found


@pytest.mark.parametrize("job", ["release", "expire"])
def test_a_chunk_never_joins_two_ctes_so_its_cost_is_linear_in_the_chunk(member, job):
    # The planner cannot see how many rows a CTE holds; a nested loop over two CTE scans
    # compares every lot with every account of the chunk (docs/scaling.md measured 25,000,000
    # pairs for a 5,000-lot chunk). Each step must read its CTE once, or a table by an index.
    from django.db import connection

    for someone in [member, *(MemberFactory() for _ in range(4))]:
        earn_expiring(someone, 10)
        services.earn(member=someone, points=5, available_at=at("2030-01-10 12:00"))
    sql = (services._RELEASE_SQL if job == "release" else services._EXPIRE_SQL).format(
        skip_locked="SKIP LOCKED"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (FORMAT JSON) " + sql,
            {
                "as_of": at("2030-02-01 00:00"),
                "as_of_text": "2030-02-01",
                "after_at": "-infinity",
                "after_id": 0,
                "batch": 5000,
            },
        )
        (plan,) = cursor.fetchone()[0]

    assert _joins_of_two_ctes(plan["Plan"]) == []


def test_expire_points_command_reports_what_it_did(member):
    earn_expiring(member, 100)
    out = StringIO()

    call_command("expire_points", "--as-of", "2030-01-02T00:00:00+08:00", stdout=out)

    assert "Expired 1 lots, 100 points" in out.getvalue()
    assert account(member).available == 0


def test_an_as_of_without_offset_is_in_the_programmes_time_zone(member):
    earn_expiring(member, 100)

    call_command("expire_points", "--as-of", "2030-01-01T23:59:59", stdout=StringIO())
    assert account(member).available == 100
    call_command("expire_points", "--as-of", "2030-01-02", stdout=StringIO())
    assert account(member).available == 0


def test_expire_points_command_refuses_a_malformed_moment():
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("expire_points", "--as-of", "next tuesday", stdout=StringIO())


def test_release_pending_points_command_reports_what_it_did(member):
    services.earn(member=member, points=40, available_at=at("2030-01-10 12:00"))
    out = StringIO()

    call_command("release_pending_points", "--as-of", "2030-01-11", stdout=out)

    assert "Released 1 lots, 40 points" in out.getvalue()
    assert account(member).available == 40


def test_check_ledger_command_is_quiet_about_a_sound_ledger(member):
    services.earn(member=member, points=40)
    out = StringIO()

    call_command("check_ledger", stdout=out)

    assert "Ledger OK: 1 accounts and 1 lots checked." in out.getvalue()


def test_check_ledger_command_reports_mismatches_and_exits_1(member, broken_ledger):
    result = services.earn(member=member, points=40)
    # An entry written behind the services' back: the balance no longer matches its entries.
    Entry.objects.create(
        account_id=result.entry.account_id,
        kind="adjust",
        amount=5,
        available_delta=5,
        balance_after=45,
    )
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("check_ledger", stdout=out)

    assert raised.value.returncode == 1
    assert "available = sum of entries' available_delta" in out.getvalue()
    assert "u-1001" in out.getvalue()
    assert "expected 40, found 45" in out.getvalue()


def test_check_finds_a_lot_whose_remaining_disagrees_with_its_allocations(member, broken_ledger):
    result = services.earn(member=member, points=40)
    Allocation.objects.create(entry=result.entry, lot=result.lot, points=-1)

    [mismatch] = services.check_ledger_invariants()

    assert (mismatch.lot_id, mismatch.expected, mismatch.actual) == (result.lot.pk, 39, 40)


def test_tasks_run_the_jobs_as_of_a_moment(member):
    earn_expiring(member, 100)
    services.earn(member=member, points=40, available_at=at("2030-01-10 12:00"))

    assert tasks.expire_points(as_of=NEXT_DAY.isoformat()) == {
        "lots": 1,
        "points": 100,
        "chunks": 1,
    }
    assert (
        tasks.release_pending_points(as_of=(NEXT_DAY + timedelta(days=30)).isoformat())["points"]
        == 40
    )
    assert tasks.check_ledger() == 0


def test_the_jobs_are_scheduled_in_celery_beat():
    schedule = settings.CELERY_BEAT_SCHEDULE

    assert schedule["expire-points"]["task"] == "points.expire_points"
    assert schedule["release-pending-points"]["task"] == "points.release_pending_points"
    assert schedule["check-ledger"]["task"] == "points.check_ledger"
