"""Programme health: the nightly rollup of the ledger, the metrics and their alerts.

`compute_health_metrics` is the one service the command, the Celery task and the tests call.
Rollups are set-based (a few INSERT ... SELECT ... GROUP BY over only the days being rolled
up) and incremental: the latest DailyProgrammeRollup day is the "days done" marker, a run adds
the days after it up to yesterday, or recomputes one given day (docs/adr/0014).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.exceptions import CampaignsError
from campaigns.models import (
    DailyMerchantRollup,
    DailyProgrammeRollup,
    HealthAlert,
    HealthMetric,
    HealthMetricValue,
    HealthSettings,
    HealthThreshold,
)
from points.models import Entry
from points.services import programme_settings

logger = logging.getLogger(__name__)

# Entries a member causes: the days a member counts as active.
ACTIVITY_KINDS = (Entry.Kind.EARN, Entry.Kind.SPEND, Entry.Kind.REDEEM)
INACTIVE_DAYS = 30
# Windows of the metrics, in days.
WEEK = 7
BREAKAGE_DAYS = 365
MEMBER_VALUE_DAYS = 30
ROLLUP_LOCK = 0x4845414C  # pg_advisory_xact_lock key: one rollup at a time ("HEAL")
HUNDRED = Decimal(100)


class HealthDayNotClosed(CampaignsError):
    code = "validation_error"
    status = 422
    default_message = gettext_lazy("Only a day that has ended can be rolled up.")


@dataclass
class HealthRun:
    days: list[date]
    merchant_rows: int = 0
    alerts_raised: int = 0
    alerts_recovered: int = 0


def _bounds(first: date, last: date, zone) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the programme's time zone."""
    start = datetime.combine(first, time.min, tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def _first_entry_day(zone) -> date | None:
    # Ids follow insertion order, so the lowest id is the oldest entry (no index on created_at
    # but the BRIN, which cannot answer min()).
    entry = Entry.objects.order_by("id").only("created_at").first()
    return entry.created_at.astimezone(zone).date() if entry else None


MERCHANT_ROLLUP_SQL = """
INSERT INTO campaigns_dailymerchantrollup
    (day, partner_id, issued, spent, redeemed, expired, reversed, returned, net_change,
     active_members, outstanding)
SELECT day, partner_id, sum(issued), sum(spent), sum(redeemed), sum(expired), sum(reversed),
       sum(returned), sum(net_change), count(*) FILTER (WHERE active), 0
  FROM (
    -- Per (day, merchant, account) first, by hashing (parallel-safe), then per (day, merchant):
    -- cheaper than count(DISTINCT account_id), which sorts every entry of the run.
    SELECT (e.created_at AT TIME ZONE %(zone)s)::date AS day,
           e.partner_id,
           coalesce(sum(e.amount) FILTER (WHERE e.kind = 'earn'), 0) AS issued,
           coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'spend'), 0) AS spent,
           coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'redeem'), 0) AS redeemed,
           coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'expire'), 0) AS expired,
           coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'reverse' AND e.amount < 0), 0)
             AS reversed,
           coalesce(sum(e.amount) FILTER (WHERE e.kind = 'reverse' AND e.amount > 0), 0)
             AS returned,
           sum(e.amount) AS net_change,
           bool_or(e.kind = ANY(%(activity)s)) AS active
      FROM points_entry e
     WHERE e.created_at >= %(start)s AND e.created_at < %(end)s
     GROUP BY 1, 2, e.account_id
  ) per_account
 GROUP BY 1, 2
"""

# Each merchant's outstanding = its last outstanding before the run + running net change.
MERCHANT_OUTSTANDING_SQL = """
UPDATE campaigns_dailymerchantrollup r
   SET outstanding = s.outstanding
  FROM (SELECT c.id,
               coalesce((SELECT p.outstanding FROM campaigns_dailymerchantrollup p
                          WHERE p.partner_id IS NOT DISTINCT FROM c.partner_id
                            AND p.day < %(first)s
                          ORDER BY p.day DESC LIMIT 1), 0)
               + sum(c.net_change) OVER (PARTITION BY c.partner_id ORDER BY c.day)
               AS outstanding
          FROM campaigns_dailymerchantrollup c
         WHERE c.day BETWEEN %(first)s AND %(last)s) s
 WHERE r.id = s.id
"""

PROGRAMME_ROLLUP_SQL = """
INSERT INTO campaigns_dailyprogrammerollup
    (day, issued, spent, redeemed, expired, reversed, returned, net_change, active_members,
     active_30d, members, order_amount, outstanding)
SELECT d.day,
       coalesce(m.issued, 0), coalesce(m.spent, 0), coalesce(m.redeemed, 0),
       coalesce(m.expired, 0), coalesce(m.reversed, 0), coalesce(m.returned, 0),
       coalesce(m.net_change, 0), 0, 0, 0, coalesce(o.amount, 0),
       coalesce((SELECT p.outstanding FROM campaigns_dailyprogrammerollup p
                  WHERE p.day < %(first)s ORDER BY p.day DESC LIMIT 1), 0)
       + sum(coalesce(m.net_change, 0)) OVER (ORDER BY d.day)
  FROM (SELECT g::date AS day FROM generate_series(%(first)s::date, %(last)s::date,
                                                   interval '1 day') g) d
  LEFT JOIN (SELECT day, sum(issued) AS issued, sum(spent) AS spent,
                    sum(redeemed) AS redeemed, sum(expired) AS expired,
                    sum(reversed) AS reversed, sum(returned) AS returned,
                    sum(net_change) AS net_change
               FROM campaigns_dailymerchantrollup
              WHERE day BETWEEN %(first)s AND %(last)s
              GROUP BY day) m ON m.day = d.day
  LEFT JOIN (SELECT (created_at AT TIME ZONE %(zone)s)::date AS day,
                    sum(coalesce(amount, 0)) AS amount
               FROM points_order
              WHERE created_at >= %(start)s AND created_at < %(end)s
              GROUP BY 1) o ON o.day = d.day
"""

# Members active on a day and in the 30 days up to it, from the distinct (account, day) pairs
# of member-caused entries. An account active on days a1 < a2 < ... counts as active-in-30-days
# on the union of [a, a + 29]; each pair adds +1 where its part of that union starts and -1
# where it ends, and the running sum of those changes is the count on each day. Pairs before
# the run's first day - 29 cannot reach the run's days, so only they are read.
ACTIVITY_SQL = """
WITH spans AS MATERIALIZED (
    -- One row per pair; the pairs themselves are not kept (B6: 45 %% faster than keeping them).
    SELECT day,
           greatest(day, coalesce(lag(day) OVER (PARTITION BY account_id ORDER BY day)
                                  + %(window)s, day)) AS starts,
           day + %(window)s AS ends
      FROM (SELECT account_id, (created_at AT TIME ZONE %(zone)s)::date AS day
              FROM points_entry
             WHERE created_at >= %(window_start)s AND created_at < %(end)s
               AND kind = ANY(%(activity)s)
             GROUP BY 1, 2) pairs
), changes AS (
    SELECT day, sum(change) AS change
      FROM (SELECT starts AS day, 1 AS change FROM spans
            UNION ALL SELECT ends, -1 FROM spans) c
     GROUP BY day
), running AS MATERIALIZED (
    SELECT day, sum(change) OVER (ORDER BY day) AS active FROM changes
), today AS MATERIALIZED (
    SELECT day, count(*) AS active FROM spans WHERE day >= %(first)s GROUP BY day
), per_day AS MATERIALIZED (
    SELECT d.day,
           coalesce((SELECT running.active FROM running WHERE running.day <= d.day
                      ORDER BY running.day DESC LIMIT 1), 0) AS active_30d,
           coalesce(today.active, 0) AS active_today
      FROM (SELECT g::date AS day FROM generate_series(%(first)s::date, %(last)s::date,
                                                       interval '1 day') g) d
      LEFT JOIN today ON today.day = d.day
)
UPDATE campaigns_dailyprogrammerollup r
   SET active_30d = per_day.active_30d, active_members = per_day.active_today
  FROM per_day
 WHERE r.day = per_day.day
"""

# Members who had joined by the end of each day (closed members left out).
MEMBERS_SQL = """
UPDATE campaigns_dailyprogrammerollup r
   SET members = s.members
  FROM (SELECT d.day,
               (SELECT count(*) FROM members_member
                 WHERE joined_at < %(start)s AND status <> 'closed')
               + coalesce(sum(j.joined) OVER (ORDER BY d.day), 0) AS members
          FROM (SELECT g::date AS day FROM generate_series(%(first)s::date, %(last)s::date,
                                                           interval '1 day') g) d
          LEFT JOIN (SELECT (joined_at AT TIME ZONE %(zone)s)::date AS day, count(*) AS joined
                       FROM members_member
                      WHERE joined_at >= %(start)s AND joined_at < %(end)s
                        AND status <> 'closed'
                      GROUP BY 1) j ON j.day = d.day) s
 WHERE r.day = s.day
"""

TIER_SIZES_SQL = """
INSERT INTO campaigns_dailytiersize (day, tier_id, members)
SELECT %(day)s, t.id, (SELECT count(*) FROM members_member m
                        WHERE m.tier_id = t.id AND m.status <> 'closed')
  FROM members_tier t
ON CONFLICT (day, tier_id) DO UPDATE SET members = EXCLUDED.members
"""


def _net_by_partner(first: date, last: date) -> dict[int | None, int]:
    rows = DailyMerchantRollup.objects.filter(day__range=(first, last)).values_list(
        "partner_id", "net_change"
    )
    totals: dict[int | None, int] = {}
    for partner_id, net in rows:
        totals[partner_id] = totals.get(partner_id, 0) + net
    return totals


def _shift_later_outstanding(
    *, last: date, before: dict[int | None, int], after: dict[int | None, int]
) -> None:
    """A recomputed day changed its net: carry the difference into the days after it."""
    total = sum(after.values()) - sum(before.values())
    if total:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE campaigns_dailyprogrammerollup SET outstanding = outstanding + %s"
                " WHERE day > %s",
                [total, last],
            )
    for partner_id in set(before) | set(after):
        delta = after.get(partner_id, 0) - before.get(partner_id, 0)
        if delta:
            DailyMerchantRollup.objects.filter(partner_id=partner_id, day__gt=last).update(
                outstanding=F("outstanding") + delta
            )


