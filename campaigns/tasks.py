"""Celery tasks of campaigns: thin wrappers around the services (beat entries in settings)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from campaigns import health


@shared_task(name="campaigns.compute_health_metrics")
def compute_health_metrics(as_of: str | None = None) -> dict:
    """The nightly health rollup up to yesterday, metrics and alerts (as of `as_of` or now)."""
    moment = datetime.fromisoformat(as_of) if as_of else timezone.now()
    run = health.compute_health_metrics(as_of=moment)
    return {
        "days": [day.isoformat() for day in run.days],
        "alerts_raised": run.alerts_raised,
        "alerts_recovered": run.alerts_recovered,
    }
