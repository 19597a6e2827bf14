"""Events in, points out: the one path every event takes, real or dry run.

`record_event` evaluates the event through the rule engine (campaigns.engine), applies caps,
budgets, check-in streaks, tasks and referrals, and grants the points. A dry run takes exactly
the same path: the only difference is the `_State` it is given, which reads where the real one
writes (budgets, usage, check-ins, task progress), so the answer cannot drift from what the
real event then gets.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns import engine, risk
from campaigns.exceptions import CurrencyMismatch, HeldEventNotApprovable, UnknownEventType
from campaigns.models import (
    PURCHASE,
    Event,
    HeldEvent,
    MemberTask,
    ReferralReward,
    RuleUsage,
    TaskProgress,
)
from loyalty_site.prepared import statement_cursor
from members.exceptions import MemberFrozen
from members.models import Member, SegmentMembership
from members.selectors import member_by_external_id
from members.services import (
    check_in_streak,
    growth_for_event,
    growth_for_purchase,
    growth_reverse_for_order,
    record_check_in,
)
from points.models import Entry, Order, Partner
from points.services import (
    RefundResult,
    earn,
    ensure_issuance_open,
    lock_member_accounts,
    programme_settings,
    purchase_available_at,
    record_purchase,
    refund_order,
)

CHECK_IN = "check_in"


@dataclass(frozen=True)
class Award:
    """Points one line of `rules_applied` gives, to the event's member or (a referral) another."""

    rule: str
    points: int
    available_at: datetime | None = None
    member: Member | None = None  # None: the event's member
    source_type: str = "rule"


@dataclass
class EventOutcome:
    event: Event | None
    points_awarded: int
    points_pending: int
    rules_applied: list[Award]
    entries: list = field(default_factory=list)
    held_for_review: bool = False


@dataclass(frozen=True)
class EventInput:
    type: str
    member: str
    reference: str = ""
    occurred_at: datetime | None = None
    amount: Decimal | None = None
    currency: str = ""
    channel: str = ""
    store: str = ""
    items: tuple[dict, ...] = ()
    paid_with_points: Decimal = Decimal("0")
    attributes: dict = field(default_factory=dict)
    payload: dict = field(default_factory=dict)


# --- What a plan reads and (real events only) writes --------------------------------------------
class _State:
    """The dry run's state: reads only. `_LiveState` overrides each method to write."""

    dry_run = True

    def __init__(self) -> None:
        # What this event already took from each budget (a campaign's extra, then its bonus).
        self._taken: dict[tuple[str, int], int] = {}

    def lock(self, members: list[Member]) -> None:
        pass

    def rule_usage(self, *, member: Member, rule_ids: list[int], starts: dict) -> dict:
        rows = RuleUsage.objects.filter(
            member=member,
            rule_id__in=rule_ids,
            period_start__in=set(starts.values()),
        ).values_list("rule_id", "period", "period_start", "points")
        return {
            (rule_id, period): points
            for rule_id, period, start, points in rows
            if starts[period] == start
        }

    def add_usage(self, *, member: Member, used: list[tuple[int, int]], starts: dict) -> None:
        pass

    def lifetime_spend(self, *, member: Member) -> tuple[int, Decimal]:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT a.lifetime_earned,
                       COALESCE((SELECT sum(GREATEST(o.amount - o.paid_with_points
                                                     - o.refunded_amount, 0))
                                   FROM points_order o
                                  WHERE o.account_id = a.id AND o.amount IS NOT NULL), 0)
                  FROM points_account a WHERE a.member_id = %s
                """,
                [member.pk],
            )
            row = cursor.fetchone()
        return (row[0], row[1]) if row else (0, Decimal("0"))

    def charge_budget(self, *, table: str, row_id: int, points: int) -> int:
        """Points of `points` the budget still has (all, some or none), counting what this
        event already took from it (a campaign's extra, then its bonus)."""
        taken = self._taken
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT GREATEST(budget_points - budget_used, 0) FROM {table} WHERE id = %s",
                [row_id],
            )
            row = cursor.fetchone()
        left = max(0, row[0] - taken.get((table, row_id), 0)) if row else 0
        granted = min(points, left)
        taken[(table, row_id)] = taken.get((table, row_id), 0) + granted
        return granted

    def check_in(self, *, member: Member, day) -> int:
        return check_in_streak(member=member, day=day)

    def advance_tasks(self, *, member: Member, progress: list[tuple[int, object]]) -> dict:
        """{task id: count after this event} for tasks not completed before it."""
        rows = TaskProgress.objects.filter(
            member=member, task_id__in=[t for t, _s in progress]
        ).values_list("task_id", "period_start", "count", "completed_at")
        found = {(t, s): (c, done) for t, s, c, done in rows}
        result = {}
        for task_id, start in progress:
            count, done = found.get((task_id, start), (0, None))
            if done is None:
                result[task_id] = count + 1
        return result

    def referral(
        self, *, inviter: Member, invitee: Member, day, device: str, ip: str, settings
    ) -> str | None:
        """The outcome of rewarding this invitation, or None when it was already decided."""
        if ReferralReward.objects.filter(invitee=invitee).exists():
            return None
        if settings.same_device_guard and (device or ip):
            clash = (
                ReferralReward.objects.filter(inviter=inviter)
                .filter(_device_or_ip(device, ip))
                .exists()
                or Event.objects.filter(member=inviter)
                .filter(_payload_device_or_ip(device, ip))
                .exists()
            )
            if clash:
                return ReferralReward.Outcome.SAME_DEVICE
        rewarded_today = ReferralReward.objects.filter(
            inviter=inviter, day=day, outcome=ReferralReward.Outcome.REWARDED
        ).count()
        if rewarded_today >= settings.per_inviter_per_day:
            return ReferralReward.Outcome.DAILY_LIMIT
        return ReferralReward.Outcome.REWARDED

    def record_referral(self, **fields) -> None:
        pass