def roll_up_days(*, first: date, last: date, zone) -> int:
    """Replace the rollups of the days first..last with ones computed from the ledger;
    returns the number of merchant rows. Reads only those days' entries (plus 29 days before
    for the 30-day activity) and orders; later days' outstanding follow a changed net."""
    start, end = _bounds(first, last, zone)
    window_start, _end = _bounds(first - timedelta(days=INACTIVE_DAYS - 1), last, zone)
    params = {
        "zone": str(zone),
        "first": first,
        "last": last,
        "start": start,
        "end": end,
        "window_start": window_start,
        "window": INACTIVE_DAYS,
        "activity": [str(kind) for kind in ACTIVITY_KINDS],
    }
    before = _net_by_partner(first, last)
    DailyMerchantRollup.objects.filter(day__range=(first, last)).delete()
    DailyProgrammeRollup.objects.filter(day__range=(first, last)).delete()
    with connection.cursor() as cursor:
        # The distinct counts sort every entry of the run (the whole history on a first run):
        # in memory rather than in temporary files, for this one transaction only.
        cursor.execute("SET LOCAL work_mem = '1GB'")
        cursor.execute(MERCHANT_ROLLUP_SQL, params)
        merchant_rows = cursor.rowcount
        cursor.execute(MERCHANT_OUTSTANDING_SQL, params)
        cursor.execute(PROGRAMME_ROLLUP_SQL, params)
        cursor.execute(ACTIVITY_SQL, params)
        cursor.execute(MEMBERS_SQL, params)
    _shift_later_outstanding(last=last, before=before, after=_net_by_partner(first, last))
    return merchant_rows


