"""Celery tasks of campaigns: thin wrappers around the services (beat entries in settings)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from campaigns import health, reminders, scheduling


@shared_task(name="campaigns.sync_campaign_state")
def sync_campaign_state(campaign_id: int) -> bool:
    """A campaign's start or stop edge (its beat tasks): running or not, by its schedule."""
    return scheduling.sync_campaign_state(campaign_id=campaign_id)


@shared_task(name="campaigns.send_expiry_reminders")
def send_expiry_reminders(as_of: str | None = None, batch_size: int = 1000) -> dict:
    """Remind members of points expiring within the configured windows (default: as of now)."""
    moment = datetime.fromisoformat(as_of) if as_of else timezone.now()
    run = reminders.send_expiry_reminders(as_of=moment, batch_size=batch_size)
    return {
        "groups": run.groups,
        "claimed": run.claimed,
        "sent": run.sent,
        "failed": run.failed,
        "skipped": run.skipped,
    }


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
