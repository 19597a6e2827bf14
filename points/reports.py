"""Ledger reports for finance (registered in loyalty_site.reports; docs/adr/0015).

Set-based SQL over points_entry, points_allocation and points_lot: one query per report per
date range, grouped by day in the programme's time zone. "At a merchant" means the entry's
partner for issuing, spending and redeeming, and the lot's partner (who issued the points) for
expiry and for outstanding points.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty_site.db_router import replica_connection
from loyalty_site.reports import Column, Report, ReportFilters, register
from points.models import ProgrammeSettings, SettlementStatement
from points.settlement import first_of_month, statement_figures

CENT = Decimal("0.01")
# Breakage is measured over lots whose expiry date fell in this many days before today.
BREAKAGE_HISTORY_DAYS = 365


def money(points: int | Decimal, point_value: Decimal) -> Decimal:
    return (Decimal(points) * point_value).quantize(CENT, rounding=ROUND_HALF_UP)


def day_range(filters: ReportFilters, programme: ProgrammeSettings) -> tuple[datetime, datetime]:
    """[start of date_from, start of the day after date_to) in the programme's time zone."""
    zone = programme.zone
    start = datetime.combine(filters.date_from, time.min, tzinfo=zone)
    end = datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def _days(filters: ReportFilters) -> list[date]:
    return [filters.date_from + timedelta(days=n) for n in range(filters.days)]


# --- Issuance, spending, redemption and expiry by day ------------------------------------------
_ACTIVITY_SQL = """
SELECT (e.created_at AT TIME ZONE %(tz)s)::date AS day,
       COALESCE(sum(e.amount) FILTER (WHERE e.kind = 'earn'), 0),
       COALESCE(sum(e.amount) FILTER (WHERE e.kind = 'adjust'), 0),
       COALESCE(-sum(e.amount) FILTER (WHERE e.kind = 'spend'), 0),
       COALESCE(-sum(e.amount) FILTER (WHERE e.kind = 'redeem'), 0),
       COALESCE(sum(e.amount) FILTER (WHERE e.kind = 'reverse'
                                        AND r.kind IN ('spend', 'redeem')), 0),
       COALESCE(-sum(e.amount) FILTER (WHERE e.kind = 'reverse'
                                         AND r.kind IS DISTINCT FROM 'spend'
                                         AND r.kind IS DISTINCT FROM 'redeem'), 0),
       COALESCE(sum(e.amount) FILTER (WHERE e.kind IN ('transfer', 'convert')), 0)
  FROM points_entry e
  LEFT JOIN points_entry r ON r.id = e.related_entry_id AND e.kind = 'reverse'
 WHERE e.created_at >= %(start)s AND e.created_at < %(end)s
   AND e.kind NOT IN ('expire', 'release')
   AND (%(partner)s::bigint IS NULL OR e.partner_id = %(partner)s::bigint)
 GROUP BY 1
"""

# Expired points by the merchant that issued them (the lots' partner).
_EXPIRED_SQL = """
SELECT (e.created_at AT TIME ZONE %(tz)s)::date AS day, -sum(a.points)
  FROM points_entry e
  JOIN points_allocation a ON a.entry_id = e.id
  JOIN points_lot l ON l.id = a.lot_id
 WHERE e.kind = 'expire' AND e.created_at >= %(start)s AND e.created_at < %(end)s
   AND (%(partner)s::bigint IS NULL OR l.partner_id = %(partner)s::bigint)
 GROUP BY 1
"""


def _params(filters: ReportFilters, programme: ProgrammeSettings) -> dict:
    start, end = day_range(filters, programme)
    return {"tz": programme.time_zone, "start": start, "end": end, "partner": filters.partner_id}


def points_activity_by_day(filters: ReportFilters) -> list[dict]:
    """Per day: issued (earned, pending included), adjusted (net), spent, redeemed, given back
    (cancelled redemptions, refunded point payments), reversed (refunds of earned points),
    expired, other (transfer, convert), the net change and the value of what was issued."""
    programme = ProgrammeSettings.get()
    params = _params(filters, programme)
    with replica_connection().cursor() as cursor:
        cursor.execute(_ACTIVITY_SQL, params)
        activity = {row[0]: [int(value) for value in row[1:]] for row in cursor.fetchall()}
        cursor.execute(_EXPIRED_SQL, params)
        expired = {day: int(points) for day, points in cursor.fetchall()}
    rows = []
    for day in _days(filters):
        issued, adjusted, spent, redeemed, returned, reversed_, other = activity.get(day, [0] * 7)
        gone = expired.get(day, 0)
        rows.append(
            {
                "day": day,
                "issued": issued,
                "adjusted": adjusted,
                "spent": spent,
                "redeemed": redeemed,
                "returned": returned,
                "reversed": reversed_,
                "expired": gone,
                "other": other,
                "net": issued + adjusted - spent - redeemed + returned - reversed_ - gone + other,
                "issued_value": money(issued, programme.point_value),
            }
        )
    return rows


