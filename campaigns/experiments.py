"""A/B experiments: which arm a member is in (the same stable hash as the engine, in SQL), the
comparison of arms with 95% confidence intervals, and promoting the winning arm's rules."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import connection, transaction

from campaigns.engine import arm_ranges
from campaigns.models import Campaign, EarningRule, Experiment, ExperimentArm

# Below this many members in an arm a normal approximation says too little.
MIN_MEMBERS_PER_ARM = 30
Z_95 = 1.959964

# campaigns.engine.arm_bucket in SQL: the first 7 bytes of sha256("<experiment>:<member>").
_BUCKET_SQL = (
    "(('x' || substr(encode(sha256(convert_to(%(code)s || ':' || m.external_id, 'UTF8')),"
    " 'hex'), 1, 14))::bit(56)::bigint %% 10000)"
)

_METRICS_SQL = f"""
WITH arms AS (
    SELECT * FROM unnest(%(arm_ids)s::bigint[], %(lows)s::int[], %(highs)s::int[])
             AS a(arm_id, low, high)
),
members AS (
    SELECT m.id, a.arm_id
      FROM members_member m JOIN arms a ON {_BUCKET_SQL} >= a.low AND {_BUCKET_SQL} < a.high
),
per_member AS (
    SELECT mm.arm_id,
           COALESCE((SELECT sum(e.amount) FROM points_entry e
                      WHERE e.account_id = acc.id AND e.kind = 'earn'
                        AND e.created_at >= %(since)s), 0)::float AS earned,
           COALESCE((SELECT count(*) FROM points_entry e
                      WHERE e.account_id = acc.id AND e.kind = 'redeem'
                        AND e.created_at >= %(since)s), 0)::float AS redemptions,
           COALESCE((SELECT sum(o.amount - o.refunded_amount) FROM points_order o
                      WHERE o.account_id = acc.id AND o.amount IS NOT NULL
                        AND o.created_at >= %(since)s), 0)::float AS spend
      FROM members mm LEFT JOIN points_account acc ON acc.member_id = mm.id
)
SELECT arm_id, count(*),
       avg(earned), var_samp(earned), avg(redemptions), var_samp(redemptions),
       avg(spend), var_samp(spend), sum(earned), sum(redemptions)
  FROM per_member GROUP BY arm_id
"""

METRICS = ("points_earned", "redemptions", "spend")


@dataclass
class ArmFigures:
    arm: ExperimentArm
    members: int
    means: dict[str, float]
    variances: dict[str, float]
    points_earned: float = 0
    redemptions: float = 0


@dataclass
class Difference:
    metric: str
    arm: ExperimentArm
    difference: float
    low: float
    high: float
    verdict: str  # "better", "worse", "unclear", "too_small"


@dataclass
class ExperimentReport:
    experiment: Experiment
    arms: list[ArmFigures]
    control: ArmFigures | None
    differences: list[Difference]
    winner: ExperimentArm | None


def difference_interval(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
) -> tuple[float, float, float]:
    """Welch's 95% interval for mean_b - mean_a (normal approximation)."""
    diff = mean_b - mean_a
    se = math.sqrt((var_a or 0.0) / n_a + (var_b or 0.0) / n_b)
    return diff, diff - Z_95 * se, diff + Z_95 * se


def experiment_report(*, experiment: Experiment) -> ExperimentReport:
    ranges = arm_ranges(experiment)
    if not ranges:
        return ExperimentReport(experiment, [], None, [], None)
    with connection.cursor() as cursor:
        cursor.execute(
            _METRICS_SQL,
            {
                "code": experiment.code,
                "arm_ids": [arm.pk for arm, _l, _h in ranges],
                "lows": [low for _a, low, _h in ranges],
                "highs": [high for _a, _l, high in ranges],
                "since": experiment.started_at,
            },
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    figures = []
    for arm, _low, _high in ranges:
        row = rows.get(arm.pk)
        if row is None:
            figures.append(ArmFigures(arm, 0, dict.fromkeys(METRICS, 0.0), {}))
            continue
        n, e_avg, e_var, r_avg, r_var, s_avg, s_var, e_sum, r_sum = row
        figures.append(
            ArmFigures(
                arm,
                n,
                {"points_earned": e_avg, "redemptions": r_avg, "spend": s_avg},
                {"points_earned": e_var or 0, "redemptions": r_var or 0, "spend": s_var or 0},
                points_earned=e_sum,
                redemptions=r_sum,
            )
        )
    control = next((f for f in figures if f.arm.is_control), figures[0])
    differences = []
    for arm_figures in figures:
        if arm_figures is control:
            continue
        for metric in METRICS:
            if min(arm_figures.members, control.members) < MIN_MEMBERS_PER_ARM:
                differences.append(Difference(metric, arm_figures.arm, 0, 0, 0, "too_small"))
                continue
            diff, low, high = difference_interval(
                control.means[metric],
                control.variances[metric],
                control.members,
                arm_figures.means[metric],
                arm_figures.variances[metric],
                arm_figures.members,
            )
            verdict = "better" if low > 0 else "worse" if high < 0 else "unclear"
            differences.append(Difference(metric, arm_figures.arm, diff, low, high, verdict))
    # The winner: the arm whose spend per member is clearly above the control's (the business
    # goal); none while it is unclear.
    spend_wins = [d for d in differences if d.metric == "spend" and d.verdict == "better"]
    winner = max(spend_wins, key=lambda d: d.difference).arm if spend_wins else None
    return ExperimentReport(experiment, figures, control, differences, winner)


@transaction.atomic
def promote_arm(*, arm: ExperimentArm) -> int:
    """Give everyone what the arm had: its rules and campaigns lose their arm targeting; those of
    the other arms of the experiment are paused. Returns how many rules/campaigns changed."""
    changed = 0
    others = ExperimentArm.objects.filter(experiment=arm.experiment).exclude(pk=arm.pk)
    for model in (EarningRule, Campaign):
        for obj in model.objects.filter(experiment_arm=arm):
            obj.experiment_arm = None
            obj.save()
            changed += 1
        for obj in model.objects.filter(experiment_arm__in=others):
            obj.status = model.Status.PAUSED
            obj.save()
            changed += 1
    experiment = arm.experiment
    experiment.is_active = False
    experiment.save(update_fields=["is_active"])  # saves invalidate the rulebook (signals)
    return changed
