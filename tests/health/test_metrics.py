"""Each metric on a hand-built history whose answer is known."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from campaigns.health import compute_health_metrics, metrics_for_day
from campaigns.models import DailyProgrammeRollup, HealthMetric, HealthMetricValue, HealthSettings
from points import services
from points.models import Order
from points.services import programme_settings
from tests.factories import MemberFactory, PartnerFactory
from tests.health.conftest import after, on_day

M = HealthMetric
START = date(2026, 3, 1)  # 14 days: 1-7 March (week before), 8-14 March (the week)
DAY = date(2026, 3, 14)


def two_weeks() -> dict[date, DailyProgrammeRollup]:
    rollups = {}
    for offset in range(14):
        day = START + timedelta(days=offset)
        rollups[day] = DailyProgrammeRollup(
            day=day,
            issued=1000,
            spent=100 if offset < 7 else 130,
            redeemed=0,
            expired=10,
            order_amount=Decimal("100.00"),
            outstanding=1_000_000,
            members=400,
            active_30d=300,
        )
    return rollups


def test_every_metric_from_known_rollups():
    values = metrics_for_day(
        day=DAY,
        rollups=two_weeks(),
        point_value=Decimal("0.01"),
        monthly_budget=Decimal("310"),
    )

    assert values == {
        M.OUTSTANDING_POINTS: Decimal("1000000"),
        M.OUTSTANDING_PER_MEMBER: Decimal("2500"),  # 1,000,000 / 400
        M.POINTS_USED_WOW_CHANGE: Decimal("30"),  # 910 used against 700
        M.REDEMPTION_RATE: Decimal("13"),  # 910 used / 7,000 issued
        M.BREAKAGE: Decimal("1"),  # 140 expired / 14,000 issued
        M.COST_VS_BUDGET: Decimal("100"),  # 140.00 against 310 x 14/31
        M.COST_TO_MEMBER_VALUE: Decimal("0.1"),  # 140.00 issued / 1,400.00 spent
        M.INACTIVE_30D_SHARE: Decimal("25"),  # 100 of 400
    }


def test_metrics_without_a_base_are_empty():
    quiet = {DAY: DailyProgrammeRollup(day=DAY)}
    values = metrics_for_day(
        day=DAY, rollups=quiet, point_value=Decimal("0.01"), monthly_budget=Decimal("0")
    )

    assert values[M.OUTSTANDING_POINTS] == 0
    for metric in set(M) - {M.OUTSTANDING_POINTS}:
        assert values[metric] is None, metric


def test_week_on_week_change_can_be_negative():
    rollups = two_weeks()
    for offset in range(7, 14):
        rollups[START + timedelta(days=offset)].spent = 80  # 560 against 700

    values = metrics_for_day(
        day=DAY, rollups=rollups, point_value=Decimal("0.01"), monthly_budget=Decimal("0")
    )

    assert values[M.POINTS_USED_WOW_CHANGE] == Decimal("-20")


@pytest.mark.django_db
def test_metrics_stored_from_the_ledger():
    """Two members joined; one earns 1000 on a purchase of 2,000.00 and spends 300, the other
    does nothing: outstanding 700, 350 per member, half the members inactive, issuance cost
    10.00 (point value 0.01) for 2,000.00 of member spend."""
    zone = programme_settings().zone
    HealthSettings.objects.update_or_create(pk=1, defaults={"monthly_budget": Decimal("310")})
    joined = datetime(2026, 1, 1, tzinfo=zone)
    buyer, _sleeper = MemberFactory(joined_at=joined), MemberFactory(joined_at=joined)
    shop = PartnerFactory()
    with on_day(START):
        services.record_purchase(
            member=buyer,
            partner=shop,
            reference="order-1",
            amount=Decimal("2000.00"),
            currency="CNY",
            points=1000,
        )
        services.spend(member=buyer, points=300, partner=shop)
    assert Order.objects.filter(reference="order-1").exists()

    compute_health_metrics(as_of=after(START))

    stored = dict(HealthMetricValue.objects.filter(day=START).values_list("metric", "value"))
    assert stored[M.OUTSTANDING_POINTS] == 700
    assert stored[M.OUTSTANDING_PER_MEMBER] == 350
    assert stored[M.INACTIVE_30D_SHARE] == 50
    assert stored[M.REDEMPTION_RATE] == 30  # 300 used / 1000 issued
    assert stored[M.BREAKAGE] == 0
    assert stored[M.COST_TO_MEMBER_VALUE] == Decimal("0.005")  # 10.00 / 2,000.00
    assert stored[M.COST_VS_BUDGET] == 100  # 10.00 against 310 x 1/31
    assert stored[M.POINTS_USED_WOW_CHANGE] is None  # no week before
