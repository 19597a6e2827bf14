"""Simulation: replay stored events through a rulebook without writing anything.

The replay runs the very planning code of a real event (campaigns.services._plan) with an
in-memory state, so caps and budgets bind as they would have, and each event is evaluated with
the member's tier, segments and A/B arms as they were (Event.context). Check-in streaks, tasks and
referrals are not replayed: they depend on history outside the rules; their lines are left out of
both sides of the comparison.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from campaigns import engine
from campaigns.models import Campaign, EarningRule, Event, ReferralSettings
from campaigns.services import EventInput, _plan, _State
from members.models import Member, Tier
from points.services import programme_settings

NOT_REPLAYED = ("task:", "check_in:", "referral:")


def _rule_lines(lines) -> int:
    return sum(line["points"] for line in lines if not line["rule"].startswith(NOT_REPLAYED))


class _ReplayState(_State):
    """Caps and budgets counted in memory, from zero at the start of the replay."""

    def __init__(self) -> None:
        super().__init__()
        self.usage: dict[tuple, int] = defaultdict(int)
        self.budgets: dict[tuple[str, int], int] = {}

    def rule_usage(self, *, member, rule_ids, starts):
        return {
            (rule_id, period): self.usage[(member.pk, rule_id, period, starts[period])]
            for rule_id in rule_ids
            for period in ("day", "week", "life")
        }

    def add_usage(self, *, member, used, starts):
        for rule_id, points in used:
            for period in ("day", "week", "life"):
                self.usage[(member.pk, rule_id, period, starts[period])] += points

    def charge_budget(self, *, table, row_id, points):
        key = (table, row_id)
        if key not in self.budgets:
            self.budgets[key] = self.budget_of(table, row_id)
        granted = min(points, self.budgets[key])
        self.budgets[key] -= granted
        return granted

    def budget_of(self, table: str, row_id: int) -> int:
        model = EarningRule if table == "campaigns_earningrule" else Campaign
        row = model.objects.filter(pk=row_id).values_list("budget_points", flat=True).first()
        return row if row is not None else 0

    def check_in(self, *, member, day):
        return 0

    def advance_tasks(self, *, member, progress):
        return {}


@dataclass
class Day:
    day: date
    actual: int = 0
    simulated: int = 0
    draft: int = 0


@dataclass
class Replay:
    events: int = 0
    actual: int = 0
    simulated: int = 0
    draft_points: int = 0
    members_reached: int = 0
    draft_cost: Decimal = Decimal("0")
    currency: str = ""
    days: list[Day] = field(default_factory=list)
    mismatched_events: list[int] = field(default_factory=list)


def _input(event: Event) -> EventInput:
    payload = event.payload or {}
    return EventInput(
        type=event.type,
        member=payload.get("member", ""),
        reference=event.reference,
        occurred_at=event.occurred_at,
        amount=Decimal(str(payload.get("amount") or "0")),
        channel=payload.get("channel") or "",
        store=payload.get("store") or "",
        items=tuple(payload.get("items") or ()),
        paid_with_points=Decimal(str(payload.get("paid_with_points") or "0")),
        attributes=payload.get("attributes") or {},
    )


def _facts(event: Event, data: EventInput, programme, tiers: dict) -> engine.Facts:
    context = event.context or {}
    tier_id = context.get("tier", event.member.tier_id)
    multiplier = context.get("tier_multiplier")
    return engine.Facts(
        type=event.type,
        local=event.occurred_at.astimezone(programme.zone),
        partner_id=context.get("partner", event.partner_id),
        amount=data.amount,
        paid_with_points=data.paid_with_points,
        items=data.items,
        channel=data.channel,
        store=data.store,
        tier_id=tier_id,
        tier_multiplier=Decimal(multiplier) if multiplier else tiers.get(tier_id, Decimal("1")),
        segment_ids=frozenset(context.get("segments", ())),
        arm_ids=frozenset(context.get("arms", ())),
    )


def replay(
    *,
    days: int = 30,
    now: datetime | None = None,
    draft_rules: list[EarningRule] = (),
    draft_campaigns: list[Campaign] = (),
) -> Replay:
    """Replay the events of the last `days` days through the active rules plus the drafts."""
    now = now or timezone.now()
    programme = programme_settings()
    book = engine.load_rulebook(extra_rules=draft_rules, extra_campaigns=draft_campaigns)
    # Not replayed (see the module docstring).
    book.tasks = {}
    book.referral = ReferralSettings(is_active=False)
    draft_codes = {r.code for r in draft_rules} | {f"campaign:{c.code}" for c in draft_campaigns}
    tiers = dict(Tier.objects.values_list("pk", "earn_multiplier"))
    state = _ReplayState()
    result = Replay(currency=programme.currency)
    by_day: dict[date, Day] = {}
    start_day = (now - timedelta(days=days)).astimezone(programme.zone).date()
    for offset in range(days + 1):
        day = start_day + timedelta(days=offset)
        by_day[day] = Day(day=day)
    reached = set()
    events = (
        Event.objects.filter(occurred_at__gte=now - timedelta(days=days), occurred_at__lte=now)
        .exclude(outcome=Event.Outcome.HELD)
        .select_related("member")
        .order_by("occurred_at", "id")
    )
    for event in events.iterator(chunk_size=2000):
        data = _input(event)
        facts = _facts(event, data, programme, tiers)
        member = Member(
            pk=event.member_id,
            referred_by_id=None,
            joined_at=event.member.joined_at,
            tier_id=facts.tier_id,
        )
        plan = _plan(
            book=book,
            facts=facts,
            member=member,
            data=data,
            state=state,
            programme=programme,
            occurred_at=event.occurred_at,
            now=event.occurred_at,
        )
        lines = [{"rule": a.rule, "points": a.points} for a in plan.awards if a.member is None]
        simulated = _rule_lines(lines)
        actual = _rule_lines(event.rules_applied or [])
        draft = sum(line["points"] for line in lines if line["rule"] in draft_codes)
        day = by_day.setdefault(facts.local.date(), Day(day=facts.local.date()))
        day.actual += actual
        day.simulated += simulated
        day.draft += draft
        result.events += 1
        result.actual += actual
        result.simulated += simulated
        result.draft_points += draft
        if draft:
            reached.add(event.member_id)
        if simulated != actual and not draft_codes:
            result.mismatched_events.append(event.pk)
    result.members_reached = len(reached)
    result.draft_cost = (Decimal(result.draft_points) * programme.point_value).quantize(
        Decimal("0.01")
    )
    result.days = [by_day[d] for d in sorted(by_day)]
    return result