def _activity_summary(filters: ReportFilters, rows: list[dict]) -> list[tuple]:
    programme = ProgrammeSettings.get()
    issued = sum(row["issued"] for row in rows)
    used = sum(row["spent"] + row["redeemed"] - row["returned"] for row in rows)
    expired = sum(row["expired"] for row in rows)
    return [
        (_("Points issued"), f"{issued:,}"),
        (_("Points spent or redeemed (net)"), f"{used:,}"),
        (_("Points expired"), f"{expired:,}"),
        (_("Value issued"), f"{money(issued, programme.point_value)} {programme.currency}"),
    ]


register(
    Report(
        key="points-activity",
        title=_("Issuance, spending, redemption and expiry by day"),
        description=_(
            "Points issued, spent, redeemed, given back, reversed by refunds and expired, per "
            "day. With a merchant: what happened at that merchant; expiry counts the points "
            "that merchant issued."
        ),
        columns=[
            Column("day", _("day"), "date"),
            Column("issued", _("issued")),
            Column("adjusted", _("adjusted")),
            Column("spent", _("spent")),
            Column("redeemed", _("redeemed")),
            Column("returned", _("given back")),
            Column("reversed", _("reversed by refunds")),
            Column("expired", _("expired")),
            Column("other", _("transferred or converted")),
            Column("net", _("net change")),
            Column("issued_value", _("value issued"), "money"),
        ],
        rows=points_activity_by_day,
        summary=_activity_summary,
        by_day=True,
        order=10,
    )
)


# --- Liability in money -----------------------------------------------------------------------
_OUTSTANDING_NOW_SQL = """
SELECT COALESCE(sum(remaining), 0) FROM points_lot
 WHERE state IN ('active', 'pending')
   AND (%(partner)s::bigint IS NULL OR partner_id = %(partner)s::bigint)
"""

# Changes of lots' remaining points per day since `start`: a new lot adds its amount, an
# allocation adds its (mostly negative) points on the day of its entry.
_LOT_CHANGES_SQL = """
SELECT day, sum(points) FROM (
    SELECT (l.created_at AT TIME ZONE %(tz)s)::date AS day, sum(l.amount) AS points
      FROM points_lot l
     WHERE l.created_at >= %(start)s
       AND (%(partner)s::bigint IS NULL OR l.partner_id = %(partner)s::bigint)
     GROUP BY 1
    UNION ALL
    SELECT (e.created_at AT TIME ZONE %(tz)s)::date, sum(a.points)
      FROM points_entry e
      JOIN points_allocation a ON a.entry_id = e.id
      JOIN points_lot l ON l.id = a.lot_id
     WHERE e.created_at >= %(start)s
       AND (%(partner)s::bigint IS NULL OR l.partner_id = %(partner)s::bigint)
     GROUP BY 1
) changes
GROUP BY day
"""

_BREAKAGE_SQL = """
WITH due AS (
    SELECT l.id, l.amount FROM points_lot l
     WHERE l.expires_at < %(now)s AND l.expires_at >= %(since)s AND l.state <> 'pending'
       AND (%(partner)s::bigint IS NULL OR l.partner_id = %(partner)s::bigint)
)
SELECT COALESCE((SELECT sum(amount) FROM due), 0),
       COALESCE((SELECT -sum(a.points) FROM points_allocation a
                   JOIN points_entry e ON e.id = a.entry_id
                  WHERE a.lot_id IN (SELECT id FROM due) AND e.kind = 'expire'), 0)
"""


def breakage_rate(*, partner_id: int | None = None, now: datetime | None = None) -> Decimal:
    """Share of points that expired unused, over the lots whose expiry date fell in the last
    BREAKAGE_HISTORY_DAYS days (their fate is known); 0 without such history."""
    now = now or timezone.now()
    with replica_connection().cursor() as cursor:
        cursor.execute(
            _BREAKAGE_SQL,
            {
                "now": now,
                "since": now - timedelta(days=BREAKAGE_HISTORY_DAYS),
                "partner": partner_id,
            },
        )
        issued, expired = cursor.fetchone()
    if not issued:
        return Decimal("0")
    return (Decimal(int(expired)) / Decimal(int(issued))).quantize(Decimal("0.0001"))


