"""Writes on members. Every function is keyword-only and runs in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty_site.prepared import statement_cursor
from members.exceptions import (
    AlreadyCheckedIn,
    InvalidGrowth,
    InvalidStatusChange,
    MemberErased,
    MemberNotFound,
    UnknownReferralCode,
)
from members.models import (
    CheckIn,
    GrowthEntry,
    GrowthEventRule,
    InboxMessage,
    Member,
    MemberStatusChange,
    Tier,
    new_referral_code,
)
from members.sql import SETTINGS_CTE, settings_params


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# "Not given" for member_upsert, as opposed to None, which clears a nullable field.
UNSET: Any = _Unset()

# Which status a member may go to from each status; closing is final.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    Member.Status.ACTIVE: frozenset({Member.Status.FROZEN, Member.Status.CLOSED}),
    Member.Status.FROZEN: frozenset({Member.Status.ACTIVE, Member.Status.CLOSED}),
    Member.Status.CLOSED: frozenset(),
}

REFERRAL_CODE_ATTEMPTS = 5


@dataclass(frozen=True)
class MemberUpsert:
    member: Member
    created: bool


def _constraint_name(error: IntegrityError) -> str:
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) or ""


def _normalized_referral_code(code: str) -> str:
    return code.strip().upper()


@transaction.atomic
def member_upsert(
    *,
    external_id: str,
    name: str = UNSET,
    phone: str = UNSET,
    email: str = UNSET,
    birthday: date | None = UNSET,
    marketing_consent: bool = UNSET,
    language: str = UNSET,
    referral_code: str | None = None,
) -> MemberUpsert:
    """Create the member, or update the profile fields that were given.

    Fields left UNSET keep their value; `birthday=None` clears the birthday. A new member starts
    in the entry tier. `referral_code` (the inviter's) is used only when the member is created:
    an existing member's inviter never changes. Two concurrent calls for the same new
    `external_id` create one member; the later one updates it.
    """
    given = {
        field: value
        for field, value in {
            "name": name,
            "phone": phone,
            "email": email,
            "birthday": birthday,
            "marketing_consent": marketing_consent,
            "language": language,
        }.items()
        if value is not UNSET
    }
    member = (
        Member.objects.select_for_update(of=("self",))
        .select_related("tier")
        .filter(external_id=external_id)
        .first()
    )
    if member is not None:
        changed = [field for field, value in given.items() if getattr(member, field) != value]
        for field in changed:
            setattr(member, field, given[field])
        if changed:
            member.save(update_fields=[*changed, "updated_at"])
        return MemberUpsert(member=member, created=False)

    inviter = None
    if referral_code and referral_code.strip():
        inviter = Member.objects.filter(
            referral_code=_normalized_referral_code(referral_code)
        ).first()
        if inviter is None:
            raise UnknownReferralCode(referral_code=referral_code)
    member = Member(external_id=external_id, tier=Tier.entry_tier(), referred_by=inviter, **given)
    for _attempt in range(REFERRAL_CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                member.save(force_insert=True)
            return MemberUpsert(member=member, created=True)
        except IntegrityError as error:
            constraint = _constraint_name(error)
            if "external_id" in constraint:
                # A concurrent request created the same member first: this one is an update.
                return member_upsert(external_id=external_id, **given)
            if "referral_code" not in constraint:
                raise
            # A referral code collision is rare (32^6 codes): draw again rather than fail.
            member.referral_code = new_referral_code()
    raise IntegrityError("no free referral code after several attempts")


@transaction.atomic
def member_set_status(
    *,
    member: Member,
    status: str,
    operator: AbstractBaseUser | None,
    reason: str,
) -> Member:
    """Freeze, unfreeze or close a member, recording who did it and why.

    Allowed: active <-> frozen, active or frozen -> closed; closed is final. The member row is
    locked, so two operators changing the same member at once apply one after the other and the
    second sees the first's result. Raises InvalidStatusChange for anything else or a blank
    reason; nothing is written then.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidStatusChange(_("Give a reason for the status change."))
    locked = Member.objects.select_for_update(of=("self",)).get(pk=member.pk)
    if status not in STATUS_TRANSITIONS.get(locked.status, ()):
        raise InvalidStatusChange(
            _("A %(current)s member cannot become %(new)s.")
            % {
                "current": Member.Status(locked.status).label,
                "new": Member.Status(status).label if status in Member.Status else status,
            },
            current=locked.status,
        )
    MemberStatusChange.objects.create(
        member=locked,
        from_status=locked.status,
        to_status=status,
        reason=reason,
        operator=operator,
    )
    locked.status = status
    locked.save(update_fields=["status", "updated_at"])
    member.status = locked.status
    member.updated_at = locked.updated_at
    return locked


# --- Growth value (成长值) and tiers (docs/adr/0007) ------------------------------------------
_GROWTH_SQL = f"""
WITH {SETTINGS_CTE},
m AS (
    SELECT id, tier_id FROM members_member WHERE id = %(member_id)s FOR UPDATE
),
ins AS (
    INSERT INTO members_growthentry (member_id, kind, amount, reference, source_type, source_id,
                                     memo, counts_at)
    SELECT m.id, %(kind)s, v.amount, %(reference)s, %(source_type)s, %(source_id)s, %(memo)s,
           %(counts_at)s
      FROM m, cfg c,
           LATERAL (SELECT COALESCE(%(amount)s::integer,
                                    floor(%(spent)s::numeric * c.growth_per_unit)::integer)
                    AS amount) v
     WHERE v.amount <> 0
    RETURNING id, amount, counts_at
),
total AS (
    -- The statement does not see its own insert: add it.
    SELECT COALESCE((SELECT sum(g.amount) FROM members_growthentry g, bounds b
                      WHERE g.member_id = %(member_id)s
                        AND g.counts_at > b.window_start AND g.counts_at <= %(now)s), 0)
         + COALESCE((SELECT sum(i.amount) FROM ins i, bounds b
                      WHERE i.counts_at > b.window_start AND i.counts_at <= %(now)s), 0)
           AS growth
),
upd AS (
    UPDATE members_member mm SET growth = t.growth
      FROM total t, m
     WHERE mm.id = m.id AND EXISTS (SELECT 1 FROM ins)
    RETURNING mm.growth, mm.tier_id
)
SELECT m.id, i.id, i.amount, u.growth, cur.rank,
       (SELECT q.rank FROM members_tier q WHERE q.growth_threshold <= u.growth
         ORDER BY q.rank DESC LIMIT 1)
  FROM m LEFT JOIN ins i ON true LEFT JOIN upd u ON true
       LEFT JOIN members_tier cur ON cur.id = u.tier_id
"""


# The tier rule, for the members with id in [first, last): growth over the window is
# refreshed; a member whose growth reaches a higher tier moves up at once (a new tier period
# starts); at the end of the tier period a member whose growth no longer holds the tier moves
# down to the tier it holds, by at most `max_tiers_down` tiers, and a new period starts. The
# entry tier has no period. Every move writes a TierChange and a `tier.changed` outbox event.
_EVALUATE_SQL = f"""
WITH {SETTINGS_CTE},
tiers AS (
    SELECT id, code, rank, growth_threshold,
           (row_number() OVER (ORDER BY rank) - 1)::integer AS pos
      FROM members_tier
),
locked AS (
    SELECT m.id, m.external_id, m.tier_id, m.growth, m.tier_period_ends_at
      FROM members_member m
     WHERE m.id >= %(first)s AND m.id < %(last)s
     ORDER BY m.id
       FOR UPDATE OF m
),
window_growth AS (
    SELECT g.member_id, sum(g.amount)::integer AS growth
      FROM members_growthentry g, bounds b
     WHERE g.member_id >= %(first)s AND g.member_id < %(last)s
       AND g.counts_at > b.window_start AND g.counts_at <= %(now)s
     GROUP BY g.member_id
),
decided AS (
    SELECT l.*, w.new_growth, t.pos AS cur_pos, q.pos AS q_pos,
           l.tier_period_ends_at IS NOT NULL AND l.tier_period_ends_at <= %(now)s AS period_ended,
           CASE WHEN q.pos > t.pos THEN q.pos
                WHEN l.tier_period_ends_at <= %(now)s AND q.pos < t.pos
                    THEN GREATEST(q.pos, t.pos - c.max_down)
                ELSE t.pos END AS new_pos
      FROM locked l
      JOIN tiers t ON t.id = l.tier_id
      CROSS JOIN cfg c
      LEFT JOIN window_growth g ON g.member_id = l.id
      CROSS JOIN LATERAL (SELECT COALESCE(g.growth, 0) AS new_growth) w
      CROSS JOIN LATERAL (SELECT COALESCE(max(x.pos), 0) AS pos FROM tiers x
                           WHERE x.growth_threshold <= w.new_growth) q
),
changes AS (
    SELECT d.id, d.external_id, d.tier_id AS from_id, nt.id AS to_id, d.new_growth, d.cur_pos,
           d.new_pos, d.period_ended, d.tier_period_ends_at
      FROM decided d JOIN tiers nt ON nt.pos = d.new_pos
     WHERE d.new_growth <> d.growth OR d.new_pos <> d.cur_pos OR d.period_ended
        OR (d.new_pos > 0) <> (d.tier_period_ends_at IS NOT NULL)
),
upd AS (
    UPDATE members_member m
       SET growth = c.new_growth,
           tier_id = c.to_id,
           tier_since = CASE WHEN c.new_pos <> c.cur_pos THEN %(now)s ELSE m.tier_since END,
           tier_period_ends_at = CASE
               WHEN c.new_pos = 0 THEN NULL
               WHEN c.new_pos > c.cur_pos OR c.tier_period_ends_at IS NULL THEN b.new_period_end
               WHEN c.period_ended THEN GREATEST(
                   (c.tier_period_ends_at AT TIME ZONE cf.zone
                        + make_interval(months => cf.period_months)) AT TIME ZONE cf.zone,
                   b.new_period_end)
               ELSE m.tier_period_ends_at END
      FROM changes c, bounds b, cfg cf
     WHERE m.id = c.id
    RETURNING m.id
),
moved AS (
    INSERT INTO members_tierchange (member_id, from_tier_id, to_tier_id, reason, growth,
                                    changed_at)
    SELECT c.id, c.from_id, c.to_id,
           CASE WHEN c.new_pos > c.cur_pos THEN 'upgrade' ELSE 'period_end' END,
           c.new_growth, %(now)s
      FROM changes c WHERE c.new_pos <> c.cur_pos
    RETURNING member_id, from_tier_id, to_tier_id, reason, growth
),
events AS (
    INSERT INTO points_outboxevent (type, account_id, member_external_id, payload)
    SELECT 'tier.changed', a.id, c.external_id,
           jsonb_build_object('member', c.external_id, 'from', ft.code, 'to', tt.code,
                              'reason', mv.reason, 'growth', mv.growth,
                              'changed_at', %(now)s::timestamptz)
      FROM moved mv
      JOIN changes c ON c.id = mv.member_id
      JOIN tiers ft ON ft.id = mv.from_tier_id
      JOIN tiers tt ON tt.id = mv.to_tier_id
      LEFT JOIN points_account a ON a.member_id = mv.member_id
)
SELECT (SELECT count(*) FROM locked),
       (SELECT count(*) FROM upd),
       (SELECT count(*) FROM moved WHERE reason = 'upgrade'),
       (SELECT count(*) FROM moved WHERE reason = 'period_end')
"""


@dataclass(frozen=True)
class GrowthResult:
    entry_id: int
    amount: int
    growth: int
    upgraded: bool


@dataclass
class TierRun:
    members: int = 0
    updated: int = 0
    upgraded: int = 0
    downgraded: int = 0
    chunks: int = 0


def _evaluate_range(*, first: int, last: int, as_of: datetime) -> TierRun:
    params = {**settings_params(as_of), "first": first, "last": last}
    with connection.cursor() as cursor:
        cursor.execute(_EVALUATE_SQL, params)
        members, updated, upgraded, downgraded = cursor.fetchone()
    return TierRun(members, updated, upgraded, downgraded, 1)


def _record_growth(
    *,
    member: Member,
    kind: str,
    amount: int | None = None,
    spent: Decimal | None = None,
    counts_at: datetime | None = None,
    reference: str = "",
    source_type: str = "",
    source_id="",
    memo: str = "",
) -> GrowthResult | None:
    """Append a growth entry (`amount`, or `spent` x the growth rate rounded down), refresh the
    member's growth over the window and move the member up at once if it reaches a higher tier.
    Nothing is written when the amount is 0. Lock order: after the points account (a purchase
    or a refund locked it first), the member row."""
    now = timezone.now()
    counts_at = min(counts_at or now, now)
    params = {
        **settings_params(now),
        "member_id": member.pk,
        "kind": kind,
        "amount": amount,
        "spent": spent,
        "counts_at": counts_at,
        "reference": reference or "",
        "source_type": source_type or "",
        "source_id": "" if source_id is None else str(source_id),
        "memo": memo or "",
    }
    with statement_cursor() as cursor:
        cursor.execute(_GROWTH_SQL, params)
        row = cursor.fetchone()
    if row is None:
        raise MemberNotFound(external_id=member.external_id)
    _member_id, entry_id, written, growth, current_rank, qualifying_rank = row
    if entry_id is None:
        return None
    member.growth = growth
    upgraded = qualifying_rank is not None and qualifying_rank > current_rank
    if upgraded:
        _evaluate_range(first=member.pk, last=member.pk + 1, as_of=now)
        fresh = Member.objects.select_related("tier").get(pk=member.pk)
        member.tier, member.tier_since = fresh.tier, fresh.tier_since
        member.tier_period_ends_at = fresh.tier_period_ends_at
    return GrowthResult(entry_id=entry_id, amount=written, growth=growth, upgraded=upgraded)


@transaction.atomic(savepoint=False)
def growth_for_purchase(
    *,
    member: Member,
    spent: Decimal,
    order_id: int,
    reference: str = "",
    occurred_at: datetime | None = None,
) -> GrowthResult | None:
    """Growth value for a purchase: `spent` (the money part) x the growth rate, rounded down;
    counted in the window from `occurred_at`. Upgrades the member at once when a threshold is
    reached, in this transaction. None when the purchase earns no growth."""
    if Decimal(spent) <= 0:
        return None
    return _record_growth(
        member=member,
        kind=GrowthEntry.Kind.PURCHASE,
        spent=Decimal(spent),
        counts_at=occurred_at,
        reference=reference,
        source_type="order",
        source_id=order_id,
    )


@transaction.atomic(savepoint=False)
def growth_reverse_for_order(*, order) -> GrowthResult | None:
    """Take back the growth of a refunded order (points.Order, locked by the refund) in the
    proportion refunded so far: floor of the cumulative share, so partial refunds add up to
    exactly a full refund's. The reversal counts from the purchase's moment, so both leave the
    window together. The member is not moved down before the end of the tier period."""
    if order.amount is None or order.amount <= 0:
        return None
    earned = list(
        GrowthEntry.objects.filter(source_type="order", source_id=str(order.pk)).values_list(
            "kind", "amount", "counts_at"
        )
    )
    purchase = [(amount, counts_at) for kind, amount, counts_at in earned if kind == "purchase"]
    if not purchase:
        return None
    growth_earned = sum(amount for amount, _counts_at in purchase)
    reversed_so_far = -sum(amount for kind, amount, _at in earned if kind == "refund")
    refunded = min(Decimal(order.refunded_amount), Decimal(order.amount))
    # Multiply before dividing: 300 x 100 / 300 is exactly 100, 300 x (100 / 300) is not.
    target = int((growth_earned * refunded / Decimal(order.amount)).to_integral_value(ROUND_FLOOR))
    to_reverse = target - reversed_so_far
    if to_reverse <= 0:
        return None
    member = Member.objects.get(account__pk=order.account_id)
    return _record_growth(
        member=member,
        kind=GrowthEntry.Kind.REFUND,
        amount=-to_reverse,
        counts_at=purchase[0][1],
        reference=order.reference,
        source_type="order",
        source_id=order.pk,
    )


@transaction.atomic(savepoint=False)
def growth_for_event(
    *, member: Member, event_type: str, reference: str = "", occurred_at: datetime | None = None
) -> GrowthResult | None:
    """Growth value for a configured event type (GrowthEventRule); None when the type has no
    active rule."""
    rule = GrowthEventRule.objects.filter(event_type=event_type, is_active=True).first()
    if rule is None or rule.growth <= 0:
        return None
    return _record_growth(
        member=member,
        kind=GrowthEntry.Kind.EVENT,
        amount=rule.growth,
        counts_at=occurred_at,
        reference=reference,
        source_type="event",
        source_id=event_type,
    )


@transaction.atomic(savepoint=False)
def growth_adjust(*, member: Member, amount: int, reason: str) -> GrowthResult | None:
    """An operator's correction of growth value (signed), with a reason in the memo."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise InvalidGrowth(amount=str(amount))
    if not (reason or "").strip():
        raise InvalidGrowth(_("An adjustment needs a reason."))
    return _record_growth(
        member=member, kind=GrowthEntry.Kind.ADJUST, amount=amount, memo=reason.strip()[:255]
    )


def evaluate_tiers(
    *, as_of: datetime | None = None, chunk_size: int = 20_000, progress=None
) -> TierRun:
    """Apply the tier rule (see _EVALUATE_SQL) to every member as of `as_of`, set-based, one
    transaction per chunk of member ids. Idempotent: a re-run for the same moment changes
    nothing more (a period that ended has been renewed)."""
    as_of = as_of or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM members_member")
        low, high = cursor.fetchone()
    total = TierRun()
    if low is None:
        return total
    for first in range(low, high + 1, chunk_size):
        with transaction.atomic():
            run = _evaluate_range(first=first, last=first + chunk_size, as_of=as_of)
        total.members += run.members
        total.updated += run.updated
        total.upgraded += run.upgraded
        total.downgraded += run.downgraded
        total.chunks += 1
        if progress:
            progress(min(first + chunk_size, high + 1) - low, high + 1 - low)
    return total


# --- Segments (RFM) ----------------------------------------------------------------------------
# Days of per-member segment memberships kept for targeting; sizes per day are kept for ever.
SEGMENT_MEMBERSHIP_DAYS_KEPT = 35
RFM_WINDOW_MONTHS = 12

# Purchases are points.Order rows with an amount (what a partner recorded by reference, net of
# refunds): recency of the last one ever, frequency and money over the window; quintiles with
# ntile(5) over the members who bought at all (ties ordered by member id, so scores are
# deterministic); members with no purchase score 0 0 0. Closed members are left out.
_RFM_SQL = """
CREATE TEMPORARY TABLE rfm_run ON COMMIT DROP AS
WITH purchases AS (
    SELECT a.member_id,
           max(o.created_at) AS last_purchase_at,
           count(*) FILTER (WHERE o.created_at > %(window_start)s) AS frequency,
           COALESCE(sum(o.amount - o.refunded_amount)
                        FILTER (WHERE o.created_at > %(window_start)s), 0) AS monetary
      FROM points_order o JOIN points_account a ON a.id = o.account_id
     WHERE o.amount IS NOT NULL AND o.amount > o.refunded_amount
       AND o.created_at <= %(as_of)s
     GROUP BY a.member_id
),
scored AS (
    SELECT p.*,
           ntile(5) OVER (ORDER BY p.last_purchase_at, p.member_id) AS r,
           ntile(5) OVER (ORDER BY p.frequency, p.member_id) AS f,
           ntile(5) OVER (ORDER BY p.monetary, p.member_id) AS m
      FROM purchases p
)
SELECT mm.id AS member_id, s.last_purchase_at, COALESCE(s.frequency, 0) AS frequency,
       COALESCE(s.monetary, 0) AS monetary, COALESCE(s.r, 0) AS r, COALESCE(s.f, 0) AS f,
       COALESCE(s.m, 0) AS m
  FROM members_member mm LEFT JOIN scored s ON s.member_id = mm.id
 WHERE mm.status <> 'closed'
"""

_RFM_STORE_SQL = [
    # The latest scores per member; a catch-up run for an earlier day does not overwrite them.
    """
    INSERT INTO members_rfmscore (member_id, as_of, last_purchase_at, frequency, monetary,
                                  recency_score, frequency_score, monetary_score)
    SELECT member_id, %(day)s, last_purchase_at, frequency, monetary, r, f, m FROM rfm_run
    ON CONFLICT (member_id) DO UPDATE
       SET as_of = EXCLUDED.as_of, last_purchase_at = EXCLUDED.last_purchase_at,
           frequency = EXCLUDED.frequency, monetary = EXCLUDED.monetary,
           recency_score = EXCLUDED.recency_score, frequency_score = EXCLUDED.frequency_score,
           monetary_score = EXCLUDED.monetary_score
     WHERE members_rfmscore.as_of <= EXCLUDED.as_of
    """,
    "DELETE FROM members_rfmscore r USING members_member m"
    " WHERE m.id = r.member_id AND m.status = 'closed'",
    "DELETE FROM members_segmentmembership WHERE as_of = %(day)s",
    """
    INSERT INTO members_segmentmembership (member_id, segment_id, as_of)
    SELECT r.member_id, s.id, %(day)s
      FROM rfm_run r JOIN members_segment s
        ON s.is_active
       AND r.r BETWEEN s.recency_min AND s.recency_max
       AND r.f BETWEEN s.frequency_min AND s.frequency_max
       AND r.m BETWEEN s.monetary_min AND s.monetary_max
    """,
    "DELETE FROM members_segmentsize WHERE as_of = %(day)s",
    """
    INSERT INTO members_segmentsize (segment_id, as_of, members)
    SELECT s.id, %(day)s, count(sm.id)
      FROM members_segment s
      LEFT JOIN members_segmentmembership sm ON sm.segment_id = s.id AND sm.as_of = %(day)s
     WHERE s.is_active
     GROUP BY s.id
    """,
    "DELETE FROM members_segmentmembership WHERE as_of < %(oldest_kept)s",
]


@dataclass(frozen=True)
class SegmentRun:
    day: date
    members_scored: int
    memberships: int


def compute_segments(*, as_of: datetime | None = None) -> SegmentRun:
    """Score every member's RFM as of `as_of` (default now) and store the segment memberships
    of that day (its local date in the programme's time zone) and each segment's size.

    Set-based, one transaction; re-running for the same day replaces that day's results.
    """
    from points.expiry import add_months
    from points.models import ProgrammeSettings

    as_of = as_of or timezone.now()
    zone = ProgrammeSettings.get().zone
    local = as_of.astimezone(zone)
    day = local.date()
    window_start = datetime.combine(
        add_months(day, -RFM_WINDOW_MONTHS), local.timetz().replace(tzinfo=None), tzinfo=zone
    )
    params = {
        "as_of": as_of,
        "window_start": window_start,
        "day": day,
        "oldest_kept": day - timedelta(days=SEGMENT_MEMBERSHIP_DAYS_KEPT),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_RFM_SQL, params)
        scored = cursor.rowcount
        cursor.execute("ANALYZE rfm_run")
        for statement in _RFM_STORE_SQL:
            cursor.execute(statement, params)
        cursor.execute(
            "SELECT count(*) FROM members_segmentmembership WHERE as_of = %(day)s", params
        )
        memberships = cursor.fetchone()[0]
        # ON COMMIT DROP does not fire when the caller's transaction encloses this one.
        cursor.execute("DROP TABLE rfm_run")
    return SegmentRun(day=day, members_scored=scored, memberships=memberships)


# --- Personal data (PIPL) ----------------------------------------------------------------------
ERASED_PREFIX = "erased-"


@transaction.atomic
def erase_member(*, member: Member, operator: AbstractBaseUser | None, reason: str) -> Member:
    """Erase a member's personal data and close the account, keeping every ledger number.

    Name, phone, email and birthday are cleared, marketing consent withdrawn, and the external
    id replaced by `erased-<id>` (also in the outbox and the admin history), so the member can
    no longer be found by phone, email or the partner's id. Entries, lots, orders, growth and
    tier history stay as they are. Erasing twice is refused (MemberErased).
    """
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    reason = reason.strip()
    if not reason:
        raise InvalidStatusChange(_("Give a reason for the erasure."))
    locked = Member.objects.select_for_update(of=("self",)).get(pk=member.pk)
    if locked.external_id.startswith(ERASED_PREFIX):
        raise MemberErased(member=locked.pk)
    old_external_id = locked.external_id
    if locked.status != Member.Status.CLOSED:
        MemberStatusChange.objects.create(
            member=locked,
            from_status=locked.status,
            to_status=Member.Status.CLOSED,
            reason=reason,
            operator=operator,
        )
    locked.external_id = f"{ERASED_PREFIX}{locked.pk}"
    locked.name = ""
    locked.phone = ""
    locked.email = ""
    locked.birthday = None
    locked.marketing_consent = False
    locked.status = Member.Status.CLOSED
    locked.save()
    # Inbox messages address the member by name: they go with the personal data.
    InboxMessage.objects.filter(member_id=locked.pk).delete()
    from members.personal_data import run_erasure_steps

    run_erasure_steps(member=locked)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE points_outboxevent
               SET member_external_id = %(new)s,
                   payload = CASE WHEN payload ->> 'member' = %(old)s
                                  THEN jsonb_set(payload, '{member}', to_jsonb(%(new)s::text))
                                  ELSE payload END
             WHERE member_external_id = %(old)s
            """,
            {"old": old_external_id, "new": locked.external_id},
        )
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Member), object_id=str(locked.pk)
    ).update(object_repr=str(locked))
    for field in ("external_id", "name", "phone", "email", "birthday", "marketing_consent"):
        setattr(member, field, getattr(locked, field))
    member.status = locked.status
    return locked