def record_tier_sizes(*, day: date) -> None:
    with connection.cursor() as cursor:
        cursor.execute(TIER_SIZES_SQL, {"day": day})


# --- metrics ---------------------------------------------------------------------------------


def _ratio(numerator, denominator, scale: Decimal = HUNDRED) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) * scale / Decimal(denominator)).quantize(Decimal("0.0001"))


def metrics_for_day(
    *,
    day: date,
    rollups: dict[date, DailyProgrammeRollup],
    point_value: Decimal,
    monthly_budget: Decimal,
) -> dict[str, Decimal | None]:
    """Every metric of `day` from the programme rollups of that day and the days before it."""

    def window(days: int, end: date = day) -> list[DailyProgrammeRollup]:
        return [
            rollups[d] for offset in range(days) if (d := end - timedelta(days=offset)) in rollups
        ]

    def total(rows, *fields: str):
        return sum((getattr(row, field) for row in rows for field in fields), 0)

    today = rollups[day]
    this_week = window(WEEK)
    last_week = window(WEEK, day - timedelta(days=WEEK))
    used_now = total(this_week, "spent", "redeemed")
    used_before = total(last_week, "spent", "redeemed")
    year = window(BREAKAGE_DAYS)
    month_to_date = window(day.day)
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    prorated_budget = monthly_budget * day.day / days_in_month
    member_value = window(MEMBER_VALUE_DAYS)
    return {
        HealthMetric.OUTSTANDING_POINTS: Decimal(today.outstanding),
        HealthMetric.OUTSTANDING_PER_MEMBER: _ratio(today.outstanding, today.members, Decimal(1)),
        HealthMetric.POINTS_USED_WOW_CHANGE: (
            None if not used_before else _ratio(used_now - used_before, used_before)
        ),
        HealthMetric.REDEMPTION_RATE: _ratio(used_now, total(this_week, "issued")),
        HealthMetric.BREAKAGE: _ratio(total(year, "expired"), total(year, "issued")),
        HealthMetric.COST_VS_BUDGET: _ratio(
            total(month_to_date, "issued") * point_value, prorated_budget
        ),
        HealthMetric.COST_TO_MEMBER_VALUE: _ratio(
            total(member_value, "issued") * point_value,
            total(member_value, "order_amount"),
            Decimal(1),
        ),
        HealthMetric.INACTIVE_30D_SHARE: _ratio(
            today.members - today.active_30d if today.members else 0, today.members
        ),
    }


