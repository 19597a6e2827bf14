"""The rule engine: which earning rules and campaigns apply to an event, and for how many points.

Pure evaluation over a cached, compiled rulebook: no database query per rule per event. The
rulebook is rebuilt when its version (campaigns.RulebookState, bumped by every change to a rule,
campaign, rate, exclusion, task or check-in reward) moves; a process checks the version at most
every RULEBOOK_CHECK_SECONDS, and its own changes invalidate it at once.

The stacking rule (docs/adr/0008-earning-rules-and-stacking.md), in one place, `_rule_points`:

    rule points  = floor(base x tier multiplier)
    with campaign = floor(base x tier multiplier x M), M = the HIGHEST multiplier among the
                    campaigns in effect for that rule and member (campaign multipliers never
                    multiply each other); the difference is the campaign's extra, charged to
                    that campaign's budget
    bonus points of campaigns are added on top, never multiplied.

Caps (per member per day / ISO week / lifetime, lifetime points <= K x lifetime spend) bind the
rule's points including the campaign extra; budgets are charged by conditional UPDATEs so they
are never overspent (campaigns.services).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.db import connection

from campaigns.models import (
    PURCHASE,
    Campaign,
    CheckInReward,
    EarningRule,
    EventType,
    ExcludedProduct,
    Experiment,
    ExperimentArm,
    MemberTask,
    ReferralSettings,
    RiskLimits,
    RulebookState,
)

ZERO = Decimal("0")
ONE = Decimal("1")


def round_points(value: Decimal) -> int:
    """The one rounding for every rule: down to a whole point (never a part point)."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


# --- The compiled rulebook ---------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledRule:
    id: int
    code: str
    event_type: str
    points_per_unit: Decimal | None
    fixed_points: int
    rates: dict[tuple[str, str], Decimal]
    min_amount: Decimal | None
    channels: frozenset[str]
    stores: frozenset[str]
    partner_ids: frozenset[int]
    categories: frozenset[str]
    skus: frozenset[str]
    weekdays: frozenset[int]
    time_from: object
    time_to: object
    starts_at: datetime | None
    ends_at: datetime | None
    tier_ids: frozenset[int]
    segment_ids: frozenset[int]
    arm_id: int | None
    cap_per_day: int | None
    cap_per_week: int | None
    cap_lifetime: int | None
    budget_points: int | None
    spend_ratio_cap: Decimal | None
    pending_days: int | None
    tier_multiplier_applies: bool
    campaigns_apply: bool

    @property
    def has_member_caps(self) -> bool:
        return bool(self.cap_per_day or self.cap_per_week or self.cap_lifetime) or (
            self.spend_ratio_cap is not None
        )


@dataclass(frozen=True)
class CompiledCampaign:
    id: int
    code: str
    campaign: Campaign  # runs_on() is the one place the schedule is read
    rule_ids: frozenset[int]
    event_types: frozenset[str]
    tier_ids: frozenset[int]
    segment_ids: frozenset[int]
    arm_id: int | None
    multiplier: Decimal
    bonus_points: int
    budget_points: int | None


@dataclass(frozen=True)
class CompiledArm:
    id: int
    low: int  # the arm holds hash buckets [low, high) of 0..9999
    high: int


@dataclass(frozen=True)
class CompiledTask:
    id: int
    code: str
    kind: str
    required_count: int
    within_days: int
    reward_points: int


@dataclass
class Rulebook:
    version: int
    event_types: frozenset[str]
    rules: dict[str, list[CompiledRule]]  # by event type, in priority order
    campaigns: list[CompiledCampaign]
    excluded: frozenset[tuple[str, str]]
    arms: dict[str, list[CompiledArm]]  # by experiment code
    tasks: dict[str, list[CompiledTask]]  # by event type
    check_in_rewards: dict[int, int]
    referral: ReferralSettings
    # Risk control's anomaly limits (docs/adr/0018), cached with the rules: no query per event.
    risk: RiskLimits | None = None
    # Whether any rule or campaign targets segments (then an event reads the member's): set
    # once when the rulebook is built, not scanned per event.
    needs_segments: bool = field(init=False)

    def __post_init__(self) -> None:
        self.needs_segments = any(
            r.segment_ids for rules in self.rules.values() for r in rules
        ) or any(c.segment_ids for c in self.campaigns)


