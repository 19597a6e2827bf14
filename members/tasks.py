"""Celery tasks of members: thin wrappers around the services (beat entries in settings)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from members import services


def _moment(as_of: str | None) -> datetime:
    return datetime.fromisoformat(as_of) if as_of else timezone.now()


@shared_task(name="members.evaluate_tiers")
def evaluate_tiers(as_of: str | None = None) -> dict:
    """Tier upgrades, period-end downgrades and growth refresh as of `as_of` (default now)."""
    run = services.evaluate_tiers(as_of=_moment(as_of))
    return {
        "members": run.members,
        "upgraded": run.upgraded,
        "downgraded": run.downgraded,
        "updated": run.updated,
    }


@shared_task(name="members.compute_segments")
def compute_segments(as_of: str | None = None) -> dict:
    """RFM scores and segment memberships for the day of `as_of` (default now)."""
    run = services.compute_segments(as_of=_moment(as_of))
    return {
        "day": run.day.isoformat(),
        "members": run.members_scored,
        "memberships": run.memberships,
    }