def store_metrics(*, first: date, last: date) -> dict[date, dict[str, Decimal | None]]:
    """Compute and store every metric of first..last; returns them by day."""
    since = first - timedelta(days=BREAKAGE_DAYS)
    rows = DailyProgrammeRollup.objects.filter(day__range=(since, last))
    rollups = {row.day: row for row in rows}
    programme = programme_settings()
    health = HealthSettings.get()
    values: dict[date, dict[str, Decimal | None]] = {}
    rows = []
    day = first
    while day <= last:
        if day in rollups:
            values[day] = metrics_for_day(
                day=day,
                rollups=rollups,
                point_value=programme.point_value,
                monthly_budget=health.monthly_budget,
            )
            rows += [
                HealthMetricValue(day=day, metric=metric, value=value)
                for metric, value in values[day].items()
            ]
        day += timedelta(days=1)
    HealthMetricValue.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["day", "metric"],
        update_fields=["value"],
    )
    return values


# --- alerts ----------------------------------------------------------------------------------


def _is_crossed(threshold: HealthThreshold, *, day: date, value: Decimal | None) -> bool:
    if not threshold.is_crossed_by(value):
        return False
    if threshold.weeks_running <= 1:
        return True
    earlier_days = [day - timedelta(days=WEEK * week) for week in range(1, threshold.weeks_running)]
    earlier = dict(
        HealthMetricValue.objects.filter(metric=threshold.metric, day__in=earlier_days).values_list(
            "day", "value"
        )
    )
    return all(threshold.is_crossed_by(earlier.get(d)) for d in earlier_days)


def evaluate_alerts(*, day: date, values: dict[str, Decimal | None]) -> tuple[int, int]:
    """Raise an alert for each threshold crossed on `day` unless one is already raised (not yet
    acknowledged) for that metric; mark open alerts recovered when the metric is back inside.
    Returns (raised, recovered). A metric without a value that day changes nothing."""
    raised = recovered = 0
    for threshold in HealthThreshold.objects.filter(is_active=True):
        value = values.get(threshold.metric)
        if value is None:
            continue
        open_alerts = HealthAlert.objects.filter(
            metric=threshold.metric,
            state__in=[HealthAlert.State.RAISED, HealthAlert.State.ACKNOWLEDGED],
        )
        if _is_crossed(threshold, day=day, value=value):
            if not open_alerts.filter(state=HealthAlert.State.RAISED).exists():
                alert = HealthAlert.objects.create(
                    metric=threshold.metric,
                    day=day,
                    value=value,
                    lower=threshold.lower,
                    upper=threshold.upper,
                )
                transaction.on_commit(lambda alert=alert: send_alert_email(alert=alert))
                raised += 1
        elif not threshold.is_crossed_by(value):
            recovered += open_alerts.update(state=HealthAlert.State.RECOVERED, recovered_on=day)
    return raised, recovered


