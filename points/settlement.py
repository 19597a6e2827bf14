"""Coalition settlement between merchants (docs/adr/0015-reports-and-settlement.md).

Points issued at merchant A (the lot's partner) and spent or redeemed at merchant B (the
outgoing entry's partner, linked to the lot by its allocations) make A owe B their value; a
give-back of those points (a cancelled redemption, a refunded point payment) undoes it. A
month's flows between two parties are netted into one line: `payer` pays `payee`.

Which entries a statement settles: every spending, redeeming or give-back entry created before
the end of the month that no earlier statement settled (`SettledEntry`, unique per entry). An
entry of a closed month that commits after the close (its transaction began before) is thus
settled by the next statement, and a closed statement never changes: the database refuses
UPDATE and DELETE on statements, lines and settled entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty_site.db_router import replica_connection
from points.exceptions import SettlementRefused
from points.models import Partner, ProgrammeSettings, SettlementLine, SettlementStatement

# A statement looks this far before the previous statement's month for entries that arrived
# late. Ledger transactions last seconds: an entry committed a month after it began is not real.
LATE_ENTRY_WINDOW = timedelta(days=31)
CENT = Decimal("0.01")

_DUE = """
due AS (
    SELECT e.id, e.kind, e.partner_id, e.created_at
      FROM points_entry e
      LEFT JOIN points_entry r ON r.id = e.related_entry_id
     WHERE e.created_at < %(period_end)s AND e.created_at >= %(lower)s::timestamptz
       AND (e.kind IN ('spend', 'redeem')
            OR (e.kind = 'reverse' AND r.kind IN ('spend', 'redeem')))
       AND NOT EXISTS (SELECT 1 FROM points_settledentry s WHERE s.entry_id = e.id)
),
flows AS (
    -- Outgoing entries take from lots (negative allocations); give-backs return to them.
    SELECT l.partner_id AS issuer_id, d.partner_id AS user_id, -sum(a.points) AS points
      FROM due d
      JOIN points_allocation a ON a.entry_id = d.id
      JOIN points_lot l ON l.id = a.lot_id
     WHERE d.kind IN ('spend', 'redeem') OR a.points > 0
     GROUP BY 1, 2
)"""

_CLOSE_SQL = f"""
WITH {_DUE},
settled AS (
    INSERT INTO points_settledentry (entry_id, statement_id)
    SELECT id, %(statement_id)s FROM due
    RETURNING entry_id
)
SELECT 'flow', issuer_id, user_id, points FROM flows
UNION ALL
SELECT 'count', (SELECT count(*) FROM settled),
       (SELECT count(*) FROM due WHERE created_at < %(period_start)s), NULL
"""

_PREVIEW_SQL = f"""
WITH {_DUE}
SELECT 'flow', issuer_id, user_id, points FROM flows
UNION ALL
SELECT 'count', (SELECT count(*) FROM due),
       (SELECT count(*) FROM due WHERE created_at < %(period_start)s), NULL
"""


@dataclass
class SettlementFigures:
    """A month's netted lines, before (preview) or as it was closed."""

    month: date
    period_start: datetime
    period_end: datetime
    point_value: Decimal
    currency: str
    entries: int = 0
    late_entries: int = 0
    points_used_elsewhere: int = 0
    lines: list[dict] = field(default_factory=list)

    @property
    def amount_settled(self) -> Decimal:
        return sum((line["amount"] for line in self.lines), Decimal("0"))


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_bounds(month: date, programme: ProgrammeSettings | None = None) -> tuple[datetime, ...]:
    """[start, end) of a calendar month in the programme's time zone."""
    zone = (programme or ProgrammeSettings.get()).zone
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    following = next_month(month)
    return start, datetime(following.year, following.month, 1, tzinfo=zone)


def _party_key(partner_id: int | None) -> tuple[bool, int]:
    return (partner_id is not None, partner_id or 0)


def net_flows(flows: dict[tuple[int | None, int | None], int], point_value: Decimal) -> list[dict]:
    """One line per pair of parties: who pays whom, for how many points, how much money.

    flows[(issuer, user)] = points issued by `issuer` used at `user` (net of give-backs).
    """
    pairs = {
        tuple(sorted((issuer, user), key=_party_key)) for issuer, user in flows if issuer != user
    }
    lines = []
    for first, second in sorted(pairs, key=lambda pair: tuple(map(_party_key, pair))):
        first_owes = flows.get((first, second), 0)  # first's points used at second
        second_owes = flows.get((second, first), 0)
        if not first_owes and not second_owes:
            continue
        if first_owes >= second_owes:
            payer, payee, owed, offset = first, second, first_owes, second_owes
        else:
            payer, payee, owed, offset = second, first, second_owes, first_owes
        net = owed - offset
        lines.append(
            {
                "payer_id": payer,
                "payee_id": payee,
                "payer_points_used_at_payee": owed,
                "payee_points_used_at_payer": offset,
                "net_points": net,
                "amount": (Decimal(net) * point_value).quantize(CENT, rounding=ROUND_HALF_UP),
            }
        )
    return lines


