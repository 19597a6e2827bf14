"""Members' reports for the admin's Reports page (registry: loyalty_site.reports)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from loyalty_site.db_router import replica_connection
from loyalty_site.reports import Column, Report, ReportFilters, register

# Members by tier, and those of them with ledger activity in the range (at the merchant).
# Reads points tables by name only: members must not import the ledger's models.
_TIER_SQL = """
WITH active AS (
    SELECT DISTINCT a.member_id
      FROM points_entry e JOIN points_account a ON a.id = e.account_id
     WHERE e.created_at >= %(start)s AND e.created_at < %(end)s
       AND e.kind NOT IN ('expire', 'release')
       AND (%(partner)s::bigint IS NULL OR e.partner_id = %(partner)s::bigint)
)
SELECT t.id, t.code, t.name, t.name_en, t.rank,
       count(m.id) FILTER (WHERE m.status <> 'closed'),
       count(m.id) FILTER (WHERE m.status <> 'closed' AND act.member_id IS NOT NULL),
       COALESCE(sum(acc.available + acc.pending)
                FILTER (WHERE m.status <> 'closed' AND act.member_id IS NOT NULL), 0)
  FROM members_tier t
  LEFT JOIN members_member m ON m.tier_id = t.id
  LEFT JOIN active act ON act.member_id = m.id
  LEFT JOIN points_account acc ON acc.member_id = m.id
 GROUP BY t.id
 ORDER BY t.rank, t.id
"""


def tier_distribution(filters: ReportFilters) -> list[dict]:
    """Per tier (by rank): members (closed ones left out), members with ledger activity in the
    range (at the merchant, if one is chosen), their share of all active members and the points
    they hold. Tiers are the members' current tiers."""
    zone = _programme_zone()
    start = datetime.combine(filters.date_from, time.min, tzinfo=zone)
    end = datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=zone)
    with replica_connection().cursor() as cursor:
        cursor.execute(_TIER_SQL, {"start": start, "end": end, "partner": filters.partner_id})
        rows = cursor.fetchall()
    english = (get_language() or "").startswith("en")
    total_active = sum(row[6] for row in rows) or 0
    return [
        {
            "tier": (name_en if english and name_en else name),
            "code": code,
            "rank": rank,
            "members": int(members),
            "active_members": int(active),
            "share": (
                (Decimal(int(active)) * 100 / total_active).quantize(Decimal("0.01"))
                if total_active
                else Decimal("0.00")
            ),
            "points_held": int(points),
        }
        for _id, code, name, name_en, rank, members, active, points in rows
    ]


def _programme_zone():
    # The programme's time zone lives in the ledger's settings table; read it by name.
    import zoneinfo

    with replica_connection().cursor() as cursor:
        cursor.execute("SELECT time_zone FROM points_programmesettings WHERE id = 1")
        row = cursor.fetchone()
    return zoneinfo.ZoneInfo(row[0] if row else settings.TIME_ZONE)


register(
    Report(
        key="tier-distribution",
        title=_("Tier distribution"),
        description=_(
            "Members by current tier (closed accounts left out), and those with points activity "
            "in the date range (at the merchant, if one is chosen), with the points they hold."
        ),
        columns=[
            Column("tier", _("tier"), "text"),
            Column("code", _("code"), "text"),
            Column("rank", _("rank")),
            Column("members", _("members")),
            Column("active_members", _("members active in the range")),
            Column("share", _("share of active members (%)"), "percent"),
            Column("points_held", _("points held by active members")),
        ],
        rows=tier_distribution,
        order=40,
    )
)
