"""Hand-built ledger histories for the health tests: entries made through the points services,
then moved to the day they belong to (the append-only trigger is lifted for that one update)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pgtrigger
import pytest

from campaigns.models import HealthMetric, HealthThreshold
from points.models import Entry, Order
from points.services import programme_settings

DEFAULTS = {
    HealthMetric.OUTSTANDING_POINTS: (None, Decimal("8000000"), 1),
    HealthMetric.OUTSTANDING_PER_MEMBER: (None, Decimal("2000"), 1),
    HealthMetric.POINTS_USED_WOW_CHANGE: (Decimal("-20"), Decimal("30"), 1),
    HealthMetric.REDEMPTION_RATE: (Decimal("5"), None, 3),
    HealthMetric.BREAKAGE: (None, None, 1),
    HealthMetric.COST_VS_BUDGET: (None, Decimal("110"), 1),
    HealthMetric.COST_TO_MEMBER_VALUE: (None, Decimal("0.15"), 1),
    HealthMetric.INACTIVE_30D_SHARE: (None, Decimal("15"), 1),
}


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=programme_settings().zone)


@pytest.fixture
def thresholds(db):
    """The seeds' thresholds (the data migration's rows; recreated after a transactional test
    emptied the tables)."""
    for metric, (lower, upper, weeks) in DEFAULTS.items():
        HealthThreshold.objects.update_or_create(
            metric=metric,
            defaults={"lower": lower, "upper": upper, "weeks_running": weeks, "is_active": True},
        )
    return {row.metric: row for row in HealthThreshold.objects.all()}


@contextmanager
def on_day(day: date, hour: int = 12):
    """Entries and orders written inside the block are dated `day` at `hour` (programme zone)."""
    last_entry = Entry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    last_order = Order.objects.order_by("-id").values_list("id", flat=True).first() or 0
    yield
    moment = datetime.combine(day, time(hour), tzinfo=programme_settings().zone)
    with pgtrigger.ignore("points.Entry:entry_append_only"):
        Entry.objects.filter(id__gt=last_entry).update(created_at=moment)
    Order.objects.filter(id__gt=last_order).update(created_at=moment)


def after(day: date, days: int = 1) -> datetime:
    """A moment during the day `days` after `day`: a run then rolls up to `day`."""
    return noon(day + timedelta(days=days))
