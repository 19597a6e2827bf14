"""Reads on members shared by the API, the admin and the mall."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from loyalty_site.prepared import statement_cursor
from members.exceptions import MemberNotFound
from members.models import (
    CheckIn,
    InboxMessage,
    Member,
    Segment,
    SegmentMembership,
    SegmentSize,
    Tier,
)
from members.sql import SETTINGS_CTE, settings_params


def member_by_external_id(*, external_id: str) -> Member:
    """The member with this external id (tier loaded), or MemberNotFound (404 not_found).

    On the hot path of every partner call (POST /events): the same row and objects as
    `select_related("tier").get(...)`, from one SQL string built once, so no query is compiled
    per call (docs/adr/0019)."""
    sql = _member_with_tier_sql()
    if sql is None:
        try:
            # get(), not first(): no ORDER BY.
            return Member.objects.select_related("tier").get(external_id=external_id)
        except Member.DoesNotExist:
            raise MemberNotFound(external_id=external_id) from None
    with statement_cursor() as cursor:
        cursor.execute(sql, [external_id])
        row = cursor.fetchone()
    if row is None:
        raise MemberNotFound(external_id=external_id)
    member_fields, tier_fields = _MEMBER_ATTNAMES, _TIER_ATTNAMES
    db = connection.alias
    member = Member.from_db(db, member_fields, row[: len(member_fields)])
    member.tier = Tier.from_db(db, tier_fields, row[len(member_fields) :])
    return member


_MEMBER_ATTNAMES = [field.attname for field in Member._meta.concrete_fields]
_TIER_ATTNAMES = [field.attname for field in Tier._meta.concrete_fields]
_member_sql: list[str | None] = []


def _member_with_tier_sql() -> str | None:
    """The lookup's SELECT, or None when a column needs a converter from the database value
    (say a JSONField added later): then the ORM does the lookup, which applies it."""
    if not _member_sql:
        fields = [*Member._meta.concrete_fields, *Tier._meta.concrete_fields]
        plain = not any(
            field.get_db_converters(connection)
            or connection.ops.get_db_converters(field.get_col(field.model._meta.db_table))
            for field in fields
        )
        qn = connection.ops.quote_name
        columns = [f"m.{qn(f.column)}" for f in Member._meta.concrete_fields] + [
            f"t.{qn(f.column)}" for f in Tier._meta.concrete_fields
        ]
        tier_fk = Member._meta.get_field("tier")
        # A member always has a tier (tier_id NOT NULL): an inner join loses no member.
        plain = plain and not tier_fk.null
        sql = (
            f"SELECT {', '.join(columns)} FROM {qn(Member._meta.db_table)} m"
            f" JOIN {qn(Tier._meta.db_table)} t ON t.{qn(Tier._meta.pk.column)} ="
            f" m.{qn(tier_fk.column)} WHERE m.{qn(Member._meta.get_field('external_id').column)}"
            " = %s"
        )
        _member_sql.append(sql if plain else None)
    return _member_sql[0]


def member_search(*, queryset: QuerySet[Member], term: str) -> QuerySet[Member]:
    """Members whose external id or phone is exactly `term`, or whose name starts with it
    (case-insensitive); an email is matched exactly too.

    Every branch is served by an index (members_member_*_like, member_name_upper_prefix_idx),
    so the search stays fast on a million members; a "contains" search would scan them all.
    """
    term = term.strip()
    if not term:
        return queryset
    condition = Q(external_id=term) | Q(phone=term) | Q(name__istartswith=term)
    if "@" in term:
        condition |= Q(email=term)
    return queryset.filter(condition)


@dataclass(frozen=True)
class TierStatus:
    """Where a member stands: tier, growth, the next tier and the tier they will hold when the
    current tier period ends if nothing changes (`projected_tier`)."""

    tier: Tier
    growth: int
    next_tier: Tier | None
    growth_needed: int
    percent: int
    projected_tier: Tier
    period_ends_at: datetime | None
    growth_at_period_end: int
    growth_to_keep: int


_GROWTH_AT_SQL = f"""
WITH {SETTINGS_CTE}
SELECT c.max_down,
       COALESCE((SELECT sum(g.amount) FROM members_growthentry g
                  WHERE g.member_id = %(member_id)s AND g.counts_at > b.window_start
                    AND g.counts_at <= %(until)s), 0)
  FROM cfg c, bounds b
"""


def _growth_counting_at(*, member_id: int, moment: datetime, until: datetime) -> tuple[int, int]:
    """(max tiers down, growth of entries up to `until` that still count in the window at
    `moment`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _GROWTH_AT_SQL, {**settings_params(moment), "member_id": member_id, "until": until}
        )
        max_down, growth = cursor.fetchone()
    return int(max_down), int(growth)


