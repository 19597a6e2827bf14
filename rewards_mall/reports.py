"""The mall's reports for the admin's Reports page (registry: loyalty_site.reports)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.db.models import Count, Q, Sum
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from loyalty_site.reports import Column, Report, ReportFilters, register
from points.models import ProgrammeSettings
from points.reports import money
from rewards_mall.models import Redemption

TOP_REWARDS = 50


def top_rewards(filters: ReportFilters) -> list[dict]:
    """The most redeemed rewards in the range (by units, cancelled orders left out), with the
    points they took, their value at the point value and the cash paid on top; with a merchant,
    the redemptions that merchant placed."""
    programme = ProgrammeSettings.get()
    start = datetime.combine(filters.date_from, time.min, tzinfo=programme.zone)
    end = datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=programme.zone)
    redemptions = Redemption.objects.filter(placed_at__gte=start, placed_at__lt=end)
    if filters.partner_id is not None:
        redemptions = redemptions.filter(partner_id=filters.partner_id)
    kept = ~Q(status=Redemption.Status.CANCELLED)
    rows = (
        redemptions.values("reward__code", "reward__name_zh", "reward__name_en")
        .annotate(
            orders=Count("id", filter=kept),
            units=Sum("quantity", filter=kept, default=0),
            points=Sum("points_spent", filter=kept, default=0),
            cash=Sum("cash_due", filter=kept, default=0),
            cancelled=Count("id", filter=~kept),
        )
        .order_by("-units", "-points", "reward__code")[:TOP_REWARDS]
    )
    english = (get_language() or "").startswith("en")
    return [
        {
            "rank": number,
            "reward": row["reward__code"],
            "name": (row["reward__name_en"] if english and row["reward__name_en"] else None)
            or row["reward__name_zh"],
            "orders": row["orders"],
            "units": row["units"],
            "points": row["points"],
            "points_value": money(row["points"], programme.point_value),
            "cash": row["cash"],
            "cancelled": row["cancelled"],
        }
        for number, row in enumerate(rows, start=1)
    ]


register(
    Report(
        key="top-rewards",
        title=_("Top rewards"),
        description=_(
            "The 50 most redeemed rewards in the date range, by units (cancelled redemptions "
            "not counted); with a merchant, the redemptions it placed."
        ),
        columns=[
            Column("rank", _("rank")),
            Column("reward", _("reward"), "text"),
            Column("name", _("name"), "text"),
            Column("orders", _("redemptions")),
            Column("units", _("units")),
            Column("points", _("points")),
            Column("points_value", _("value of the points"), "money"),
            Column("cash", _("cash paid"), "money"),
            Column("cancelled", _("cancelled redemptions")),
        ],
        rows=top_rewards,
        order=50,
    )
)
