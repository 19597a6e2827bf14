"""What members and operators read: balance summary, expiring schedule, ledger filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from points import services
from points.selectors import expiring_schedule, member_ledger, member_points_summary
from tests.points.conftest import at

pytestmark = pytest.mark.django_db


def test_a_member_without_points_has_an_empty_summary(member, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert member_points_summary(member=member) == {
            "available": 0,
            "pending": 0,
            "expiring": [],
        }


def test_summary_lists_the_next_three_expiry_dates_with_amounts_summed_per_date(
    member, django_assert_num_queries
):
    for points, day in [(10, "03-31"), (20, "03-31"), (5, "01-31"), (7, "06-30"), (9, "12-31")]:
        services.earn(member=member, points=points, expires_at=at(f"2030-{day} 23:59:59"))
    services.earn(member=member, points=40, available_at=timezone.now() + timedelta(days=3))
    services.spend(member=member, points=8)  # 5 from January, 3 from March

    with django_assert_num_queries(2):
        summary = member_points_summary(member=member)

    assert (summary["available"], summary["pending"]) == (43, 40)
    assert summary["expiring"] == [
        {"amount": 27, "expires_at": at("2030-03-31 23:59:59")},
        {"amount": 7, "expires_at": at("2030-06-30 23:59:59")},
        {"amount": 9, "expires_at": at("2030-12-31 23:59:59")},
    ]


def test_points_that_never_expire_are_not_listed_as_expiring(member, configure):
    configure(expiry_policy="never")
    services.earn(member=member, points=10)

    assert member_points_summary(member=member)["expiring"] == []


def test_expiring_schedule_counts_lots_per_date(member):
    services.earn(member=member, points=10, expires_at=at("2030-03-31 23:59:59"))
    services.earn(member=member, points=20, expires_at=at("2030-03-31 23:59:59"))
    services.earn(member=member, points=5, expires_at=at("2030-04-30 23:59:59"))

    schedule = expiring_schedule(member=member, limit=1)

    assert schedule == [{"expires_at": at("2030-03-31 23:59:59"), "amount": 30, "lots": 2}]
    assert expiring_schedule(member=type(member)(pk=0)) == []


def test_ledger_is_newest_first_and_filters_by_kind_and_time(member, other_member):
    services.earn(member=member, points=10)
    services.spend(member=member, points=4)
    services.earn(member=other_member, points=99)
    now = timezone.now()

    everything = member_ledger(member=member)
    spends = member_ledger(member=member, kind="spend")

    assert [(e.kind, e.amount) for e in everything] == [("spend", -4), ("earn", 10)]
    assert [e.amount for e in spends] == [-4]
    assert member_ledger(member=member, since=now + timedelta(minutes=1)).count() == 0
    assert member_ledger(member=member, until=now + timedelta(minutes=1)).count() == 2