# --- Daily check-in (签到) -----------------------------------------------------------------------
_CHECK_IN_SQL = """
INSERT INTO members_checkin (member_id, day, streak, created_at)
SELECT %(member_id)s, %(day)s,
       COALESCE((SELECT streak FROM members_checkin
                  WHERE member_id = %(member_id)s AND day = %(day)s::date - 1), 0) + 1,
       now()
ON CONFLICT (member_id, day) DO NOTHING
RETURNING streak
"""


def check_in_streak(*, member: Member, day: date) -> int:
    """The streak a check-in on `day` would have (1 + yesterday's), without writing; raises
    AlreadyCheckedIn when the member has checked in that day."""
    rows = dict(
        CheckIn.objects.filter(member=member, day__in=[day, day - timedelta(days=1)]).values_list(
            "day", "streak"
        )
    )
    if day in rows:
        raise AlreadyCheckedIn()
    return rows.get(day - timedelta(days=1), 0) + 1


def record_check_in(*, member: Member, day: date) -> int:
    """Record the member's check-in on `day` (a local date) and return its streak; at most once
    a day, enforced by a unique constraint (two concurrent check-ins: one wins)."""
    with connection.cursor() as cursor:
        cursor.execute(_CHECK_IN_SQL, {"member_id": member.pk, "day": day})
        row = cursor.fetchone()
    if row is None:
        raise AlreadyCheckedIn()
    return row[0]


# --- Inbox -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InboxDraft:
    """A message to post: whom to, and its text already in the member's language."""

    member_id: int
    title: str
    body: str = ""


@transaction.atomic(savepoint=False)
def post_inbox_messages(
    *, drafts: list[InboxDraft], posted_at: datetime | None = None
) -> list[InboxMessage]:
    """Post messages to members' inboxes in one statement, in the caller's transaction (a
    reminder's delivery row and its message commit together or not at all)."""
    moment = posted_at or timezone.now()
    return InboxMessage.objects.bulk_create(
        InboxMessage(
            member_id=draft.member_id,
            title=draft.title[: InboxMessage._meta.get_field("title").max_length],
            body=draft.body,
            created_at=moment,
        )
        for draft in drafts
    )


@transaction.atomic
def mark_inbox_read(
    *, member: Member, message_ids: list[int] | None = None, read_at: datetime | None = None
) -> int:
    """Mark the member's unread messages read (only these ids when given); returns how many.

    Filtered by the member, so a member can never touch another member's messages."""
    unread = InboxMessage.objects.filter(member_id=member.pk, read_at__isnull=True)
    if message_ids is not None:
        unread = unread.filter(pk__in=message_ids)
    return unread.update(read_at=read_at or timezone.now())