def arm_ranges(experiment: Experiment) -> list[tuple[ExperimentArm, int, int]]:
    """Each arm with its hash buckets [low, high) of 0..9999, by weight in the arms' order: the
    one split that both awards points (the rulebook) and judges the results (reports)."""
    ranges, low = [], 0
    for arm in experiment.arms.all():
        high = min(10_000, low + arm.weight * 100)
        ranges.append((arm, low, high))
        low = high
    return ranges


def compile_rule(rule: EarningRule) -> CompiledRule:
    return CompiledRule(
        id=rule.pk,
        code=rule.code,
        event_type=rule.event_type,
        points_per_unit=rule.points_per_unit,
        fixed_points=rule.fixed_points,
        rates={(rate.kind, rate.code): rate.points_per_unit for rate in rule.rates.all()},
        min_amount=rule.min_amount,
        channels=frozenset(rule.channels),
        stores=frozenset(rule.stores),
        partner_ids=frozenset(p.pk for p in rule.partners.all()),
        categories=frozenset(rule.categories),
        skus=frozenset(rule.skus),
        weekdays=frozenset(rule.weekdays),
        time_from=rule.time_from,
        time_to=rule.time_to,
        starts_at=rule.starts_at,
        ends_at=rule.ends_at,
        tier_ids=frozenset(t.pk for t in rule.tiers.all()),
        segment_ids=frozenset(s.pk for s in rule.segments.all()),
        arm_id=rule.experiment_arm_id,
        cap_per_day=rule.cap_per_day,
        cap_per_week=rule.cap_per_week,
        cap_lifetime=rule.cap_lifetime,
        budget_points=rule.budget_points,
        spend_ratio_cap=rule.spend_ratio_cap,
        pending_days=rule.pending_days,
        tier_multiplier_applies=rule.tier_multiplier_applies,
        campaigns_apply=rule.campaigns_apply,
    )


def compile_campaign(campaign: Campaign) -> CompiledCampaign:
    return CompiledCampaign(
        id=campaign.pk,
        code=campaign.code,
        campaign=campaign,
        rule_ids=frozenset(r.pk for r in campaign.rules.all()),
        event_types=frozenset(campaign.event_types or [PURCHASE]),
        tier_ids=frozenset(t.pk for t in campaign.tiers.all()),
        segment_ids=frozenset(s.pk for s in campaign.segments.all()),
        arm_id=campaign.experiment_arm_id,
        multiplier=campaign.multiplier,
        bonus_points=campaign.bonus_points,
        budget_points=campaign.budget_points,
    )


def _targeted(queryset):
    return queryset.prefetch_related("tiers", "segments")


def load_rulebook(
    *,
    version: int = 0,
    extra_rules: Iterable[EarningRule] = (),
    extra_campaigns: Iterable[Campaign] = (),
) -> Rulebook:
    """Build the rulebook from the database: active rules and campaigns (plus, for a
    simulation, the draft ones given)."""
    rules: dict[str, list[CompiledRule]] = {}
    active_rules = list(
        _targeted(EarningRule.objects.filter(status=EarningRule.Status.ACTIVE)).prefetch_related(
            "rates", "partners"
        )
    )
    for rule in sorted([*active_rules, *extra_rules], key=lambda r: (r.priority, r.code)):
        rules.setdefault(rule.event_type, []).append(compile_rule(rule))
    campaigns = [
        compile_campaign(c)
        for c in [
            *_targeted(Campaign.objects.filter(status=Campaign.Status.ACTIVE)).prefetch_related(
                "rules"
            ),
            *extra_campaigns,
        ]
    ]
    arms: dict[str, list[CompiledArm]] = {}
    for experiment in Experiment.objects.filter(is_active=True).prefetch_related("arms"):
        compiled = [CompiledArm(arm.pk, low, high) for arm, low, high in arm_ranges(experiment)]
        if compiled:
            arms[experiment.code] = compiled
    tasks: dict[str, list[CompiledTask]] = {}
    for task in MemberTask.objects.filter(is_active=True):
        tasks.setdefault(task.event_type, []).append(
            CompiledTask(
                id=task.pk,
                code=task.code,
                kind=task.kind,
                required_count=task.required_count,
                within_days=task.within_days,
                reward_points=task.reward_points,
            )
        )
    return Rulebook(
        version=version,
        event_types=frozenset(
            EventType.objects.filter(is_active=True).values_list("code", flat=True)
        )
        | {PURCHASE},
        rules=rules,
        campaigns=campaigns,
        excluded=frozenset(ExcludedProduct.objects.values_list("kind", "code")),
        arms=arms,
        tasks=tasks,
        check_in_rewards=dict(CheckInReward.objects.values_list("streak_day", "points")),
        referral=ReferralSettings.get(),
        risk=RiskLimits.get(),
    )


