"""Expiry dates: always the end of a day in the programme's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from points import expiry, services
from points.models import ProgrammeSettings
from tests.points.conftest import at

SHANGHAI = ZoneInfo("Asia/Shanghai")
END = time(23, 59, 59, 999999)


def local(text: str, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.combine(datetime.fromisoformat(text).date(), END, tzinfo=zone)


def expires(earned_at: datetime, policy: str, period: int = 12, zone: str = "Asia/Shanghai"):
    return expiry.expires_at(earned_at, policy=policy, period=period, time_zone=zone)


@pytest.mark.parametrize(
    ("earned", "period", "expected"),
    [
        ("2025-03-10 09:00", 30, "2025-04-09"),
        ("2025-12-20 23:30", 30, "2026-01-19"),
        ("2024-02-01 10:00", 28, "2024-02-29"),  # leap year
        ("2025-02-01 10:00", 28, "2025-03-01"),
        ("2025-05-05 00:00", 0, "2025-05-05"),
    ],
)
def test_rolling_days_end_at_the_end_of_the_nth_day(earned, period, expected):
    assert expires(at(earned), "rolling_days", period) == local(expected)


@pytest.mark.parametrize(
    ("earned", "period", "expected"),
    [
        ("2025-03-10 09:00", 12, "2026-03-10"),
        ("2025-01-31 12:00", 1, "2025-02-28"),  # shorter month: its last day
        ("2024-01-31 12:00", 1, "2024-02-29"),  # leap February
        ("2024-02-29 12:00", 12, "2025-02-28"),  # leap day, a year on
        ("2025-08-31 12:00", 6, "2026-02-28"),
        ("2025-11-15 12:00", 3, "2026-02-15"),  # across the year end
    ],
)
def test_rolling_months_keep_the_day_of_month_clamped_to_month_end(earned, period, expected):
    assert expires(at(earned), "rolling_months", period) == local(expected)


@pytest.mark.parametrize(
    ("earned", "expected"),
    [
        ("2025-01-01 00:00", "2026-12-31"),
        ("2025-12-31 23:59", "2026-12-31"),
        ("2024-02-29 08:00", "2025-12-31"),
    ],
)
def test_end_of_year_after_is_31_december_of_the_next_year(earned, expected):
    assert expires(at(earned), "end_of_year_after") == local(expected)


@pytest.mark.parametrize(
    ("earned", "period", "expected"),
    [
        ("2025-02-10 10:00", 0, "2025-03-31"),
        ("2025-04-01 10:00", 0, "2025-06-30"),
        ("2025-09-30 23:00", 0, "2025-09-30"),
        ("2025-11-15 10:00", 0, "2025-12-31"),
        ("2025-02-10 10:00", 12, "2026-03-31"),
        ("2023-11-30 10:00", 3, "2024-03-31"),
    ],
)
def test_end_of_quarter_is_the_last_day_of_the_quarter_n_months_on(earned, period, expected):
    assert expires(at(earned), "end_of_quarter", period) == local(expected)


def test_never_means_no_expiry_date():
    assert expires(at("2025-01-01 10:00"), "never") is None


def test_the_day_of_earning_is_the_programme_time_zones_day_not_utcs():
    # 17:30 UTC on 31 March is already 1 April in Shanghai.
    earned = datetime(2025, 3, 31, 17, 30, tzinfo=UTC)

    assert expires(earned, "rolling_days", 1) == local("2025-04-02")
    assert expires(earned, "rolling_days", 1, zone="UTC") == local("2025-04-01", ZoneInfo("UTC"))


def test_end_of_day_is_the_last_instant_of_that_day_in_the_zone():
    moment = expires(at("2025-06-01 12:00"), "rolling_days", 0, zone="America/New_York")

    assert moment.utcoffset().total_seconds() == -4 * 3600
    assert moment.astimezone(UTC) == datetime(2025, 6, 2, 3, 59, 59, 999999, tzinfo=UTC)


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown expiry policy"):
        expires(at("2025-01-01 10:00"), "sometimes")


@pytest.mark.django_db
def test_default_programme_expires_points_12_months_later_at_the_end_of_the_day(member):
    programme = ProgrammeSettings.get()

    result = services.earn(member=member, points=10, occurred_at=at("2025-03-10 09:15"))

    assert programme.expiry_policy == "rolling_months"
    assert programme.expiry_period == 12
    assert result.lot.expires_at == local("2026-03-10")
    assert result.entry.expires_at == local("2026-03-10")


@pytest.mark.django_db
def test_changing_the_policy_later_never_moves_points_already_earned(member, configure):
    first = services.earn(member=member, points=10, occurred_at=at("2025-03-10 09:15"))

    configure(expiry_policy="rolling_days", expiry_period=7)
    second = services.earn(member=member, points=10, occurred_at=at("2025-03-10 09:15"))

    first.lot.refresh_from_db()
    assert first.lot.expires_at == local("2026-03-10")
    assert second.lot.expires_at == local("2025-03-17")


@pytest.mark.django_db
def test_a_policy_changed_behind_the_services_back_is_still_applied(member):
    services.earn(member=member, points=1)  # warms the settings copy of this process
    ProgrammeSettings.objects.filter(pk=1).update(expiry_policy="end_of_year_after")

    result = services.earn(member=member, points=10, occurred_at=at("2025-03-10 09:15"))

    assert result.lot.expires_at == local("2026-12-31")


@pytest.mark.django_db
def test_policy_never_leaves_lots_without_an_expiry(member, configure):
    configure(expiry_policy="never")

    result = services.earn(member=member, points=10)

    assert result.lot.expires_at is None
