"""Reads on the ledger shared by the API, the admin and the mall."""

from __future__ import annotations

from members.models import Member


def member_points_summary(*, member: Member) -> dict:
    """{"available", "pending", "expiring": [{"amount", "expires_at"}] (next three dates)}.

    Placeholder until the ledger lands (issue 4): every member has no points yet.
    """
    return {"available": 0, "pending": 0, "expiring": []}