_lock = threading.Lock()
_cached: Rulebook | None = None
_checked_at = 0.0


def _current_version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM campaigns_rulebookstate WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else 0


def rulebook() -> Rulebook:
    """The compiled rulebook of this process; rebuilt when the version in the database moved."""
    global _cached, _checked_at
    max_age = getattr(settings, "RULEBOOK_CHECK_SECONDS", 2)
    now = time.monotonic()
    cached = _cached
    if cached is not None and now - _checked_at <= max_age:
        return cached
    version = _current_version()
    with _lock:
        if _cached is None or _cached.version != version:
            _cached = load_rulebook(version=version)
        _checked_at = now
        return _cached


def invalidate_rulebook() -> None:
    """Bump the version (every process rebuilds) and drop this process's copy at once."""
    RulebookState.bump()
    drop_local_rulebook()


def drop_local_rulebook() -> None:
    global _cached
    _cached = None


# --- Facts and evaluation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """What the rules look at: the event as posted, plus who the member is at that moment."""

    type: str
    local: datetime  # the event's time in the programme's time zone
    partner_id: int | None
    amount: Decimal = ZERO
    paid_with_points: Decimal = ZERO
    items: tuple[dict, ...] = ()
    channel: str = ""
    store: str = ""
    tier_id: int | None = None
    tier_multiplier: Decimal = ONE
    segment_ids: frozenset[int] = frozenset()
    arm_ids: frozenset[int] = frozenset()


def arm_bucket(*, experiment_code: str, member_key: str) -> int:
    """A stable 0..9999 bucket for a member in an experiment: same member, same arm, always."""
    # 7 bytes: a positive bigint in SQL too (campaigns.experiments computes the same in SQL).
    digest = hashlib.sha256(f"{experiment_code}:{member_key}".encode()).digest()
    return int.from_bytes(digest[:7], "big") % 10_000


def arms_for(book: Rulebook, *, member_key: str) -> frozenset[int]:
    found = set()
    for code, arms in book.arms.items():
        bucket = arm_bucket(experiment_code=code, member_key=member_key)
        for arm in arms:
            if arm.low <= bucket < arm.high:
                found.add(arm.id)
    return frozenset(found)


def _money(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or "0"))


def _item_excluded(book: Rulebook, item: dict) -> bool:
    return bool(item.get("excluded")) or (
        ("sku", item.get("sku") or "") in book.excluded
        or ("category", item.get("category") or "") in book.excluded
    )


def earning_lines(book: Rulebook, facts: Facts) -> list[tuple[str, str, Decimal]]:
    """(sku, category, money that earns) per item, plus an "other" line for the part of the
    amount not itemised; the part paid with points never earns and is taken off in proportion
    to the money paid."""
    amount = facts.amount
    if amount <= 0:
        return []
    lines: list[tuple[str, str, Decimal]] = []
    itemised = ZERO
    for item in facts.items:
        value = _money(item.get("amount"))
        itemised += value
        if not _item_excluded(book, item):
            lines.append((item.get("sku") or "", item.get("category") or "", value))
    rest = amount - itemised
    if rest > 0:
        lines.append(("", "", rest))
    # The part paid with points earns nothing: it comes off the lines that earn, in proportion
    # (so item rates keep their weight), never below zero.
    if facts.paid_with_points > 0:
        earning = sum((value for _s, _c, value in lines), ZERO)
        if earning <= facts.paid_with_points:
            return []
        share = (earning - facts.paid_with_points) / earning
        lines = [(sku, cat, value * share) for sku, cat, value in lines]
    return lines


def _in_time_window(rule: CompiledRule, local: datetime) -> bool:
    if rule.starts_at and local < rule.starts_at:
        return False
    if rule.ends_at and local >= rule.ends_at:
        return False
    if rule.weekdays and local.isoweekday() not in rule.weekdays:
        return False
    if rule.time_from is not None or rule.time_to is not None:
        clock = local.time().replace(tzinfo=None)
        start, end = rule.time_from, rule.time_to
        if start is not None and end is not None and start > end:  # across midnight
            return clock >= start or clock < end
        if start is not None and clock < start:
            return False
        if end is not None and clock >= end:
            return False
    return True