def outstanding_points(*, partner_id: int | None = None) -> int:
    """Points in active and pending lots now (the merchant's lots if one is given)."""
    with replica_connection().cursor() as cursor:
        cursor.execute(_OUTSTANDING_NOW_SQL, {"partner": partner_id})
        return int(cursor.fetchone()[0])


def outstanding_by_day(filters: ReportFilters) -> dict[date, int]:
    """Points in active and pending lots at the end of each day (the merchant's lots if one is
    chosen): today's remaining minus what changed after that day."""
    programme = ProgrammeSettings.get()
    params = _params(filters, programme)
    now_outstanding = outstanding_points(partner_id=params["partner"])
    with replica_connection().cursor() as cursor:
        cursor.execute(_LOT_CHANGES_SQL, params)
        changes = sorted(((day, int(points)) for day, points in cursor.fetchall()), reverse=True)
    # Newest day first, taking off each day's later changes as they are passed: one walk.
    result = {}
    later = taken = 0
    for day in reversed(_days(filters)):
        while taken < len(changes) and changes[taken][0] > day:
            later += changes[taken][1]
            taken += 1
        result[day] = now_outstanding - later
    return dict(sorted(result.items()))


def liability_by_day(filters: ReportFilters) -> list[dict]:
    programme = ProgrammeSettings.get()
    rate = breakage_rate(partner_id=filters.partner_id)
    today = timezone.localdate(timezone=programme.zone)
    rows = []
    for day, points in outstanding_by_day(filters).items():
        if day > today:
            break
        breakage = int((Decimal(points) * rate).to_integral_value(rounding=ROUND_HALF_UP))
        rows.append(
            {
                "day": day,
                "outstanding": points,
                "value": money(points, programme.point_value),
                "breakage_rate": (rate * 100).quantize(CENT),
                "expected_breakage": breakage,
                "expected_cost": money(points - breakage, programme.point_value),
                "currency": programme.currency,
            }
        )
    return rows


def _liability_summary(filters: ReportFilters, rows: list[dict]) -> list[tuple]:
    programme = ProgrammeSettings.get()
    if not rows:
        return []
    last = rows[-1]
    return [
        (_("Outstanding points"), f"{last['outstanding']:,}"),
        (_("Face value"), f"{last['value']} {programme.currency}"),
        (_("Breakage expected from history"), f"{last['breakage_rate']:.2f}%"),
        (_("Expected cost"), f"{last['expected_cost']} {programme.currency}"),
    ]


register(
    Report(
        key="liability",
        title=_("Points liability in money"),
        description=_(
            "Outstanding points (available and pending) at the end of each day, their value at "
            "the point value, and the expected cost after breakage: the share of points that "
            "expired unused among lots whose expiry date fell in the last 12 months."
        ),
        columns=[
            Column("day", _("day"), "date"),
            Column("outstanding", _("outstanding points")),
            Column("value", _("face value"), "money"),
            Column("breakage_rate", _("breakage (%)"), "percent"),
            Column("expected_breakage", _("expected breakage (points)")),
            Column("expected_cost", _("expected cost"), "money"),
            Column("currency", _("currency"), "text"),
        ],
        rows=liability_by_day,
        summary=_liability_summary,
        by_day=True,
        order=20,
    )
)


# --- Settlement lines of closed statements ------------------------------------------------------
def settlement_lines(filters: ReportFilters) -> list[dict]:
    """Lines of the statements of the months in the range; with a merchant, its lines only."""
    statements = SettlementStatement.objects.filter(
        month__gte=first_of_month(filters.date_from), month__lte=filters.date_to
    ).order_by("month")
    rows = []
    for statement in statements:
        for line, row in zip(
            statement.lines.order_by("id"), statement_figures(statement=statement), strict=True
        ):
            if filters.partner_id is None or filters.partner_id in (line.payer_id, line.payee_id):
                rows.append(row)
    return rows


register(
    Report(
        key="settlement",
        title=_("Coalition settlement (closed months)"),
        description=_(
            "The netted lines of the closed settlement statements of the months in the range: "
            "who pays whom for points issued at one merchant and used at another."
        ),
        columns=[
            Column("month", _("month"), "date"),
            Column("payer", _("payer"), "text"),
            Column("payee", _("payee"), "text"),
            Column("payer_points_used_at_payee", _("payer's points used at payee")),
            Column("payee_points_used_at_payer", _("payee's points used at payer")),
            Column("net_points", _("net points")),
            Column("amount", _("amount"), "money"),
            Column("currency", _("currency"), "text"),
        ],
        rows=settlement_lines,
        order=30,
    )
)
