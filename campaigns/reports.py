"""Campaign return for the admin's Reports page (registry: loyalty_site.reports).

Cost: the points each campaign added (its `campaign:<code>` lines in the stored events) at the
point value. Return: against the control arm where the campaign targets an A/B arm whose
experiment has one (spend per member of the targeted arm minus the control's, times the arm's
members, minus the cost); otherwise the spend of the members it reached is shown for reference.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from campaigns.engine import arm_ranges
from campaigns.experiments import _BUCKET_SQL
from campaigns.models import Campaign
from loyalty_site.db_router import replica_connection
from loyalty_site.reports import Column, Report, ReportFilters, register
from points.models import ProgrammeSettings
from points.reports import money

_COST_SQL = """
SELECT substr(line->>'rule', 10) AS code, count(DISTINCT e.id), count(DISTINCT e.member_id),
       sum((line->>'points')::bigint), array_agg(DISTINCT e.member_id)
  FROM campaigns_event e, jsonb_array_elements(e.rules_applied) AS line
 WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
   AND line->>'rule' LIKE 'campaign:%%'
   AND (%(partner_id)s::bigint IS NULL OR e.partner_id = %(partner_id)s)
 GROUP BY 1
"""

_SPEND_OF_MEMBERS_SQL = """
SELECT COALESCE(sum(o.amount - o.refunded_amount), 0)
  FROM points_order o JOIN points_account a ON a.id = o.account_id
 WHERE a.member_id = ANY(%(members)s) AND o.amount IS NOT NULL
   AND o.created_at >= %(start)s AND o.created_at < %(end)s
"""

_SPEND_PER_ARM_MEMBER_SQL = f"""
WITH arm_members AS (
    SELECT m.id FROM members_member m
     WHERE {_BUCKET_SQL} >= %(low)s AND {_BUCKET_SQL} < %(high)s
)
SELECT (SELECT count(*) FROM arm_members),
       COALESCE((SELECT sum(o.amount - o.refunded_amount)
                   FROM points_order o JOIN points_account a ON a.id = o.account_id
                  WHERE a.member_id IN (SELECT id FROM arm_members) AND o.amount IS NOT NULL
                    AND o.created_at >= %(start)s AND o.created_at < %(end)s), 0)
"""


def _arm_spend(arm, low: int, high: int, start, end) -> tuple[int, Decimal]:
    with replica_connection().cursor() as cursor:
        cursor.execute(
            _SPEND_PER_ARM_MEMBER_SQL,
            {"code": arm.experiment.code, "low": low, "high": high, "start": start, "end": end},
        )
        members, spend = cursor.fetchone()
    return members, Decimal(spend)


def campaign_return(filters: ReportFilters) -> list[dict]:
    programme = ProgrammeSettings.get()
    start = datetime.combine(filters.date_from, time.min, tzinfo=programme.zone)
    end = datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=programme.zone)
    window = {"start": start, "end": end, "partner_id": filters.partner_id}
    with replica_connection().cursor() as cursor:
        cursor.execute(_COST_SQL, window)
        costs = {row[0]: row[1:] for row in cursor.fetchall()}
    campaigns = Campaign.objects.filter(code__in=costs).select_related("experiment_arm__experiment")
    rows = []
    for campaign in sorted(campaigns, key=lambda c: -costs[c.code][2]):
        events, reached, points, member_ids = costs[campaign.code]
        cost = money(points, programme.point_value)
        with replica_connection().cursor() as cursor:
            cursor.execute(_SPEND_OF_MEMBERS_SQL, {"members": member_ids, **window})
            reached_spend = Decimal(cursor.fetchone()[0])
        row = {
            "campaign": campaign.code,
            "name": campaign.name,
            "events": events,
            "members": reached,
            "points": points,
            "cost": cost,
            "spend": reached_spend,
            "spend_per_member": (reached_spend / reached).quantize(Decimal("0.01")),
            "control_spend_per_member": None,
            "uplift_per_member": None,
            "return": None,
        }
        arm = campaign.experiment_arm
        if arm is not None:
            ranges = {a.pk: (a, low, high) for a, low, high in arm_ranges(arm.experiment)}
            control = next((r for r in ranges.values() if r[0].is_control), None)
            if control is not None and control[0].pk != arm.pk and arm.pk in ranges:
                treated_n, treated_spend = _arm_spend(*ranges[arm.pk], start, end)
                control_n, control_spend = _arm_spend(*control, start, end)
                if treated_n and control_n:
                    per_treated = treated_spend / treated_n
                    per_control = control_spend / control_n
                    uplift = per_treated - per_control
                    row["control_spend_per_member"] = per_control.quantize(Decimal("0.01"))
                    row["uplift_per_member"] = uplift.quantize(Decimal("0.01"))
                    row["return"] = (uplift * treated_n - cost).quantize(Decimal("0.01"))
        rows.append(row)
    return rows


register(
    Report(
        key="campaign-return",
        title=_("Campaign return"),
        description=_(
            "Points each campaign added and their cost in money, the spend of the members it "
            "reached, and, for a campaign aimed at an A/B arm with a control arm, the spend per "
            "member above the control's and the return (that uplift times the arm's members, "
            "minus the cost)."
        ),
        columns=[
            Column("campaign", _("campaign"), "text"),
            Column("name", _("name"), "text"),
            Column("events", _("events")),
            Column("members", _("members reached")),
            Column("points", _("points")),
            Column("cost", _("cost"), "money"),
            Column("spend", _("spend of members reached"), "money"),
            Column("spend_per_member", _("spend per member reached"), "money"),
            Column("control_spend_per_member", _("control arm: spend per member"), "money"),
            Column("uplift_per_member", _("uplift per member"), "money"),
            Column("return", _("return"), "money"),
        ],
        rows=campaign_return,
        order=70,
    )
)