def _targets(obj, facts: Facts) -> bool:
    if obj.tier_ids and facts.tier_id not in obj.tier_ids:
        return False
    if obj.segment_ids and not (obj.segment_ids & facts.segment_ids):
        return False
    return not (obj.arm_id is not None and obj.arm_id not in facts.arm_ids)


def rule_matches(rule: CompiledRule, facts: Facts) -> bool:
    if rule.event_type != facts.type:
        return False
    if rule.channels and facts.channel not in rule.channels:
        return False
    if rule.stores and facts.store not in rule.stores:
        return False
    if rule.partner_ids and facts.partner_id not in rule.partner_ids:
        return False
    if rule.min_amount is not None and facts.amount < rule.min_amount:
        return False
    if not _in_time_window(rule, facts.local):
        return False
    return _targets(rule, facts)


def rule_base(rule: CompiledRule, lines: list[tuple[str, str, Decimal]]) -> Decimal:
    """The rule's points before multipliers and rounding (Decimal), from the event's
    `earning_lines` (computed once per event, not per rule)."""
    base = Decimal(rule.fixed_points)
    if rule.points_per_unit is None and not rule.rates:
        return base
    scoped = bool(rule.categories or rule.skus)
    found_scoped_item = False
    for sku, category, value in lines:
        if scoped:
            if not ((sku and sku in rule.skus) or (category and category in rule.categories)):
                continue
            found_scoped_item = True
        rate = rule.rates.get(("sku", sku)) if sku else None
        if rate is None and category:
            rate = rule.rates.get(("category", category))
        if rate is None:
            rate = rule.points_per_unit or ZERO
        base += value * rate
    if scoped and not found_scoped_item:
        return ZERO
    return base


def campaigns_in_effect(book: Rulebook, facts: Facts) -> list[CompiledCampaign]:
    return [
        c
        for c in book.campaigns
        if facts.type in c.event_types and c.campaign.runs_on(facts.local) and _targets(c, facts)
    ]


@dataclass
class RuleOutcome:
    """One matching rule before caps: its points without and with the best campaign."""

    rule: CompiledRule
    points: int  # floor(base x tier multiplier)
    with_campaign: int  # floor(base x tier multiplier x best campaign multiplier)
    campaign: CompiledCampaign | None  # the campaign whose multiplier was used


@dataclass
class Evaluation:
    rules: list[RuleOutcome] = field(default_factory=list)
    bonuses: list[CompiledCampaign] = field(default_factory=list)
    earning_amount: Decimal = ZERO


def _rule_points(
    rule: CompiledRule, base: Decimal, facts: Facts, live: list[CompiledCampaign]
) -> RuleOutcome:
    """THE stacking rule (module docstring)."""
    tier = facts.tier_multiplier if rule.tier_multiplier_applies else ONE
    best = None
    if rule.campaigns_apply:
        for campaign in live:
            if campaign.multiplier <= ONE:
                continue
            if campaign.rule_ids and rule.id not in campaign.rule_ids:
                continue
            if best is None or campaign.multiplier > best.multiplier:
                best = campaign
    points = round_points(base * tier)
    with_campaign = round_points(base * tier * best.multiplier) if best else points
    return RuleOutcome(rule=rule, points=points, with_campaign=with_campaign, campaign=best)


def evaluate(book: Rulebook, facts: Facts) -> Evaluation:
    """Every matching rule and campaign for the event, before caps and budgets."""
    lines = earning_lines(book, facts) if facts.amount else []
    result = Evaluation(earning_amount=sum((value for _s, _c, value in lines), ZERO))
    live = campaigns_in_effect(book, facts)
    matched_ids = set()
    for rule in book.rules.get(facts.type, ()):
        if not rule_matches(rule, facts):
            continue
        base = rule_base(rule, lines)
        if base <= 0:
            continue
        matched_ids.add(rule.id)
        result.rules.append(_rule_points(rule, base, facts, live))
    for campaign in live:
        if campaign.bonus_points and (not campaign.rule_ids or campaign.rule_ids & matched_ids):
            result.bonuses.append(campaign)
    return result


# --- Periods ---------------------------------------------------------------------------------
LIFETIME_START = date(1970, 1, 1)


def period_starts(local_day: date) -> dict[str, date]:
    return {
        "day": local_day,
        "week": local_day - timedelta(days=local_day.isoweekday() - 1),
        "life": LIFETIME_START,
    }
