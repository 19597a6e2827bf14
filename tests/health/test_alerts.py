"""Thresholds crossed one unit either side; an alert is raised once per crossing and not again
until acknowledged or recovered; the configured group gets an email."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from campaigns.health import acknowledge_alert, evaluate_alerts
from campaigns.models import HealthAlert, HealthMetric, HealthMetricValue, HealthSettings
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db
M = HealthMetric
DAY = date(2026, 3, 30)

# metric, the threshold's bound, one unit of the metric, alert when above (else below)
BOUNDS = [
    (M.OUTSTANDING_POINTS, Decimal("8000000"), Decimal("1"), True),
    (M.OUTSTANDING_PER_MEMBER, Decimal("2000"), Decimal("1"), True),
    (M.POINTS_USED_WOW_CHANGE, Decimal("30"), Decimal("1"), True),
    (M.POINTS_USED_WOW_CHANGE, Decimal("-20"), Decimal("1"), False),
    (M.REDEMPTION_RATE, Decimal("5"), Decimal("1"), False),
    (M.COST_VS_BUDGET, Decimal("110"), Decimal("1"), True),
    (M.COST_TO_MEMBER_VALUE, Decimal("0.15"), Decimal("0.01"), True),
    (M.INACTIVE_30D_SHARE, Decimal("15"), Decimal("1"), True),
]


def _seed_earlier_weeks(metric: str, value: Decimal, weeks: int) -> None:
    for week in range(1, weeks):
        HealthMetricValue.objects.create(
            day=DAY - timedelta(days=7 * week), metric=metric, value=value
        )


@pytest.mark.parametrize(("metric", "bound", "unit", "above"), BOUNDS)
def test_one_unit_past_the_threshold_alerts(thresholds, metric, bound, unit, above):
    value = bound + unit if above else bound - unit
    _seed_earlier_weeks(metric, value, thresholds[metric].weeks_running)

    raised, _recovered = evaluate_alerts(day=DAY, values={metric: value})

    assert raised == 1
    alert = HealthAlert.objects.get()
    assert (alert.metric, alert.day, alert.value, alert.state) == (
        metric,
        DAY,
        value,
        HealthAlert.State.RAISED,
    )


@pytest.mark.parametrize(("metric", "bound", "unit", "above"), BOUNDS)
def test_one_unit_inside_the_threshold_does_not_alert(thresholds, metric, bound, unit, above):
    value = bound - unit if above else bound + unit
    _seed_earlier_weeks(metric, value, thresholds[metric].weeks_running)

    assert evaluate_alerts(day=DAY, values={metric: value}) == (0, 0)
    assert evaluate_alerts(day=DAY, values={metric: bound}) == (0, 0)
    assert not HealthAlert.objects.exists()


def test_redemption_rate_alerts_only_three_weeks_running(thresholds):
    low = Decimal("4")
    HealthMetricValue.objects.create(
        day=DAY - timedelta(days=7), metric=M.REDEMPTION_RATE, value=low
    )
    HealthMetricValue.objects.create(
        day=DAY - timedelta(days=14), metric=M.REDEMPTION_RATE, value=Decimal("6")
    )

    assert evaluate_alerts(day=DAY, values={M.REDEMPTION_RATE: low}) == (0, 0)

    HealthMetricValue.objects.filter(day=DAY - timedelta(days=14)).update(value=low)
    assert evaluate_alerts(day=DAY, values={M.REDEMPTION_RATE: low}) == (1, 0)


def test_alert_raised_once_until_acknowledged_or_recovered(thresholds):
    high, normal = (
        {M.OUTSTANDING_POINTS: Decimal("8000001")},
        {M.OUTSTANDING_POINTS: Decimal("7999999")},
    )
    operator = OperatorFactory()

    assert evaluate_alerts(day=DAY, values=high) == (1, 0)
    assert evaluate_alerts(day=DAY + timedelta(days=1), values=high) == (0, 0)
    assert HealthAlert.objects.count() == 1

    first = HealthAlert.objects.get()
    assert acknowledge_alert(alert=first, user=operator) is True
    assert acknowledge_alert(alert=first, user=operator) is False
    first.refresh_from_db()
    assert (first.state, first.acknowledged_by) == (HealthAlert.State.ACKNOWLEDGED, operator)

    # Acknowledged but still out: raised again, once.
    assert evaluate_alerts(day=DAY + timedelta(days=2), values=high) == (1, 0)
    assert evaluate_alerts(day=DAY + timedelta(days=3), values=high) == (0, 0)

    # Back inside: every open alert recovers; crossing again raises a new one.
    assert evaluate_alerts(day=DAY + timedelta(days=4), values=normal) == (0, 2)
    assert set(HealthAlert.objects.values_list("state", flat=True)) == {"recovered"}
    assert evaluate_alerts(day=DAY + timedelta(days=5), values=normal) == (0, 0)
    assert evaluate_alerts(day=DAY + timedelta(days=6), values=high) == (1, 0)
    assert HealthAlert.objects.count() == 3


def test_inactive_threshold_raises_nothing(thresholds):
    thresholds[M.OUTSTANDING_POINTS].is_active = False
    thresholds[M.OUTSTANDING_POINTS].save()

    assert evaluate_alerts(day=DAY, values={M.OUTSTANDING_POINTS: Decimal("9000000")}) == (0, 0)


def test_alert_emails_the_configured_group(
    thresholds, mailoutbox, django_capture_on_commit_callbacks
):
    group = Group.objects.create(name="Programme health")
    watcher = OperatorFactory(email="watcher@example.com")
    silent = OperatorFactory(email="")
    OperatorFactory(email="outsider@example.com")  # staff outside the group: not mailed
    group.user_set.add(watcher, silent)
    HealthSettings.objects.update_or_create(pk=1, defaults={"alert_group": group})

    with django_capture_on_commit_callbacks(execute=True):
        evaluate_alerts(day=DAY, values={M.INACTIVE_30D_SHARE: Decimal("16")})
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_alerts(day=DAY + timedelta(days=1), values={M.INACTIVE_30D_SHARE: Decimal("17")})

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [watcher.email]
    assert "members inactive 30 days" in message.subject
    assert "16" in message.body and "2026-03-30" in message.body