def _lower_bound(month: date) -> str | datetime:
    previous = SettlementStatement.objects.filter(month__lt=month).order_by("-month").first()
    if previous is None:
        return "-infinity"
    return previous.period_start - LATE_ENTRY_WINDOW


def _figures_from_rows(figures: SettlementFigures, rows, *, first: bool) -> SettlementFigures:
    """`first`: the first statement, which sweeps everything before its month (not "late")."""
    flows: dict[tuple[int | None, int | None], int] = {}
    for tag, issuer, user, points in rows:
        if tag == "count":
            figures.entries = int(issuer)
            figures.late_entries = 0 if first else int(user)
        elif points:
            flows[(issuer, user)] = int(points)
    figures.points_used_elsewhere = sum(
        points for (issuer, user), points in flows.items() if issuer != user
    )
    figures.lines = net_flows(flows, figures.point_value)
    return figures


def _empty_figures(month: date) -> SettlementFigures:
    programme = ProgrammeSettings.get()
    start, end = month_bounds(month, programme)
    return SettlementFigures(
        month=month,
        period_start=start,
        period_end=end,
        point_value=programme.point_value,
        currency=programme.currency,
    )


def settlement_preview(*, month: date) -> SettlementFigures:
    """What closing `month` now would settle (nothing is written)."""
    month = first_of_month(month)
    figures = _empty_figures(month)
    lower = _lower_bound(month)
    with replica_connection().cursor() as cursor:
        cursor.execute(
            _PREVIEW_SQL,
            {
                "period_start": figures.period_start,
                "period_end": figures.period_end,
                "lower": lower,
            },
        )
        return _figures_from_rows(figures, cursor.fetchall(), first=lower == "-infinity")


def statement_figures(*, statement: SettlementStatement) -> list[dict]:
    """A closed statement's lines as rows (payer and payee names resolved)."""
    return [
        {
            "month": statement.month,
            "payer": party_name(line.payer),
            "payee": party_name(line.payee),
            "payer_points_used_at_payee": line.payer_points_used_at_payee,
            "payee_points_used_at_payer": line.payee_points_used_at_payer,
            "net_points": line.net_points,
            "amount": line.amount,
            "currency": statement.currency,
        }
        for line in statement.lines.select_related("payer", "payee").order_by("id")
    ]


def party_name(partner: Partner | None) -> str:
    return partner.name if partner is not None else _("the programme (no merchant)")


def next_month_to_close() -> date | None:
    """The month after the last closed statement (None before the first is closed)."""
    latest = SettlementStatement.objects.order_by("-month").values_list("month", flat=True)
    latest = latest.first()
    return next_month(latest) if latest else None


@transaction.atomic
def close_settlement_month(
    *, month: date, closed_by=None, now: datetime | None = None
) -> SettlementStatement:
    """Settle every unsettled spending, redeeming and give-back entry created before the end of
    `month` into a new, unchangeable statement with one netted line per pair of parties.

    Months close in order, each once, and only when over (`SettlementRefused`). The entries are
    chosen, marked settled and summed in one statement, so an entry committing meanwhile is
    either in this statement entirely or left for the next one.
    """
    month = first_of_month(month)
    now = now or timezone.now()
    with connection.cursor() as cursor:
        # One closer at a time: the order check below must see the last close.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('points.settlement'))")
    figures = _empty_figures(month)
    if figures.period_end > now:
        raise SettlementRefused(
            _("%(month)s is not over yet.") % {"month": month.strftime("%Y-%m")}, month=str(month)
        )
    if SettlementStatement.objects.filter(month=month).exists():
        raise SettlementRefused(
            _("%(month)s is already closed.") % {"month": month.strftime("%Y-%m")},
            month=str(month),
        )
    expected = next_month_to_close()
    if expected is not None and month != expected:
        raise SettlementRefused(
            _("Months close in order: close %(expected)s first.")
            % {"expected": expected.strftime("%Y-%m")}
            if month > expected
            else _("%(month)s was settled by a later statement.")
            % {"month": month.strftime("%Y-%m")},
            month=str(month),
        )
    lower = _lower_bound(month)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('points_settlementstatement', 'id'))")
        statement_id = cursor.fetchone()[0]
        # The settled entries reference the statement before it exists: Django's foreign keys
        # are checked at commit (DEFERRABLE INITIALLY DEFERRED), and a statement is never
        # updated, so its totals must be known before it is inserted.
        cursor.execute(
            _CLOSE_SQL,
            {
                "statement_id": statement_id,
                "period_start": figures.period_start,
                "period_end": figures.period_end,
                "lower": lower,
            },
        )
        _figures_from_rows(figures, cursor.fetchall(), first=lower == "-infinity")
    statement = SettlementStatement.objects.create(
        id=statement_id,
        month=month,
        period_start=figures.period_start,
        period_end=figures.period_end,
        point_value=figures.point_value,
        currency=figures.currency,
        entries=figures.entries,
        late_entries=figures.late_entries,
        points_used_elsewhere=figures.points_used_elsewhere,
        amount_settled=figures.amount_settled,
        closed_at=timezone.now(),
        closed_by=closed_by,
    )
    SettlementLine.objects.bulk_create(
        SettlementLine(statement=statement, **line) for line in figures.lines
    )
    return statement
