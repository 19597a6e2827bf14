"""Celery tasks of campaigns: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from campaigns import scheduling


@shared_task(name="campaigns.sync_campaign_state")
def sync_campaign_state(campaign_id: int) -> bool:
    """A campaign's start or stop edge (its beat tasks): running or not, by its schedule."""
    return scheduling.sync_campaign_state(campaign_id=campaign_id)
