"""Celery tasks of the ledger: thin wrappers around the services (beat entries in settings)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from points import grants, services, webhooks

logger = logging.getLogger(__name__)


def _moment(as_of: str | None) -> datetime:
    return datetime.fromisoformat(as_of) if as_of else timezone.now()


@shared_task(name="points.expire_points")
def expire_points(as_of: str | None = None, batch_size: int = 5000) -> dict:
    """Expire every lot due as of `as_of` (ISO 8601, default now)."""
    run = services.run_expiry(as_of=_moment(as_of), batch_size=batch_size)
    return {"lots": run.lots, "points": run.points, "chunks": run.chunks}


@shared_task(name="points.release_pending_points")
def release_pending_points(as_of: str | None = None, batch_size: int = 5000) -> dict:
    """Make pending points available whose return window ended by `as_of` (default now)."""
    run = services.run_release(as_of=_moment(as_of), batch_size=batch_size)
    return {"lots": run.lots, "points": run.points, "chunks": run.chunks}


@shared_task(name="points.check_ledger")
def check_ledger() -> int:
    """Check the ledger invariant; logs every mismatch as an error and returns how many."""
    mismatches = services.check_ledger_invariants()
    for mismatch in mismatches:
        logger.error("ledger mismatch: %s", mismatch)
    return len(mismatches)


@shared_task(name="points.deliver_webhooks")
def deliver_webhooks(as_of: str | None = None) -> dict:
    """Fan new outbox events out to webhook endpoints, then send the deliveries due by `as_of`."""
    run = webhooks.deliver_webhooks(now=_moment(as_of))
    return {
        "events": run.fan_out.events,
        "queued": run.fan_out.deliveries,
        "attempts": run.send.attempts,
        "delivered": run.send.delivered,
        "failed": run.send.failed,
        "gave_up": run.send.gave_up,
        "endpoints_disabled": run.send.endpoints_disabled,
    }


@shared_task(name="points.purge_webhook_deliveries")
def purge_webhook_deliveries(as_of: str | None = None) -> int:
    """Delete finished webhook deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS."""
    keep = timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    return webhooks.purge_deliveries(before=_moment(as_of) - keep)


@shared_task(name="points.run_bulk_grant")
def run_bulk_grant(grant_id: int, chunk_size: int = 500) -> dict:
    """Grant the pending rows of a bulk grant (queued on upload or approval; safe to re-run)."""
    run = grants.run_bulk_grant(grant_id=grant_id, chunk_size=chunk_size)
    return {
        "grant": grant_id,
        "state": run.grant.state,
        "granted": run.granted,
        "skipped": run.skipped,
    }


@shared_task(name="points.build_report_export")
def build_report_export(export_id: int) -> str:
    """Write a queued report export to its file (points.report_exports)."""
    from points import report_exports

    return report_exports.build_report_export(export_id=export_id).state


@shared_task(name="points.close_settlement_month")
def close_settlement_month(month: str | None = None) -> str:
    """Close `month` (YYYY-MM; default: last month) of coalition settlement. Not scheduled by
    default: finance decides when a month is final (a beat entry on e.g. the 3rd can)."""
    from datetime import date, timedelta

    from points import settlement
    from points.models import ProgrammeSettings

    if month:
        chosen = date.fromisoformat(f"{month}-01")
    else:
        today = timezone.localdate(timezone=ProgrammeSettings.get().zone)
        chosen = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return str(settlement.close_settlement_month(month=chosen))
