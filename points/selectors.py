"""Reads on the ledger shared by the API, the admin and the mall."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, QuerySet, Sum

from members.models import Member
from points.models import Account, Entry, Lot

EXPIRING_DATES_SHOWN = 3


def _expiring_lots(account_id: int) -> QuerySet:
    # Served by lot_fifo_idx: the account's active lots with points left, soonest expiry first.
    return (
        Lot.objects.filter(
            account_id=account_id,
            state=Lot.State.ACTIVE,
            remaining__gt=0,
            expires_at__isnull=False,
        )
        .values("expires_at")
        .annotate(amount=Sum("remaining"), lots=Count("id"))
        .order_by("expires_at")
    )


def member_points_summary(*, member: Member) -> dict:
    """{"available", "pending", "expiring": [{"amount", "expires_at"}]} in two queries.

    `expiring` lists the next expiry dates (at most three) with the points expiring on each;
    a member without an account yet has no points.
    """
    account = Account.objects.filter(member_id=member.pk).values("id", "available", "pending")
    account = account.first()
    if account is None:
        return {"available": 0, "pending": 0, "expiring": []}
    expiring = [
        {"amount": row["amount"], "expires_at": row["expires_at"]}
        for row in _expiring_lots(account["id"])[:EXPIRING_DATES_SHOWN]
    ]
    return {"available": account["available"], "pending": account["pending"], "expiring": expiring}


def member_ledger(
    *,
    member: Member,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Entry]:
    """The member's entries, newest first; optionally one kind, created in [since, until)."""
    entries = Entry.objects.filter(account__member_id=member.pk).order_by("-id")
    if kind:
        entries = entries.filter(kind=kind)
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    return entries


def expiring_schedule(*, member: Member, limit: int = 12) -> list[dict]:
    """The member's coming expiry dates: [{"expires_at", "amount", "lots"}], soonest first.

    Lots already past their date are listed until the next expiry run takes them.
    """
    account_id = Account.objects.filter(member_id=member.pk).values_list("id", flat=True).first()
    if account_id is None:
        return []
    return list(_expiring_lots(account_id)[:limit])


def bulk_grant_progress(*, grant) -> dict:
    """What the bulk grant's page shows and polls: counters kept exact by the run itself."""
    total = grant.total_rows or 0
    return {
        "state": grant.state,
        "state_label": str(grant.get_state_display()),
        "total": total,
        "done": grant.done_rows,
        "granted": grant.granted_rows,
        "skipped": grant.skipped_rows,
        "granted_points": grant.granted_points,
        "percent": int(100 * grant.done_rows / total) if total else 0,
        "finished": grant.state in ("done", "rejected"),
    }
