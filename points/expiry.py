"""Expiry policies: when points earned at a moment expire.

Every policy ends at the END of a day (23:59:59.999999) in the programme's time zone, so points
are valid for the whole of their last day. The date is computed once, when the lot is earned,
and stored on the lot: changing the policy later never moves points already earned.

- rolling_days: the day N days after the day of earning.
- rolling_months: the same day of the month N months later (the month's last day when it is
  shorter: 31 January + 1 month = 28 or 29 February).
- end_of_year_after: 31 December of the calendar year after the year of earning.
- end_of_quarter: the last day of the calendar quarter containing the date N months after
  earning (N = 0: the end of the quarter of earning).
- never: no expiry (None).

A member's tier may override the programme's policy (members.Tier.expiry_policy, "never"
included): `lot_expiry` is the one function that decides a new lot's expiry date.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ROLLING_DAYS = "rolling_days"
ROLLING_MONTHS = "rolling_months"
END_OF_YEAR_AFTER = "end_of_year_after"
END_OF_QUARTER = "end_of_quarter"
NEVER = "never"


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The last instant of `day` in `zone`."""
    return datetime.combine(day, time.max, tzinfo=zone)


def add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, clamped to the last day of a shorter month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_quarter(day: date) -> date:
    last_month = ((day.month - 1) // 3 + 1) * 3
    return date(day.year, last_month, calendar.monthrange(day.year, last_month)[1])


def last_valid_day(earned_on: date, *, policy: str, period: int) -> date | None:
    """The last day on which points earned on `earned_on` (a local date) can be used."""
    if policy == ROLLING_DAYS:
        return earned_on + timedelta(days=period)
    if policy == ROLLING_MONTHS:
        return add_months(earned_on, period)
    if policy == END_OF_YEAR_AFTER:
        return date(earned_on.year + 1, 12, 31)
    if policy == END_OF_QUARTER:
        return end_of_quarter(add_months(earned_on, period))
    if policy == NEVER:
        return None
    raise ValueError(f"unknown expiry policy {policy!r}")


def expires_at(earned_at: datetime, *, policy: str, period: int, time_zone: str) -> datetime | None:
    """When points earned at `earned_at` (aware) expire under the policy, or None (never)."""
    zone = ZoneInfo(time_zone)
    day = last_valid_day(earned_at.astimezone(zone).date(), policy=policy, period=period)
    return None if day is None else end_of_day(day, zone)


def expiry_for_programme(earned_at: datetime, programme) -> datetime | None:
    """`expires_at` with the policy, period and time zone of a ProgrammeSettings row."""
    return expires_at(
        earned_at,
        policy=programme.expiry_policy,
        period=programme.expiry_period,
        time_zone=programme.time_zone,
    )


def lot_expiry(earned_at: datetime, *, programme, tier=None) -> datetime | None:
    """When a lot earned at `earned_at` expires: by the member's tier's policy when the tier
    overrides it (members.Tier.expiry_policy not blank), else by the programme's; day
    boundaries always in the programme's time zone."""
    if tier is not None and tier.expiry_policy:
        return expires_at(
            earned_at,
            policy=tier.expiry_policy,
            period=tier.expiry_period,
            time_zone=programme.time_zone,
        )
    return expiry_for_programme(earned_at, programme)