class _LiveState(_State):
    """A real event's state: the same reads, and the writes, inside the event's transaction."""

    dry_run = False

    def lock(self, members: list[Member]) -> None:
        lock_member_accounts(members=members)

    def add_usage(self, *, member: Member, used: list[tuple[int, int]], starts: dict) -> None:
        rows = [
            (rule_id, period, starts[period], points)
            for rule_id, points in used
            for period in ("day", "week", "life")
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO campaigns_ruleusage (member_id, rule_id, period, period_start, points)
                SELECT %s, r, p, s, n
                  FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::bigint[]) AS u(r, p, s, n)
                ON CONFLICT (member_id, rule_id, period, period_start)
                DO UPDATE SET points = campaigns_ruleusage.points + EXCLUDED.points
                """,
                [member.pk, *[list(column) for column in zip(*rows, strict=True)]],
            )

    def charge_budget(self, *, table: str, row_id: int, points: int) -> int:
        # A conditional UPDATE under the row's lock: concurrent events never overspend.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH old AS (SELECT id, budget_used FROM {table} WHERE id = %s FOR UPDATE)
                UPDATE {table} t
                   SET budget_used = LEAST(t.budget_points, t.budget_used + %s)
                  FROM old WHERE t.id = old.id
                RETURNING t.budget_used - old.budget_used
                """,
                [row_id, points],
            )
            row = cursor.fetchone()
        return row[0] if row else 0

    def check_in(self, *, member: Member, day) -> int:
        return record_check_in(member=member, day=day)

    def advance_tasks(self, *, member: Member, progress: list[tuple[int, object]]) -> dict:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO campaigns_taskprogress AS p (member_id, task_id, period_start, count)
                SELECT %s, t, s, 1 FROM unnest(%s::bigint[], %s::date[]) AS u(t, s)
                ON CONFLICT (member_id, task_id, period_start)
                DO UPDATE SET count = p.count + 1 WHERE p.completed_at IS NULL
                RETURNING p.task_id, p.count
                """,
                [member.pk, [t for t, _s in progress], [s for _t, s in progress]],
            )
            return dict(cursor.fetchall())

    def complete_tasks(self, *, member: Member, done: list[tuple[int, object]]) -> None:
        for task_id, start in done:
            TaskProgress.objects.filter(member=member, task_id=task_id, period_start=start).update(
                completed_at=timezone.now()
            )

    def record_referral(self, **fields) -> None:
        ReferralReward.objects.create(**fields)


class _HoldState(_LiveState):
    """A held event's state (docs/adr/0018): what happened is recorded (the check-in, task
    progress, the referral's decision) under the same locks, but no budget is charged and no
    cap is used: the points are only planned, and granted if a reviewer approves."""

    charge_budget = _State.charge_budget

    def add_usage(self, *, member: Member, used: list[tuple[int, int]], starts: dict) -> None:
        pass


def _device_or_ip(device: str, ip: str):
    condition = Q(pk__in=[])
    if device:
        condition |= Q(device_id=device)
    if ip:
        condition |= Q(ip=ip)
    return condition


def _payload_device_or_ip(device: str, ip: str):
    condition = Q(pk__in=[])
    if device:
        condition |= Q(payload__attributes__device_id=device)
    if ip:
        condition |= Q(payload__attributes__ip=ip)
    return condition


# --- Planning: the same for a dry run and a real event -------------------------------------------
@dataclass
class _Plan:
    awards: list[Award]
    tasks_done: list[tuple[int, object]]
    earning_amount: Decimal  # the money that earns (growth value counts it too)


def _available_at(*, rule_pending_days, facts_type, occurred_at, programme, now):
    if rule_pending_days is None:
        if facts_type != PURCHASE:
            return now
        return purchase_available_at(occurred_at=occurred_at, programme=programme, now=now) or now
    if rule_pending_days == 0:
        return now
    release = occurred_at + timedelta(days=rule_pending_days)
    return release if release > now else now


def _plan(
    *,
    book: engine.Rulebook,
    facts: engine.Facts,
    member: Member,
    data: EventInput,
    state: _State,
    programme,
    occurred_at: datetime,
    now: datetime,
) -> _Plan:
    evaluation = engine.evaluate(book, facts)
    local_day = facts.local.date()
    starts = engine.period_starts(local_day)
    tasks = book.tasks.get(facts.type, [])
    referral = book.referral
    inviter = None
    if (
        referral.is_active
        and member.referred_by_id
        and facts.type == referral.reward_on
        and (referral.inviter_points or referral.invitee_points)
    ):
        inviter = Member.objects.select_related("tier").get(pk=member.referred_by_id)
    capped = [o for o in evaluation.rules if o.rule.has_member_caps]
    # Read-then-write under the members' account locks (lock order: accounts by id first).
    # Task progress needs no lock: its upsert counts atomically and says which event completed it.
    if capped or inviter is not None:
        state.lock([member, inviter] if inviter is not None else [member])

    def release(pending_days):
        return _available_at(
            rule_pending_days=pending_days,
            facts_type=facts.type,
            occurred_at=occurred_at,
            programme=programme,
            now=now,
        )

    awards: list[Award] = []
    usage = (
        state.rule_usage(member=member, rule_ids=[o.rule.id for o in capped], starts=starts)
        if capped
        else {}
    )
    lifetime = None
    used: list[tuple[int, int]] = []
    planned = 0
    for outcome in evaluation.rules:
        rule = outcome.rule
        room = outcome.with_campaign
        for period, cap in (
            ("day", rule.cap_per_day),
            ("week", rule.cap_per_week),
            ("life", rule.cap_lifetime),
        ):
            if cap:
                room = min(room, cap - usage.get((rule.id, period), 0))
        if rule.spend_ratio_cap is not None:
            if lifetime is None:
                lifetime = state.lifetime_spend(member=member)
            earned, spend = lifetime
            spend += evaluation.earning_amount
            room = min(room, engine.round_points(rule.spend_ratio_cap * spend) - earned - planned)
        room = max(room, 0)
        rule_points = min(outcome.points, room)
        if rule_points and rule.budget_points is not None:
            rule_points = state.charge_budget(
                table="campaigns_earningrule", row_id=rule.id, points=rule_points
            )
        extra = max(0, min(outcome.with_campaign - outcome.points, room - rule_points))
        campaign = outcome.campaign
        if extra and campaign.budget_points is not None:
            extra = state.charge_budget(
                table="campaigns_campaign", row_id=campaign.id, points=extra
            )
        available_at = release(rule.pending_days)
        if rule_points:
            awards.append(Award(rule=rule.code, points=rule_points, available_at=available_at))
        if extra:
            awards.append(
                Award(
                    rule=f"campaign:{campaign.code}",
                    points=extra,
                    available_at=available_at,
                    source_type="campaign",
                )
            )
        planned += rule_points + extra
        if rule.has_member_caps and rule_points + extra:
            used.append((rule.id, rule_points + extra))
    for campaign in evaluation.bonuses:
        points = campaign.bonus_points
        if campaign.budget_points is not None:
            points = state.charge_budget(
                table="campaigns_campaign", row_id=campaign.id, points=points
            )
        if points:
            awards.append(
                Award(
                    rule=f"campaign:{campaign.code}",
                    points=points,
                    available_at=release(None),
                    source_type="campaign",
                )
            )
    if used:
        state.add_usage(member=member, used=used, starts=starts)
    if facts.type == CHECK_IN:
        streak = state.check_in(member=member, day=local_day)
        bonus = book.check_in_rewards.get(streak)
        if bonus:
            awards.append(
                Award(
                    rule=f"check_in:day-{streak}",
                    points=bonus,
                    available_at=now,
                    source_type="check_in",
                )
            )
    tasks_done = []
    if tasks:
        tasks_done = _advance_tasks(
            tasks=tasks,
            member=member,
            local_day=local_day,
            state=state,
            programme=programme,
            awards=awards,
            now=now,
        )
    if inviter is not None:
        _refer(
            inviter=inviter,
            member=member,
            data=data,
            local_day=local_day,
            state=state,
            settings=referral,
            awards=awards,
            now=now,
        )
    return _Plan(
        awards=_merge(awards), tasks_done=tasks_done, earning_amount=evaluation.earning_amount
    )


def _advance_tasks(*, tasks, member, local_day, state, programme, awards, now):
    joined_day = member.joined_at.astimezone(programme.zone).date()
    progress = []
    for task in tasks:
        if task.kind == MemberTask.Kind.DAILY:
            progress.append((task.id, local_day))
        elif task.kind == MemberTask.Kind.NEWCOMER:
            if (local_day - joined_day).days < task.within_days:
                progress.append((task.id, joined_day))
        else:
            progress.append((task.id, engine.LIFETIME_START))
    if not progress:
        return []
    counts = state.advance_tasks(member=member, progress=progress)
    done = []
    by_id = {task.id: task for task in tasks}
    for task_id, start in progress:
        task = by_id[task_id]
        if counts.get(task_id) == task.required_count:
            done.append((task_id, start))
            awards.append(
                Award(
                    rule=f"task:{task.code}",
                    points=task.reward_points,
                    available_at=now,
                    source_type="task",
                )
            )
    return done


def _refer(*, inviter, member, data, local_day, state, settings, awards, now):
    device = str(data.attributes.get("device_id") or "")[:128]
    ip = str(data.attributes.get("ip") or "")[:64]
    outcome = state.referral(
        inviter=inviter, invitee=member, day=local_day, device=device, ip=ip, settings=settings
    )
    if outcome is None:
        return
    rewarded = outcome == ReferralReward.Outcome.REWARDED
    state.record_referral(
        inviter=inviter,
        invitee=member,
        outcome=outcome,
        points=settings.inviter_points if rewarded else 0,
        device_id=device,
        ip=ip,
        day=local_day,
    )
    if not rewarded:
        return
    if settings.inviter_points:
        awards.append(
            Award(
                rule="referral:inviter",
                points=settings.inviter_points,
                available_at=now,
                member=inviter,
                source_type="referral",
            )
        )
    if settings.invitee_points:
        awards.append(
            Award(
                rule="referral:invitee",
                points=settings.invitee_points,
                available_at=now,
                source_type="referral",
            )
        )


def _merge(awards: list[Award]) -> list[Award]:
    """One line per name and recipient (a campaign's extra and its bonus add up)."""
    merged: dict[tuple, Award] = {}
    for award in awards:
        key = (award.rule, award.member.pk if award.member else None, award.available_at)
        if key in merged:
            old = merged[key]
            merged[key] = Award(
                rule=old.rule,
                points=old.points + award.points,
                available_at=old.available_at,
                member=old.member,
                source_type=old.source_type,
            )
        else:
            merged[key] = award
    return list(merged.values())


# --- The service ----------------------------------------------------------------------------------
def facts_for(
    *, book: engine.Rulebook, member: Member, data: EventInput, partner: Partner, local: datetime
) -> engine.Facts:
    segment_ids: frozenset[int] = frozenset()
    if book.needs_segments:
        segment_ids = frozenset(
            SegmentMembership.objects.filter(member=member).values_list("segment_id", flat=True)
        )
    return engine.Facts(
        type=data.type,
        local=local,
        partner_id=partner.pk,
        amount=data.amount or Decimal("0"),
        paid_with_points=data.paid_with_points or Decimal("0"),
        items=data.items,
        channel=data.channel,
        store=data.store,
        tier_id=member.tier_id,
        tier_multiplier=member.tier.earn_multiplier,
        segment_ids=segment_ids,
        arm_ids=engine.arms_for(book, member_key=member.external_id),
    )


def record_event(*, partner: Partner, data: EventInput, dry_run: bool = False) -> EventOutcome:
    """Evaluate an event against the programme's rules and, unless `dry_run`, grant the points.

    A dry run takes exactly the same path with a read-only state (nothing written: no entry, no
    budget, no usage, no check-in), so its answer is what the real event would get now.

    Risk control (docs/adr/0018): while the programme's issuance is frozen nothing is evaluated
    (`IssuanceFrozen`); an event that passes one of the anomaly limits is stored as held, with
    no points, no budget and no cap used, until a reviewer approves or rejects it.
    """
    book = engine.rulebook()
    if data.type not in book.event_types:
        raise UnknownEventType(type=data.type)
    programme = programme_settings()
    if data.currency and data.currency != programme.currency:
        raise CurrencyMismatch(
            _("This programme accounts in %(currency)s.") % {"currency": programme.currency}
        )
    # The hot path reads the per-process copy (no query); the earn statement's guard refuses
    # whatever a stale copy lets through. A dry run has no such backstop: it reads fresh.
    ensure_issuance_open(fresh=dry_run)
    member = member_by_external_id(external_id=data.member)
    if member.is_frozen:
        raise MemberFrozen(member=member.external_id)
    now = timezone.now()
    occurred_at = data.occurred_at or now
    local = occurred_at.astimezone(programme.zone)
    facts = facts_for(book=book, member=member, data=data, partner=partner, local=local)

    def plan_with(state: _State) -> _Plan:
        return _plan(
            book=book,
            facts=facts,
            member=member,
            data=data,
            state=state,
            programme=programme,
            occurred_at=occurred_at,
            now=now,
        )

    dry_plan = None
    verdict = risk.Verdict()
    limits = book.risk
    if limits is not None and limits.any_on:
        # Decided on the read-only plan, so that a held event uses no budget and no cap.
        dry_plan = plan_with(_State()) if limits.needs_plan else None
        verdict = risk.check_limits(
            limits=limits,
            member=member,
            awards=dry_plan.awards if dry_plan else [],
            attributes=data.attributes,
            occurred_at=occurred_at,
            day=local.date(),
            zone=programme.zone,
        )
    if dry_run:
        if verdict.held:
            return EventOutcome(
                event=None,
                points_awarded=0,
                points_pending=0,
                rules_applied=[],
                held_for_review=True,
            )
        plan = dry_plan or plan_with(_State())
        own = [a for a in plan.awards if a.member is None]
        return EventOutcome(
            event=None,
            points_awarded=sum(a.points for a in own),
            points_pending=sum(a.points for a in own if a.available_at > now),
            rules_applied=plan.awards,
        )
    if verdict.held:
        return _hold(
            book=book,
            facts=facts,
            partner=partner,
            member=member,
            data=data,
            programme=programme,
            occurred_at=occurred_at,
            now=now,
            verdict=verdict,
        )
    return _record(
        book=book,
        facts=facts,
        partner=partner,
        member=member,
        data=data,
        programme=programme,
        occurred_at=occurred_at,
        now=now,
    )


def _context(facts: engine.Facts) -> dict:
    return {
        "tier": facts.tier_id,
        "tier_multiplier": str(facts.tier_multiplier),
        "segments": sorted(facts.segment_ids),
        "arms": sorted(facts.arm_ids),
        "partner": facts.partner_id,
    }


def _rules_applied(awards: list[Award]) -> list[dict]:
    return [
        {
            "rule": a.rule,
            "points": a.points,
            **({"member": a.member.external_id} if a.member else {}),
        }
        for a in awards
    ]


def _grant(
    *,
    member: Member,
    partner: Partner,
    reference: str,
    occurred_at: datetime | None,
    awards: list[Award],
    purchase: dict | None = None,
    order: Order | None = None,
) -> tuple[list[Entry], Order | None]:
    """Write the awards to the ledger: the member's points, one lot per release moment
    (usually one), and another member's (a referral's inviter) as their own lot.

    For a purchase the first lot is the order's earn, which a refund reverses: with `purchase`
    (amount, currency, paid_with_points) the order is recorded with it; with `order` (a held
    purchase, recorded without points) the first lot becomes that order's earn.
    """
    own = [a for a in awards if a.member is None]
    entries = []
    groups: dict[datetime, list[Award]] = defaultdict(list)
    for award in own:
        groups[award.available_at].append(award)
    grouped = sorted(groups.items(), key=lambda item: item[0])
    if purchase is not None:
        first_at, first = grouped[0] if grouped else (None, [])
        result = record_purchase(
            member=member,
            partner=partner,
            reference=reference,
            points=sum(a.points for a in first),
            occurred_at=occurred_at,
            available_at=first_at,
            source_type="rule",
            source_id=",".join(a.rule for a in first)[:64],
            **purchase,
        )
        order = result.order
        if result.earn is not None:
            entries.append(result.earn.entry)
        grouped = grouped[1:]
    elif order is not None and grouped:
        first_at, first = grouped[0]
        entries.append(
            earn(
                member=member,
                points=sum(a.points for a in first),
                partner=partner,
                reference=reference,
                source_type="rule",
                source_id=",".join(a.rule for a in first)[:64],
                occurred_at=occurred_at,
                available_at=first_at,
                order=order,
            ).entry
        )
        grouped = grouped[1:]
    for available_at, group in grouped:
        entries.append(
            earn(
                member=member,
                points=sum(a.points for a in group),
                partner=partner,
                reference=reference,
                source_type=group[0].source_type,
                source_id=",".join(a.rule for a in group)[:64],
                occurred_at=occurred_at,
                available_at=available_at,
            ).entry
        )
    for award in awards:
        if award.member is not None:  # a referral's inviter: their own lot
            earn(
                member=award.member,
                points=award.points,
                partner=partner,
                reference=reference,
                source_type=award.source_type,
                source_id=member.external_id[:64],
                available_at=award.available_at,
            )
    for entry in entries:
        entry.partner = partner  # the response names the merchant: no query for it
    return entries, order


_EVENT_FIELDS = (
    "partner",
    "type",
    "member",
    "reference",
    "occurred_at",
    "payload",
    "points_awarded",
    "points_pending",
    "outcome",
    "rules_applied",
    "context",
)


def _event_insert_sql() -> str:
    fields = [Event._meta.get_field(name) for name in _EVENT_FIELDS]
    qn = connection.ops.quote_name
    return (
        f"INSERT INTO {qn(Event._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))})"
        f" RETURNING {qn(Event._meta.pk.column)}, {qn(Event._meta.get_field('received_at').column)}"
    )


_EVENT_INSERT_SQL = _event_insert_sql()


def _insert_event(**values) -> Event:
    """Event.objects.create(**values) without compiling an INSERT per event (the hot path,
    docs/adr/0019): the same row, each value prepared by its model field as the ORM would, and
    the same saved Event (received_at from the database's clock)."""
    params = []
    for name in _EVENT_FIELDS:
        field = Event._meta.get_field(name)
        value = values[name]
        if field.is_relation:
            value = value.pk
        params.append(field.get_db_prep_save(value, connection))
    # A prepared statement of the connection, like the ledger's: planned once per connection.
    with statement_cursor() as cursor:
        cursor.execute(_EVENT_INSERT_SQL, params)
        event_id, received_at = cursor.fetchone()
    event = Event(pk=event_id, received_at=received_at, **values)
    event._state.adding = False
    event._state.db = connection.alias
    return event


@transaction.atomic(savepoint=False)
def _record(*, book, facts, partner, member, data, programme, occurred_at, now) -> EventOutcome:
    state = _LiveState()
    plan = _plan(
        book=book,
        facts=facts,
        member=member,
        data=data,
        state=state,
        programme=programme,
        occurred_at=occurred_at,
        now=now,
    )
    if plan.tasks_done:
        state.complete_tasks(member=member, done=plan.tasks_done)
    own = [a for a in plan.awards if a.member is None]
    points = sum(a.points for a in own)
    pending = sum(a.points for a in own if a.available_at > now)
    purchase = None
    if data.type == PURCHASE:
        purchase = {
            "amount": data.amount,
            "currency": data.currency or programme.currency,
            "paid_with_points": data.paid_with_points or Decimal("0"),
        }
    entries, order = _grant(
        member=member,
        partner=partner,
        reference=data.reference,
        occurred_at=data.occurred_at,
        awards=plan.awards,
        purchase=purchase,
    )
    # Growth value (members) in the same transaction: a threshold reached upgrades at once.
    if order is not None:
        growth_for_purchase(
            member=member,
            spent=plan.earning_amount,
            order_id=order.pk,
            reference=data.reference,
            occurred_at=data.occurred_at,
        )
    else:
        growth_for_event(
            member=member,
            event_type=data.type,
            reference=data.reference,
            occurred_at=data.occurred_at,
        )
    event = _insert_event(
        partner=partner,
        type=data.type,
        member=member,
        reference=data.reference,
        occurred_at=occurred_at,
        payload=data.payload,
        points_awarded=points,
        points_pending=pending,
        outcome=Event.Outcome.AWARDED if points else Event.Outcome.NO_POINTS,
        rules_applied=_rules_applied(plan.awards),
        context=_context(facts),
    )
    risk.log_device_reward(
        event=event, awards=plan.awards, attributes=data.attributes, day=facts.local.date()
    )
    return EventOutcome(
        event=event,
        points_awarded=points,
        points_pending=pending,
        rules_applied=plan.awards,
        entries=entries,
    )


# --- Risk control: held events and their review (docs/adr/0018) ---------------------------------
def _award_json(award: Award) -> dict:
    return {
        "rule": award.rule,
        "points": award.points,
        "available_at": award.available_at.isoformat(),
        "member": award.member.external_id if award.member else None,
        "source_type": award.source_type,
    }


@transaction.atomic(savepoint=False)
def _hold(
    *, book, facts, partner, member, data, programme, occurred_at, now, verdict
) -> EventOutcome:
    """Store an event that passed a risk limit, with the awards it would get and why it was
    held; no points, no budget, no cap used. What happened is still recorded (a purchase's
    order, so its reference stays taken; the check-in; task progress; the referral's decision),
    so approval grants exactly these awards and a rejection cannot simply be retried."""
    state = _HoldState()
    plan = _plan(
        book=book,
        facts=facts,
        member=member,
        data=data,
        state=state,
        programme=programme,
        occurred_at=occurred_at,
        now=now,
    )
    if plan.tasks_done:
        state.complete_tasks(member=member, done=plan.tasks_done)
    growth_spent = None
    if data.type == PURCHASE:
        record_purchase(
            member=member,
            partner=partner,
            reference=data.reference,
            amount=data.amount,
            currency=data.currency or programme.currency,
            paid_with_points=data.paid_with_points or Decimal("0"),
            points=0,
            occurred_at=data.occurred_at,
        )
        growth_spent = plan.earning_amount
    event = Event.objects.create(
        partner=partner,
        type=data.type,
        member=member,
        reference=data.reference,
        occurred_at=occurred_at,
        payload=data.payload,
        points_awarded=0,
        points_pending=0,
        outcome=Event.Outcome.HELD,
        rules_applied=[],
        context=_context(facts),
    )
    HeldEvent.objects.create(
        event=event,
        reasons=verdict.reasons,
        details=verdict.details,
        awards=[_award_json(a) for a in plan.awards],
        points=sum(a.points for a in plan.awards if a.member is None),
        growth_spent=growth_spent,
    )
    risk.log_device_reward(
        event=event, awards=plan.awards, attributes=data.attributes, day=facts.local.date()
    )
    return EventOutcome(
        event=event, points_awarded=0, points_pending=0, rules_applied=[], held_for_review=True
    )


def _held_awards(hold: HeldEvent, *, now: datetime) -> list[Award]:
    others = {a["member"] for a in hold.awards if a["member"]}
    members = {m.external_id: m for m in Member.objects.filter(external_id__in=others)}
    awards = []
    for line in hold.awards:
        if not line["points"]:
            continue
        available_at = max(datetime.fromisoformat(line["available_at"]), now)
        awards.append(
            Award(
                rule=line["rule"],
                points=line["points"],
                available_at=available_at,
                member=members.get(line["member"]) if line["member"] else None,
                source_type=line["source_type"],
            )
        )
    return awards


def _lock_pending_hold(hold_id: int) -> HeldEvent | None:
    """The held event, row-locked, if it still waits for a decision (a double click, or two
    reviewers at once: the second finds it decided and does nothing)."""
    hold = (
        HeldEvent.objects.select_for_update(of=("self",))
        .select_related("event__member__tier", "event__partner")
        .filter(pk=hold_id)
        .first()
    )
    if hold is None or hold.status != HeldEvent.Status.PENDING:
        return None
    return hold


@transaction.atomic
def approve_held_event(*, hold_id: int, reviewer) -> bool:
    """Grant a held event exactly the awards stored with it, with the original event's
    reference (a purchase's points become its order's earn, which a refund reverses), and its
    growth value; the event becomes awarded. Returns False, doing nothing, when it was already
    decided. Refused while issuance is frozen (`IssuanceFrozen`) and for a purchase refunded
    since it was held (`HeldEventNotApprovable`: reject it instead).

    Lock order: the held event's row, then accounts by id (docs/adr/0001).
    """
    hold = _lock_pending_hold(hold_id)
    if hold is None:
        return False
    ensure_issuance_open()
    event = hold.event
    member = event.member
    now = timezone.now()
    awards = _held_awards(hold, now=now)
    order = None
    if event.type == PURCHASE:
        order = Order.objects.filter(partner_id=event.partner_id, reference=event.reference).first()
        if order is not None and order.refunded_amount:
            raise HeldEventNotApprovable(
                _("The order was refunded after the event was held: reject it instead."),
                event=event.pk,
            )
    others = [a.member for a in awards if a.member is not None]
    if others:
        lock_member_accounts(members=[member, *others])
    occurred_at = event.occurred_at  # expiry counts from the event, as if granted then
    _grant(
        member=member,
        partner=event.partner,
        reference=event.reference,
        occurred_at=occurred_at,
        awards=awards,
        order=order,
    )
    if order is not None and hold.growth_spent:
        growth_for_purchase(
            member=member,
            spent=hold.growth_spent,
            order_id=order.pk,
            reference=event.reference,
            occurred_at=occurred_at,
        )
    elif event.type != PURCHASE:
        growth_for_event(
            member=member, event_type=event.type, reference=event.reference, occurred_at=occurred_at
        )
    own = [a for a in awards if a.member is None]
    event.points_awarded = sum(a.points for a in own)
    event.points_pending = sum(a.points for a in own if a.available_at > now)
    event.outcome = Event.Outcome.AWARDED if event.points_awarded else Event.Outcome.NO_POINTS
    event.rules_applied = _rules_applied(awards)
    event.save(update_fields=["points_awarded", "points_pending", "outcome", "rules_applied"])
    hold.status = HeldEvent.Status.APPROVED
    hold.reviewer = reviewer
    hold.decided_at = now
    hold.save(update_fields=["status", "reviewer", "decided_at"])
    return True


@transaction.atomic
def reject_held_event(*, hold_id: int, reviewer, reason: str) -> bool:
    """Refuse a held event its points, with the reviewer's reason; the event stays, held and
    with no points. Returns False, doing nothing, when it was already decided."""
    reason = (reason or "").strip()
    if not reason:
        raise HeldEventNotApprovable(_("A rejection needs a reason."))
    hold = _lock_pending_hold(hold_id)
    if hold is None:
        return False
    hold.status = HeldEvent.Status.REJECTED
    hold.reviewer = reviewer
    hold.decided_at = timezone.now()
    hold.decision_reason = reason
    hold.save(update_fields=["status", "reviewer", "decided_at", "decision_reason"])
    # The event keeps its outcome `held` (the decision is on the HeldEvent): replays
    # (campaigns.simulation) skip it like any held event, rather than count it as issuing 0.
    return True


@transaction.atomic(savepoint=False)
def refund_purchase(
    *, partner: Partner, reference: str, amount: Decimal | None = None
) -> RefundResult:
    """Refund (part of) an order: the ledger reverses its points (points.services.refund_order)
    and the member's growth value is taken back in the same proportion, in one transaction.

    Orchestrated here because points knows nothing of growth value (docs/adr/0007).
    """
    result = refund_order(partner=partner, reference=reference, amount=amount)
    order = Order.objects.get(partner_id=partner.pk, reference=reference)
    growth_reverse_for_order(order=order)
    return result


def erase_event_personal_data(*, member) -> None:
    """Personal data erasure step (members.personal_data): stored event payloads keep their
    amounts and items for audit and replay, but lose the member's old id and the attributes
    (device, IP) a partner sent."""
    Event.objects.filter(member=member).update(
        payload=RawSQL(
            "(payload - 'attributes') || jsonb_build_object('member', %s::text)",
            (member.external_id,),
        )
    )


# --- The default programme ------------------------------------------------------------------------
DEFAULT_EVENT_TYPES = [
    ("purchase", "购物 / Purchase"),
    ("registration", "注册 / Registration"),
    ("check_in", "签到 / Check-in"),
    ("review", "评价 / Review"),
    ("share", "分享 / Share"),
    ("birthday", "生日 / Birthday"),
    ("referral", "邀请 / Referral"),
]
DEFAULT_PURCHASE_RULE = "default-purchase"


def ensure_default_programme() -> None:
    """The default programme's event types and purchase rule (1 point per 1.00), as migration
    campaigns.0003 creates them; for a database whose tables were emptied (tests, a reset)."""
    from campaigns.models import EarningRule, EventType, RulebookState

    for code, name in DEFAULT_EVENT_TYPES:
        EventType.objects.get_or_create(code=code, defaults={"name": name})
    EarningRule.objects.get_or_create(
        code=DEFAULT_PURCHASE_RULE,
        defaults={
            "name": "消费返积分 / Points on purchases",
            "event_type": PURCHASE,
            "status": EarningRule.Status.ACTIVE,
            "priority": 10,
            "points_per_unit": Decimal("1"),
        },
    )
    RulebookState.bump()
    engine.drop_local_rulebook()
