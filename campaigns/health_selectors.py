"""Reads of programme health for the admin: the dashboard reads only the rollups (a handful
of queries whatever the size of the ledger) and the open alerts."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Max
from django.utils import timezone

from campaigns.models import (
    DailyProgrammeRollup,
    DailyTierSize,
    HealthAlert,
    HealthMetric,
    HealthMetricValue,
    HealthThreshold,
)
from members.selectors import segment_size_history


def _number(value) -> float | None:
    return None if value is None else float(value)


def open_alert_count() -> int:
    # On every admin page: a bounded read, never a COUNT (there are a dozen metrics at most).
    raised = HealthAlert.objects.filter(state=HealthAlert.State.RAISED)
    return len(raised.values_list("pk", flat=True)[:100])


def health_dashboard(*, days: int = 180, today: date | None = None) -> dict:
    """What the dashboard draws over the last `days` days: one series per metric with its
    threshold, the points flow, tier sizes of the latest rollup, segment sizes, open alerts.
    Numbers are floats (JSON for the charts)."""
    today = today or timezone.localdate()
    since = today - timedelta(days=days)
    rows = HealthMetricValue.objects.filter(day__gt=since, day__lte=today).values_list(
        "day", "metric", "value"
    )
    by_metric: dict[str, dict[date, float | None]] = {metric: {} for metric in HealthMetric}
    for day, metric, value in rows:
        by_metric.setdefault(metric, {})[day] = _number(value)
    metric_days = sorted({day for series in by_metric.values() for day in series})
    thresholds = {row.metric: row for row in HealthThreshold.objects.all()}
    metrics = []
    for metric in HealthMetric:
        threshold = thresholds.get(metric)
        active = threshold is not None and threshold.is_active
        series = by_metric.get(metric, {})
        metrics.append(
            {
                "metric": metric.value,
                "title": str(metric.label),
                "values": [series.get(day) for day in metric_days],
                "latest": next(
                    (series[d] for d in reversed(metric_days) if series.get(d) is not None), None
                ),
                "lower": _number(threshold.lower) if active else None,
                "upper": _number(threshold.upper) if active else None,
                "weeks_running": threshold.weeks_running if threshold else 1,
            }
        )
    flow = list(
        DailyProgrammeRollup.objects.filter(day__gt=since, day__lte=today)
        .order_by("day")
        .values_list("day", "issued", "spent", "redeemed", "expired")
    )
    latest_tier_day = DailyTierSize.objects.aggregate(day=Max("day"))["day"]
    tiers = (
        DailyTierSize.objects.filter(day=latest_tier_day)
        .select_related("tier")
        .order_by("tier__rank")
        if latest_tier_day
        else []
    )
    segments = segment_size_history(days=days, today=today)
    return {
        "days": [day.isoformat() for day in metric_days],
        "metrics": metrics,
        "flow": {
            "days": [row[0].isoformat() for row in flow],
            "issued": [row[1] for row in flow],
            "spent": [row[2] for row in flow],
            "redeemed": [row[3] for row in flow],
            "expired": [row[4] for row in flow],
        },
        "tiers": {
            "day": latest_tier_day.isoformat() if latest_tier_day else None,
            "names": [str(row.tier) for row in tiers],
            "members": [row.members for row in tiers],
        },
        "segments": {
            "days": [day.isoformat() for day in segments["days"]],
            "series": [
                {"name": segment.display_name, "members": sizes}
                for segment, sizes in segments["series"]
            ],
        },
        "open_alerts": list(
            HealthAlert.objects.filter(state=HealthAlert.State.RAISED).order_by("-day", "-id")[:20]
        ),
    }
