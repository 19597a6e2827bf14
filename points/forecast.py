"""Liability forecast: outstanding points and their cost over the next months, by Monte Carlo
over the programme's own monthly history (docs/adr/0015).

Each past month gives three figures: points issued (new lots), and the shares of the points
held in the month (opening balance plus issued) that were used (spent, redeemed, reversed, net
of give-backs) and that expired. A simulated future month draws one past month at random (its
three figures together, so their correlation is kept: a bootstrap) and applies it to the
simulated balance. Plain Python `random` (no numpy): 2,000 paths x 12 months is milliseconds.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from loyalty_site.db_router import replica_connection
from points.models import ProgrammeSettings
from points.reports import breakage_rate, money, outstanding_points
from points.settlement import next_month

_MONTHLY_SQL = """
SELECT month, kind, sum(points) FROM (
    SELECT date_trunc('month', l.created_at AT TIME ZONE %(tz)s)::date AS month,
           'issued' AS kind, sum(l.amount) AS points
      FROM points_lot l WHERE l.created_at >= %(start)s
     GROUP BY 1
    UNION ALL
    SELECT date_trunc('month', e.created_at AT TIME ZONE %(tz)s)::date,
           CASE WHEN e.kind = 'expire' THEN 'expired' ELSE 'used' END, -sum(a.points)
      FROM points_entry e JOIN points_allocation a ON a.entry_id = e.id
     WHERE e.created_at >= %(start)s
     GROUP BY 1, 2
) monthly
GROUP BY month, kind
"""


@dataclass
class MonthOfHistory:
    month: date
    opening: int
    issued: int
    used: int
    expired: int

    @property
    def held(self) -> int:
        """Points that could leave in the month: the opening balance and what was issued."""
        return self.opening + self.issued

    @property
    def used_share(self) -> float:
        return min(max(self.used / self.held, 0.0), 1.0) if self.held > 0 else 0.0

    @property
    def expired_share(self) -> float:
        return min(max(self.expired / self.held, 0.0), 1.0) if self.held > 0 else 0.0

    @property
    def leaving_share(self) -> float:
        return min(self.used_share + self.expired_share, 1.0)


@dataclass
class Forecast:
    start_outstanding: int
    point_value: Decimal
    currency: str
    breakage_rate: Decimal
    history: list[MonthOfHistory]
    months: list[date] = field(default_factory=list)
    p10: list[int] = field(default_factory=list)
    p50: list[int] = field(default_factory=list)
    p90: list[int] = field(default_factory=list)
    deterministic: list[int] = field(default_factory=list)
    simulations: int = 0

    def cost(self, points: int) -> Decimal:
        """Expected cost of outstanding points: their value less the expected breakage."""
        return money(Decimal(points) * (1 - self.breakage_rate), self.point_value)

    @property
    def rows(self) -> list[dict]:
        return [
            {
                "month": month,
                "p10": low,
                "p50": mid,
                "p90": high,
                "deterministic": plain,
                "p10_cost": self.cost(low),
                "p50_cost": self.cost(mid),
                "p90_cost": self.cost(high),
            }
            for month, low, mid, high, plain in zip(
                self.months, self.p10, self.p50, self.p90, self.deterministic, strict=True
            )
        ]


def monthly_history(
    *, months: int = 12, now: datetime | None = None, outstanding: int | None = None
) -> list[MonthOfHistory]:
    """The last `months` whole calendar months (programme time zone), oldest first, each with
    its opening outstanding points (active and pending lots), issued, used and expired.
    `outstanding`: today's outstanding points when the caller has them already."""
    programme = ProgrammeSettings.get()
    now = now or timezone.now()
    this_month = timezone.localdate(now, timezone=programme.zone).replace(day=1)
    first = this_month
    for _ in range(months):
        first = _previous_month(first)
    start = datetime(first.year, first.month, 1, tzinfo=programme.zone)
    if outstanding is None:
        outstanding = outstanding_points()
    with replica_connection().cursor() as cursor:
        cursor.execute(_MONTHLY_SQL, {"tz": programme.time_zone, "start": start})
        figures: dict[date, dict[str, int]] = {}
        for month, kind, points in cursor.fetchall():
            figures.setdefault(month, {})[kind] = int(points)
    # Walk back from today's outstanding points: opening = closing - issued + used + expired.
    closing = outstanding
    for month, values in figures.items():
        if month >= this_month:
            closing -= values.get("issued", 0) - values.get("used", 0) - values.get("expired", 0)
    history = []
    month = this_month
    for _ in range(months):
        month = _previous_month(month)
        values = figures.get(month, {})
        issued, used = values.get("issued", 0), values.get("used", 0)
        expired = values.get("expired", 0)
        opening = closing - issued + used + expired
        history.append(MonthOfHistory(month, opening, issued, used, expired))
        closing = opening
    history.reverse()
    return history


def _previous_month(month: date) -> date:
    return (month.replace(day=1) - timedelta(days=1)).replace(day=1)


def _percentile(sorted_values: list[int], share: float) -> int:
    """Nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return sorted_values[index]


def liability_forecast(
    *,
    horizon: int = 12,
    history_months: int = 12,
    simulations: int = 2000,
    seed: int | None = None,
    now: datetime | None = None,
) -> Forecast | None:
    """P10 / P50 / P90 of outstanding points at the end of each of the next `horizon` months,
    and the deterministic projection with the average history; None without usable history
    (no month that held points). `seed` makes the figures repeatable."""
    programme = ProgrammeSettings.get()
    now = now or timezone.now()
    start = outstanding_points()
    history = [
        month
        for month in monthly_history(months=history_months, now=now, outstanding=start)
        if month.held > 0
    ]
    if not history:
        return None
    forecast = Forecast(
        start_outstanding=start,
        point_value=programme.point_value,
        currency=programme.currency,
        breakage_rate=breakage_rate(now=now),
        history=history,
        simulations=simulations,
    )
    month = timezone.localdate(now, timezone=programme.zone).replace(day=1)
    for _ in range(horizon):
        month = next_month(month)
        forecast.months.append(month)

    rng = random.Random(seed)
    paths = [[0] * horizon for _ in range(simulations)]
    for path in paths:
        balance = float(start)
        for step in range(horizon):
            past = rng.choice(history)
            balance = (balance + past.issued) * (1 - past.leaving_share)
            path[step] = round(balance)
    for step in range(horizon):
        values = sorted(path[step] for path in paths)
        forecast.p10.append(_percentile(values, 0.10))
        forecast.p50.append(_percentile(values, 0.50))
        forecast.p90.append(_percentile(values, 0.90))

    issued = statistics.fmean(m.issued for m in history)
    leaving = statistics.fmean(m.leaving_share for m in history)
    balance = float(start)
    for _ in range(horizon):
        balance = (balance + issued) * (1 - leaving)
        forecast.deterministic.append(round(balance))
    return forecast