def _qualifying_position(tiers: list[Tier], growth: int) -> int:
    position = 0
    for index, tier in enumerate(tiers):
        if tier.growth_threshold <= growth:
            position = index
    return position


def member_tier_status(*, member: Member, now: datetime | None = None) -> TierStatus:
    """The member's tier progress, in two queries (the tiers, the growth still counting at the
    end of the period). The projection applies the same rule as `evaluate_tiers`: at the end of
    the period the member keeps the tier if the growth that still counts then holds it, else
    moves down to the tier it holds, by at most the configured number of tiers."""
    now = now or timezone.now()
    tiers = list(Tier.objects.order_by("rank"))
    current = next((i for i, tier in enumerate(tiers) if tier.pk == member.tier_id), 0)
    tier = tiers[current] if tiers else member.tier
    next_tier = tiers[current + 1] if current + 1 < len(tiers) else None
    growth = member.growth
    needed, percent = 0, 100
    if next_tier is not None:
        needed = max(next_tier.growth_threshold - growth, 0)
        span = max(next_tier.growth_threshold - tier.growth_threshold, 1)
        percent = int(min(max(growth - tier.growth_threshold, 0), span) * 100 / span)
    period_ends_at = member.tier_period_ends_at
    moment = max(period_ends_at, now) if period_ends_at else now
    max_down, growth_then = _growth_counting_at(member_id=member.pk, moment=moment, until=now)
    projected = current
    if period_ends_at is not None:
        holds = _qualifying_position(tiers, growth_then)
        if holds < current:
            projected = max(holds, current - max_down)
    return TierStatus(
        tier=tier,
        growth=growth,
        next_tier=next_tier,
        growth_needed=needed,
        percent=percent,
        projected_tier=tiers[projected] if tiers else tier,
        period_ends_at=period_ends_at,
        growth_at_period_end=growth_then,
        growth_to_keep=max(tier.growth_threshold - growth_then, 0) if period_ends_at else 0,
    )


def member_segments(*, member: Member) -> list[Segment]:
    """The segments the member was in at the latest segment computation that placed them."""
    latest = (
        SegmentMembership.objects.filter(member_id=member.pk)
        .order_by("-as_of")
        .values_list("as_of", flat=True)
        .first()
    )
    if latest is None:
        return []
    return list(Segment.objects.filter(memberships__member_id=member.pk, memberships__as_of=latest))


def segment_members(*, segment: Segment, as_of: date | None = None) -> QuerySet[Member]:
    """The members of a segment at its latest computation (or on `as_of`): for targeting."""
    if as_of is None:
        as_of = (
            SegmentMembership.objects.filter(segment=segment)
            .order_by("-as_of")
            .values_list("as_of", flat=True)
            .first()
        )
    return Member.objects.filter(
        segment_memberships__segment=segment, segment_memberships__as_of=as_of
    )


def segment_size_history(*, days: int = 90, today: date | None = None) -> dict:
    """{"days": [dates], "series": [(segment, [size per day or None])]} over the last `days`
    days that have sizes: what the admin chart draws."""
    today = today or timezone.localdate()
    rows = list(
        SegmentSize.objects.filter(as_of__gt=today - timedelta(days=days), as_of__lte=today)
        .select_related("segment")
        .order_by("as_of", "segment__position")
    )
    day_list = sorted({row.as_of for row in rows})
    index = {day: i for i, day in enumerate(day_list)}
    series: dict[int, tuple[Segment, list]] = {}
    for row in rows:
        _segment, sizes = series.setdefault(row.segment_id, (row.segment, [None] * len(day_list)))
        sizes[index[row.as_of]] = row.members
    ordered = sorted(series.values(), key=lambda item: (item[0].position, item[0].code))
    return {"days": day_list, "series": ordered}


@dataclass(frozen=True)
class Inbox:
    messages: list[InboxMessage]
    unread: int


def member_inbox(*, member: Member, limit: int = 5) -> Inbox:
    """The member's newest messages (at most `limit`) and how many are unread, in two queries."""
    messages = list(
        InboxMessage.objects.filter(member_id=member.pk).order_by("-created_at", "-id")[:limit]
    )
    unread = InboxMessage.objects.filter(member_id=member.pk, read_at__isnull=True).count()
    return Inbox(messages=messages, unread=unread)


def member_check_in_today(*, member: Member, today: date) -> dict:
    """Whether the member checked in on `today` (a local date) and their current streak (today's,
    or yesterday's while today's check-in is still open; 0 once a day was missed)."""
    latest = (
        CheckIn.objects.filter(member=member, day__gte=today - timedelta(days=1))
        .order_by("-day")
        .values_list("day", "streak")
        .first()
    )
    if latest is None:
        return {"done": False, "streak": 0}
    day, streak = latest
    return {"done": day == today, "streak": streak}