def alert_recipients() -> list[str]:
    group = HealthSettings.get().alert_group
    if group is None:
        return []
    return list(
        get_user_model()
        .objects.filter(groups=group, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def send_alert_email(*, alert: HealthAlert) -> int:
    """Tell the configured group; a mail server that fails is logged, never fails the run."""
    recipients = alert_recipients()
    if not recipients:
        return 0
    values = {
        "metric": alert.get_metric_display(),
        "day": alert.day.isoformat(),
        "value": f"{alert.value.normalize():f}",
        "lower": "-" if alert.lower is None else f"{alert.lower.normalize():f}",
        "upper": "-" if alert.upper is None else f"{alert.upper.normalize():f}",
    }
    subject = _("Programme health alert: %(metric)s") % values
    body = (
        _(
            "%(metric)s was %(value)s on %(day)s, outside the threshold "
            "(alert below %(lower)s, alert above %(upper)s).\n"
            "Acknowledge it in the admin under Health alerts."
        )
        % values
    )
    try:
        return send_mail(subject, body, None, recipients)
    except OSError:
        logger.exception("health alert email for %s could not be sent", alert.pk)
        return 0


def acknowledge_alert(*, alert: HealthAlert, user) -> bool:
    """Mark a raised alert seen; the next run raises a new one if the metric is still out.
    Returns False when the alert was not raised (already acknowledged or recovered)."""
    with transaction.atomic():
        updated = HealthAlert.objects.filter(pk=alert.pk, state=HealthAlert.State.RAISED).update(
            state=HealthAlert.State.ACKNOWLEDGED,
            acknowledged_at=timezone.now(),
            acknowledged_by=user,
        )
    return bool(updated)


# --- the run ---------------------------------------------------------------------------------


def compute_health_metrics(
    *,
    as_of: datetime,
    day: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> HealthRun:
    """Roll up the days after the last one done up to the day before `as_of` (programme time
    zone), or recompute `day` only; then store those days' metrics and evaluate the alerts of
    each day in order (a recomputed day only when it is the latest).

    Idempotent and restartable: everything is one transaction, under an advisory lock so two
    runs never interleave; a run with nothing to do changes nothing."""
    zone = programme_settings().zone
    last_closed = as_of.astimezone(zone).date() - timedelta(days=1)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        done = DailyProgrammeRollup.objects.order_by("-day").values_list("day", flat=True).first()
        if day is not None:
            if day > last_closed:
                raise HealthDayNotClosed()
            first = last = day
        else:
            first = done + timedelta(days=1) if done else _first_entry_day(zone)
            last = last_closed
        if first is None or first > last:
            return HealthRun(days=[])
        run = HealthRun(days=[first + timedelta(days=n) for n in range((last - first).days + 1)])
        if progress:
            progress(_("rolling up %(first)s to %(last)s") % {"first": first, "last": last})
        run.merchant_rows = roll_up_days(first=first, last=last, zone=zone)
        latest = max(last, done) if done else last
        if last == latest:
            record_tier_sizes(day=last)
        # A recomputed day moves the windows of the days after it too.
        values = store_metrics(first=first, last=latest)
        if day is not None:
            evaluated = [day] if day == latest else []
        else:
            # The first run over the whole history judges only its last day, not every past day.
            evaluated = run.days if done else [last]
        for evaluated_day in evaluated:
            raised, recovered = evaluate_alerts(day=evaluated_day, values=values[evaluated_day])
            run.alerts_raised += raised
            run.alerts_recovered += recovered
        if progress:
            progress(
                _("%(days)d days rolled up, %(raised)d alerts raised")
                % {"days": len(run.days), "raised": run.alerts_raised}
            )
    return run
