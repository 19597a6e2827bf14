"""Writes on the points ledger. Every function is keyword-only and runs in ONE transaction.

Rules every service keeps (docs/adr/0001..0004):
- Lock order: a reward's stock row (rewards_mall, the caller), then Account rows by ascending
  id, then the Order row. An account's lots, allocations and entries are only written while
  its Account row is locked.
- Every change of a balance is an append-only Entry; every lot change is an Allocation; so for
  every account available = sum(available_delta), pending = sum(pending_delta), the remaining
  points of its active lots add up to max(available, 0), and every lot's remaining = amount +
  sum of its allocations (`check_ledger_invariants`).
- Points leave in FIFO order: the lot that expires soonest first, never-expiring lots last, then
  the oldest lot.
- A negative available balance (refund policy `allow_negative`, or a negative adjustment within
  the credit limit) is a debt: the next points that become available pay it first, recorded as
  allocations of the entry that brought them.
- Each service writes its outbox event (OutboxEvent) in the same transaction.
- `@ledger_transaction`: nested in a caller's transaction (the idempotency wrapper, a
  redemption) a service adds no SAVEPOINT round trips, like `atomic(savepoint=False)`; unlike
  it, a domain error raised before the service wrote anything leaves the caller's transaction
  usable, and one raised after a write marks it for rollback (docs/adr/0002).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty_site.exceptions import LoyaltyError
from loyalty_site.prepared import statement_cursor
from members.exceptions import MemberClosed, MemberFrozen, MemberNotFound
from members.models import Member
from points import expiry
from points.exceptions import (
    AlreadyGivenBack,
    AlreadyRefunded,
    DailyLimitExceeded,
    DuplicateReference,
    InsufficientPoints,
    InvalidConversion,
    InvalidLedgerRequest,
    InvalidPoints,
    InvalidTransfer,
    IssuanceFrozen,
    LedgerInconsistent,
    OrderNotFound,
    ReferenceOfAnotherMember,
    UnknownExchangeProgramme,
)
from points.lock_objects import lock_account, lock_account_of_member, lock_accounts, lock_order
from points.models import (
    Account,
    Allocation,
    Conversion,
    Entry,
    ExchangePartner,
    IssuanceFreeze,
    Lot,
    Order,
    OutboxEvent,
    Partner,
    ProgrammeSettings,
    Transfer,
    TransferSettings,
)

Kind = Entry.Kind
ACTIVE_STATUSES = [Member.Status.ACTIVE]
ANY_STATUS = [choice.value for choice in Member.Status]
CENT = Decimal("0.01")


@dataclass(frozen=True)
class EarnResult:
    entry: Entry
    lot: Lot


@dataclass(frozen=True)
class PurchaseResult:
    order: Order
    earn: EarnResult | None


@dataclass(frozen=True)
class SpendResult:
    entry: Entry
    cash_value: Decimal
    currency: str


@dataclass(frozen=True)
class RefundResult:
    points_reversed: int
    entries: list[Entry]


@dataclass(frozen=True)
class Mismatch:
    """One broken ledger invariant: what was checked, where, and the two numbers that differ."""

    check: str
    account_id: int | None
    member: str
    expected: int
    actual: int
    lot_id: int | None = None

    def __str__(self) -> str:
        where = f"lot #{self.lot_id}" if self.lot_id else f"account #{self.account_id}"
        return (
            f"{self.check}: {where} (member {self.member or '-'}): "
            f"expected {self.expected}, found {self.actual}"
        )


def ledger_transaction(func):
    """Run a service in ONE transaction without SAVEPOINTs (docs/adr/0002).

    Outside any transaction: a transaction of its own. Inside the caller's: no savepoint; a
    domain error (LoyaltyError) passes through untouched, because services raise them before
    writing or call `_doom_transaction()` first; any other error marks the caller's
    transaction for rollback, as `atomic(savepoint=False)` would.
    """

    @functools.wraps(func)
    def run(*args, **kwargs):
        if not connection.in_atomic_block:
            with transaction.atomic():
                return func(*args, **kwargs)
        try:
            return func(*args, **kwargs)
        except LoyaltyError:
            raise
        except Exception:
            transaction.set_rollback(True)
            raise

    return run


def ledger_statement(func):
    """Like `ledger_transaction`, for a service that writes with ONE statement which either
    writes everything or fails: outside a transaction it runs in autocommit (the statement is
    its own transaction, one round trip, no BEGIN/COMMIT)."""
    nested = ledger_transaction(func)

    @functools.wraps(func)
    def run(*args, **kwargs):
        if connection.in_atomic_block:
            return nested(*args, **kwargs)
        return func(*args, **kwargs)

    return run


def _doom_transaction() -> None:
    """A service failing after it wrote: whatever encloses it must roll back."""
    transaction.set_rollback(True)


def _inconsistent(**data) -> LedgerInconsistent:
    _doom_transaction()
    return LedgerInconsistent(**data)


# --- Programme settings ----------------------------------------------------------------------
# Earning needs the expiry policy in Python; the copy kept here is re-validated by the earn
# statement itself (its guard compares the fields), so a stale copy never writes anything.
# Other fields (currency, point value, purchase rate) may lag an admin change made in another
# process by at most PROGRAMME_CACHE_SECONDS; this process's own saves refresh it at once.
_programme_cache: tuple[float, ProgrammeSettings] | None = None


def _programme(*, fresh: bool = False) -> ProgrammeSettings:
    global _programme_cache
    max_age = getattr(settings, "PROGRAMME_CACHE_SECONDS", 5)
    if fresh or _programme_cache is None or time.monotonic() - _programme_cache[0] > max_age:
        _programme_cache = (time.monotonic(), ProgrammeSettings.get())
    return _programme_cache[1]


def programme_settings() -> ProgrammeSettings:
    """The programme's settings for request paths, at most PROGRAMME_CACHE_SECONDS old.

    Writes that depend on the expiry or pending settings re-check them in SQL (the earn guard),
    so a stale copy can never be written into the ledger.
    """
    return _programme()


@ledger_transaction
def programme_settings_save(*, programme: ProgrammeSettings) -> ProgrammeSettings:
    """Save the settings and copy the negative balance limit onto every account.

    An account already below the new limit keeps its current debt as its limit until an
    operator deals with it (the CHECK constraint would refuse anything else).
    """
    programme.pk = ProgrammeSettings.SINGLETON_PK
    programme.full_clean()
    programme.save()
    sync_credit_limits()
    _programme(fresh=True)
    return programme


def sync_credit_limits() -> int:
    """Copy negative_balance_limit onto accounts whose credit_limit differs; returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH s AS (SELECT negative_balance_limit AS limit_ FROM points_programmesettings
                        WHERE id = 1),
            locked AS (
                SELECT a.id FROM points_account a, s
                 WHERE a.credit_limit <> GREATEST(s.limit_, -a.available)
                 ORDER BY a.id FOR UPDATE OF a
            )
            UPDATE points_account a
               SET credit_limit = GREATEST(s.limit_, -a.available), updated_at = now()
              FROM s, locked WHERE a.id = locked.id
            """
        )
        return cursor.rowcount


# --- Issuance freeze (docs/adr/0018) ------------------------------------------------------------
# The credit statement's guard is what enforces a freeze, in every process at once. The copy
# kept here answers early (before any work) on request paths and may lag a freeze set in
# another process by at most PROGRAMME_CACHE_SECONDS; this process's own changes apply at once.
_freeze_cache: tuple[float, IssuanceFreeze | None] | None = None


def _open_freeze() -> IssuanceFreeze | None:
    """The freeze that ends last among those not lifted (an expired one is harmless)."""
    return (
        IssuanceFreeze.objects.filter(lifted_at__isnull=True)
        .select_related("started_by")
        .order_by(F("ends_at").desc(nulls_first=True), "-started_at")
        .first()
    )


def issuance_freeze(*, fresh: bool = False) -> IssuanceFreeze | None:
    """The issuance freeze in force now, or None. Cached per process (see above) unless
    `fresh`."""
    global _freeze_cache
    max_age = getattr(settings, "PROGRAMME_CACHE_SECONDS", 5)
    if fresh or _freeze_cache is None or time.monotonic() - _freeze_cache[0] > max_age:
        _freeze_cache = (time.monotonic(), _open_freeze())
    freeze = _freeze_cache[1]
    return freeze if freeze is not None and freeze.in_force(timezone.now()) else None


def _frozen(freeze: IssuanceFreeze) -> IssuanceFrozen:
    # Partners learn when issuance resumes (if known); the operator's reason stays in admin.
    return IssuanceFrozen(**({"ends_at": _iso(freeze.ends_at)} if freeze.ends_at else {}))


def ensure_issuance_open(*, fresh: bool = True) -> None:
    """Raise `IssuanceFrozen` when a freeze is in force: the check every path that issues
    points makes before it does any work (rule-driven events, bulk grants, conversions in).

    `fresh=False` reads this process's cached copy (the hot path: no query); the credit
    statement's guard then refuses anything a stale copy let through.
    """
    freeze = issuance_freeze(fresh=fresh)
    if freeze is not None:
        raise _frozen(freeze)


@transaction.atomic
def freeze_issuance(*, reason: str, operator, ends_at: datetime | None = None) -> IssuanceFreeze:
    """Stop all issuance of points now, until lifted or until `ends_at`. A freeze already
    in force is lifted by the new one (one freeze in force at a time); nothing is deleted."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidLedgerRequest(_("A freeze needs a reason."))
    now = timezone.now()
    if ends_at is not None and ends_at <= now:
        raise InvalidLedgerRequest(_("The automatic end must be in the future."))
    IssuanceFreeze.objects.filter(lifted_at__isnull=True).update(lifted_at=now, lifted_by=operator)
    # started_at is the database's clock (db_default), the one the earn guard compares with.
    freeze = IssuanceFreeze.objects.create(reason=reason, started_by=operator, ends_at=ends_at)
    transaction.on_commit(lambda: issuance_freeze(fresh=True))
    return freeze


@transaction.atomic
def lift_issuance_freeze(*, operator) -> int:
    """Resume issuance now: every freeze not lifted yet is marked lifted by `operator`
    (kept for the record). Returns how many were lifted."""
    lifted = IssuanceFreeze.objects.filter(lifted_at__isnull=True).update(
        lifted_at=timezone.now(), lifted_by=operator
    )
    transaction.on_commit(lambda: issuance_freeze(fresh=True))
    return lifted


# --- Small helpers -----------------------------------------------------------------------------
def _validate_points(points, *, signed: bool = False) -> None:
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidPoints(points=str(points))
    if (signed and points == 0) or (not signed and points <= 0):
        raise InvalidPoints(points=points)


def _ensure_member_may_use_points(member: Member) -> None:
    if member.status == Member.Status.FROZEN:
        raise MemberFrozen(member=member.external_id)
    if member.status == Member.Status.CLOSED:
        raise MemberClosed(member=member.external_id)


def _cash_value(points: int, programme: ProgrammeSettings) -> Decimal:
    # Rounded down to the cent: a point payment never claims more money than the points hold.
    return (Decimal(points) * programme.point_value).quantize(CENT, rounding=ROUND_DOWN)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _record_event(*, type: str, account: Account, payload: dict) -> OutboxEvent:
    return OutboxEvent.objects.create(
        type=type,
        account_id=account.pk,
        member_external_id=account.member.external_id,
        payload=payload,
    )


def record_outbox_events(*, type: str, events: list[tuple[int, str, dict]]) -> list[OutboxEvent]:
    """Write domain events of one `type` for other apps (e.g. campaigns' `points.expiring_soon`),
    one statement, in the caller's transaction so each commits with the change it reports.

    `events` are (account id, member external id, payload); the webhook publisher delivers them.
    """
    return OutboxEvent.objects.bulk_create(
        OutboxEvent(
            type=type, account_id=account_id, member_external_id=external_id, payload=payload
        )
        for account_id, external_id, payload in events
    )


def _columns(model) -> tuple[list[str], list[str]]:
    fields = model._meta.concrete_fields
    return [f.column for f in fields], [f.attname for f in fields]


_ENTRY_COLUMNS, _ENTRY_ATTNAMES = _columns(Entry)
_LOT_COLUMNS, _LOT_ATTNAMES = _columns(Lot)
_ORDER_COLUMNS, _ORDER_ATTNAMES = _columns(Order)


def _select(alias: str, columns: list[str]) -> str:
    return ", ".join(f"{alias}.{column}" for column in columns)


def _from_row(model, attnames: list[str], row) -> object:
    """The model instance for a row of all its concrete fields, as `Model.from_db` makes it.

    Built without `Model.__init__` (which sets each field through its descriptor and sends
    pre_init/post_init): two of these per earn were a tenth of the earn's Python time. A model
    something listens to the init signals of still goes through from_db."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(connection.alias, attnames, list(row))
    instance = model.__new__(model)
    instance.__dict__.update(zip(attnames, row, strict=True))
    state = instance._state = ModelState()
    state.adding = False
    state.db = connection.alias
    return instance


# --- Accounts ------------------------------------------------------------------------------
def account_for_member(*, member: Member) -> Account:
    """The member's account, created race-safely (INSERT ... ON CONFLICT DO NOTHING)."""
    account = Account.objects.filter(member_id=member.pk).first()
    if account is not None:
        return account
    ProgrammeSettings.get()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO points_account (member_id, available, pending, lifetime_earned,
                                        lifetime_spent, lifetime_expired, credit_limit, updated_at)
            SELECT %s, 0, 0, 0, 0, 0, negative_balance_limit, now()
              FROM points_programmesettings WHERE id = 1
            ON CONFLICT (member_id) DO NOTHING
            """,
            [member.pk],
        )
    return Account.objects.get(member_id=member.pk)


def _lock_account_for(member: Member) -> Account:
    """Lock the member's account row (creating it first if needed); member fields are fresh."""
    account = lock_account_of_member(member_id=member.pk)
    if account is None:
        account_for_member(member=member)
        account = lock_account_of_member(member_id=member.pk)
    return account


def lock_member_accounts(*, members: list[Member]) -> dict[int, Account]:
    """Lock the accounts of these members (created first when missing) in ascending account id
    order (docs/adr/0001), for a caller that must read-then-write under them (earning caps, a
    referral that credits two members). Returns {member id: account}."""
    ids = []
    for member in members:
        account = Account.objects.filter(member_id=member.pk).only("pk").first()
        ids.append((account or account_for_member(member=member)).pk)
    return {account.member_id: account for account in lock_accounts(account_ids=ids)}


# --- Credit: one statement that creates an entry and its lot (the hot path) ---------------------
# Modes of the credit statement: which optional parts it has.
EARN, EARN_FOR_ORDER, PURCHASE, PURCHASE_WITHOUT_POINTS = "earn", "earn_order", "buy", "buy_0"


def _credit_sql(mode: str) -> str:
    with_entry = mode != PURCHASE_WITHOUT_POINTS
    with_order = mode in (PURCHASE, PURCHASE_WITHOUT_POINTS)
    guard = ""
    if with_order:
        guard = """
       AND NOT EXISTS (
           SELECT 1 FROM points_order o JOIN points_account oa ON oa.id = o.account_id
            WHERE o.partner_id = %(partner_id)s AND o.reference = %(reference)s
              AND (o.amount IS NOT NULL OR oa.member_id <> %(member_id)s))"""
    elif mode == EARN_FOR_ORDER:
        guard = """
       AND EXISTS (
           SELECT 1 FROM points_order o JOIN points_account oa ON oa.id = o.account_id
            WHERE o.id = %(order_id)s AND oa.member_id = %(member_id)s
              AND o.earn_entry_id IS NULL)"""
    sql = f"""
WITH guard AS (
    SELECT s.negative_balance_limit AS credit_limit
      FROM points_programmesettings s
     WHERE s.id = 1
       AND s.expiry_policy = %(policy)s AND s.expiry_period = %(period)s
       AND s.time_zone = %(time_zone)s AND s.pending_days = %(pending_days)s
       AND EXISTS (SELECT 1 FROM members_member m WHERE m.id = %(member_id)s
                      AND m.status = ANY(%(statuses)s::text[]))
       -- An issuance freeze in force refuses every credit that issues points (docs/adr/0018);
       -- statement time, the clock its started_at was written with (not the transaction's).
       AND NOT (%(issuance)s::boolean AND EXISTS (
           SELECT 1 FROM points_issuancefreeze f
            WHERE f.lifted_at IS NULL AND f.started_at <= statement_timestamp()
              AND (f.ends_at IS NULL OR f.ends_at > statement_timestamp()))){guard}
),
acct AS (
    INSERT INTO points_account AS a (member_id, available, pending, lifetime_earned,
                                     lifetime_spent, lifetime_expired, credit_limit, updated_at)
    SELECT %(member_id)s, %(available_delta)s, %(pending_delta)s, %(earned)s, 0, 0,
           g.credit_limit, now()
      FROM guard g
    ON CONFLICT (member_id) DO UPDATE
       SET available = a.available + EXCLUDED.available,
           pending = a.pending + EXCLUDED.pending,
           lifetime_earned = a.lifetime_earned + EXCLUDED.lifetime_earned,
           updated_at = EXCLUDED.updated_at
    RETURNING a.id, a.available, a.pending
)"""
    if with_entry:
        sql += """,
ent AS (
    INSERT INTO points_entry (account_id, kind, amount, available_delta, pending_delta,
                              balance_after, partner_id, reference, memo, reason, operator_id,
                              approved_by_id, source_type, source_id, expires_at, available_at)
    SELECT a.id, %(kind)s, %(points)s, %(available_delta)s, %(pending_delta)s, a.available,
           %(partner_id)s::bigint, %(reference)s, %(memo)s, %(reason)s, %(operator_id)s::integer,
           %(approved_by_id)s::integer, %(source_type)s, %(source_id)s, %(expires_at)s::timestamptz,
           %(available_at)s::timestamptz
      FROM acct a
    RETURNING *
),
lot AS (
    -- With a negative balance the new points pay the debt first (LEAST(...) below).
    INSERT INTO points_lot (account_id, earn_entry_id, partner_id, amount, remaining, state,
                            available_at, expires_at)
    SELECT e.account_id, e.id, e.partner_id, %(points)s,
           %(points)s - LEAST(%(available_delta)s, GREATEST(%(available_delta)s - a.available, 0)),
           %(state)s, e.available_at, e.expires_at
      FROM ent e, acct a
    RETURNING *
),
debt_paid AS (
    INSERT INTO points_allocation (entry_id, lot_id, points)
    SELECT l.earn_entry_id, l.id, l.remaining - l.amount FROM lot l WHERE l.remaining < l.amount
),
event AS (
    INSERT INTO points_outboxevent (type, account_id, member_external_id, payload)
    SELECT %(event_type)s, e.account_id, %(external_id)s,
           %(payload)s::jsonb || jsonb_build_object('entry_id', e.id, 'available', a.available,
                                                    'pending', a.pending)
      FROM ent e, acct a
)"""
    if mode == EARN_FOR_ORDER:
        sql += """,
ord AS (
    UPDATE points_order o
       SET earn_entry_id = e.id, points_earned = %(points)s, updated_at = now()
      FROM ent e
     WHERE o.id = %(order_id)s AND o.earn_entry_id IS NULL
    RETURNING o.*
)"""
    if with_order:
        earn_entry = "e.id" if with_entry else "NULL::bigint"
        joins = "acct a LEFT JOIN ent e ON true" if with_entry else "acct a"
        sql += f""",
ord AS (
    INSERT INTO points_order AS o (partner_id, reference, account_id, amount, currency,
                                   paid_with_points, refunded_amount, points_earned,
                                   points_reversed, points_written_off, points_lapsed,
                                   points_spent, points_returned, earn_entry_id)
    SELECT %(partner_id)s::bigint, %(reference)s, a.id, %(amount)s::numeric, %(currency)s,
           %(paid_with_points)s::numeric, 0, %(points)s, 0, 0, 0, 0, 0, {earn_entry}
      FROM {joins}
    ON CONFLICT (partner_id, reference) DO UPDATE
       SET amount = EXCLUDED.amount, currency = EXCLUDED.currency,
           paid_with_points = EXCLUDED.paid_with_points, points_earned = EXCLUDED.points_earned,
           earn_entry_id = EXCLUDED.earn_entry_id, updated_at = now()
     WHERE o.amount IS NULL AND o.account_id = EXCLUDED.account_id
    RETURNING o.*
)"""
    selected = ["g.ok"]
    joins = []
    if with_entry:
        selected += [_select("e", _ENTRY_COLUMNS), _select("l", _LOT_COLUMNS)]
        joins += ["LEFT JOIN ent e ON true", "LEFT JOIN lot l ON true"]
    if mode != EARN:
        selected.append(_select("o", _ORDER_COLUMNS))
        joins.append("LEFT JOIN ord o ON true")
        # The order row changed between the guard's snapshot and the write (a concurrent
        # request): fail the whole statement, so that nothing it wrote survives.
        selected.append(
            "CASE WHEN g.ok > 0 AND o.id IS NULL THEN points_refuse('duplicate_reference') END"
        )
    sql += f"""
SELECT {", ".join(selected)}
  FROM (SELECT count(*) AS ok FROM guard) AS g {" ".join(joins)}"""
    return sql


def _compact(sql: str) -> str:
    """The statement without indentation and comment-only lines: psycopg caches the parsing of
    a query's placeholders only up to MAX_CACHED_STATEMENT_LENGTH (4,096) characters and parses
    a longer one again on every call (docs/adr/0019). Lines stay lines, so nothing else moves."""
    lines = (line.strip() for line in sql.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


_PLACEHOLDER = re.compile(r"%\(([a-z_]+)\)s")


def _short_placeholders(sql: str) -> tuple[str, dict[str, str]]:
    """The statement with its named placeholders renamed p0, p1, ... and the renaming: the
    purchase statement's 42 long names alone would take it past psycopg's cache limit."""
    names = sorted(set(_PLACEHOLDER.findall(sql)))
    renamed = {name: f"p{number}" for number, name in enumerate(names)}
    return _PLACEHOLDER.sub(lambda match: f"%({renamed[match.group(1)]})s", sql), renamed


_CREDIT_SQL = {
    mode: _short_placeholders(_compact(_credit_sql(mode)))
    for mode in (EARN, EARN_FOR_ORDER, PURCHASE, PURCHASE_WITHOUT_POINTS)
}


def _refusal(error: DatabaseError) -> str | None:
    """The reason of a points_refuse() raised inside a statement, if that is what failed."""
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) != "P0001":
        return None
    message = str(getattr(cause.diag, "message_primary", "") or "")
    return message.removeprefix("points_refuse: ") if message.startswith("points_refuse") else None


def _raise_why_credit_was_refused(
    *,
    member: Member,
    statuses: list[str],
    partner_id: int | None,
    reference: str | None,
    order: Order | None,
    issuance: bool = False,
) -> None:
    """The guard of the credit statement refused: raise the domain error that explains it."""
    status = Member.objects.filter(pk=member.pk).values_list("status", flat=True).first()
    if status is None:
        raise MemberNotFound(external_id=member.external_id)
    if status not in statuses:
        if status == Member.Status.CLOSED:
            raise MemberClosed(member=member.external_id)
        raise MemberFrozen(member=member.external_id)
    if issuance:
        freeze = issuance_freeze(fresh=True)
        if freeze is not None:
            raise _frozen(freeze)
    if order is not None:
        partner_id, reference = order.partner_id, order.reference
    if reference is not None:
        existing = (
            Order.objects.filter(partner_id=partner_id, reference=reference)
            .values("amount", "earn_entry_id", "account__member_id")
            .first()
        )
        if existing is not None and existing["account__member_id"] != member.pk:
            raise ReferenceOfAnotherMember(reference=reference)
        if existing is not None and (
            existing["amount"] is not None or (order is not None and existing["earn_entry_id"])
        ):
            raise DuplicateReference(reference=reference)


def _credit(
    *,
    member: Member,
    points: int,
    kind: str,
    statuses: list[str],
    event_type: str,
    partner_id: int | None = None,
    reference: str = "",
    memo: str = "",
    reason: str = "",
    operator_id: int | None = None,
    approved_by_id: int | None = None,
    source_type: str = "",
    source_id=None,
    occurred_at: datetime | None = None,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    purchase: dict | None = None,
    order: Order | None = None,
    expiry_given: bool = False,
    issuance: bool = True,
) -> tuple[EarnResult | None, Order | None]:
    """Credit `points` (may be 0 for a purchase that earns nothing) as a new lot, in ONE
    statement that either writes everything or nothing (safe in autocommit).

    With `purchase` (amount, currency, paid_with_points) the statement writes the Order row;
    with `order` it makes the new entry that order's earn. With `expiry_given` the lot expires
    at `expires_at` as given, None meaning never. With `issuance` (new points enter the
    programme: everything but a transfer) an issuance freeze in force refuses it
    (`IssuanceFrozen`). Returns (EarnResult, Order).
    """
    now = timezone.now()
    earned_at = occurred_at or now
    if purchase is not None:
        mode = PURCHASE if points > 0 else PURCHASE_WITHOUT_POINTS
    else:
        mode = EARN_FOR_ORDER if order is not None else EARN
    for _attempt in range(3):
        programme = _programme()
        release_at = available_at
        if release_at is None and purchase is not None:
            release_at = purchase_available_at(occurred_at=earned_at, programme=programme, now=now)
        pending = release_at is not None and release_at > now
        lot_expires_at = expires_at
        if lot_expires_at is None and not expiry_given:
            # The member's tier may override the programme's policy (points/expiry.py decides).
            lot_expires_at = expiry.lot_expiry(earned_at, programme=programme, tier=member.tier)
        params = {
            "policy": programme.expiry_policy,
            "period": programme.expiry_period,
            "time_zone": programme.time_zone,
            "pending_days": programme.pending_days,
            "member_id": member.pk,
            "statuses": statuses,
            "issuance": issuance,
            "available_delta": 0 if pending else points,
            "pending_delta": points if pending else 0,
            "earned": points if kind == Kind.EARN else 0,
            "kind": kind,
            "points": points,
            "partner_id": partner_id,
            "reference": reference or "",
            "memo": memo or "",
            "reason": reason or "",
            "operator_id": operator_id,
            "approved_by_id": approved_by_id,
            "source_type": source_type or "",
            "source_id": "" if source_id is None else str(source_id),
            "expires_at": lot_expires_at,
            "available_at": release_at if pending else None,
            "state": Lot.State.PENDING if pending else Lot.State.ACTIVE,
            "event_type": event_type,
            "external_id": member.external_id,
            "order_id": order.pk if order is not None else None,
            "payload": json.dumps(
                {
                    "member": member.external_id,
                    "kind": kind,
                    "points": points,
                    "pending": pending,
                    "reference": reference or "",
                    "partner_id": partner_id,
                    "expires_at": _iso(lot_expires_at),
                    "available_at": _iso(release_at) if pending else None,
                }
            ),
        }
        if purchase is not None:
            params.update(purchase)
        try:
            with statement_cursor() as cursor:
                sql, renamed = _CREDIT_SQL[mode]
                cursor.execute(sql, {short: params[name] for name, short in renamed.items()})
                row = cursor.fetchone()
        except DatabaseError as error:
            if _refusal(error) is None:
                raise
            if connection.in_atomic_block:
                _doom_transaction()  # the caller's transaction is aborted by the error
            raise DuplicateReference(reference=reference or order.reference) from error
        if row[0] == 0:
            # The guard refused and nothing was written: explain, or retry with fresh settings.
            _raise_why_credit_was_refused(
                member=member,
                statuses=statuses,
                partner_id=partner_id,
                reference=reference if purchase is not None else None,
                order=order,
                issuance=issuance,
            )
            _programme(fresh=True)
            continue
        values = list(row[1:])
        earn = None
        if mode != PURCHASE_WITHOUT_POINTS:
            entry_end = len(_ENTRY_COLUMNS)
            lot_end = entry_end + len(_LOT_COLUMNS)
            earn = EarnResult(
                entry=_from_row(Entry, _ENTRY_ATTNAMES, values[:entry_end]),
                lot=_from_row(Lot, _LOT_ATTNAMES, values[entry_end:lot_end]),
            )
            values = values[lot_end:]
        written_order = None
        if mode != EARN:
            written_order = _from_row(Order, _ORDER_ATTNAMES, values[: len(_ORDER_COLUMNS)])
        return earn, written_order
    raise LedgerInconsistent(detail="programme settings keep changing")


@ledger_statement
def earn(
    *,
    member: Member,
    points: int,
    partner: Partner | None = None,
    reference: str = "",
    memo: str = "",
    source_type: str = "",
    source_id=None,
    occurred_at: datetime | None = None,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    order: Order | None = None,
) -> EarnResult:
    """Credit `points` to the member as a new lot, in ONE SQL statement.

    Pending (in `pending`, not spendable) while `available_at` is in the future; available at
    once otherwise. Without `expires_at` the lot expires by the programme's policy counted from
    `occurred_at` (default now). With `order` (this member's, without an earn yet), this earn
    becomes that order's earn, which a refund of it reverses. A frozen or closed member gets
    nothing and nothing is written.
    """
    _validate_points(points)
    result, _order = _credit(
        member=member,
        points=points,
        kind=Kind.EARN,
        statuses=ACTIVE_STATUSES,
        event_type="points.earned",
        partner_id=partner.pk if partner else None,
        reference=reference,
        memo=memo,
        source_type=source_type,
        source_id=source_id,
        occurred_at=occurred_at,
        available_at=available_at,
        expires_at=expires_at,
        order=order,
    )
    return result


@ledger_statement
def record_purchase(
    *,
    member: Member,
    partner: Partner,
    reference: str,
    amount: Decimal,
    currency: str,
    paid_with_points: Decimal = Decimal("0"),
    points: int,
    occurred_at: datetime | None = None,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    memo: str = "",
    source_type: str = "",
    source_id=None,
) -> PurchaseResult:
    """Record a purchase (the Order a refund works from) and credit its points, in ONE statement.

    `points` may be 0: the order is still recorded. Without `available_at` the points are
    pending for the programme's `pending_days` after `occurred_at`. A reference is unique per
    partner (`DuplicateReference`), except that a purchase may complete the order a point
    payment (`spend` with this reference) created first.
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise InvalidPoints(points=str(points))
    if not reference:
        raise InvalidLedgerRequest(_("A purchase needs a reference."))
    amount = Decimal(amount)
    paid_with_points = Decimal(paid_with_points or 0)
    if amount < 0 or paid_with_points < 0 or paid_with_points > amount:
        raise InvalidLedgerRequest(
            _("The amount and the part paid with points must be >= 0, and the part <= amount.")
        )
    earn_result, order = _credit(
        member=member,
        points=points,
        kind=Kind.EARN,
        statuses=ACTIVE_STATUSES,
        event_type="points.earned",
        partner_id=partner.pk,
        reference=reference,
        memo=memo,
        source_type=source_type,
        source_id=source_id,
        occurred_at=occurred_at,
        available_at=available_at,
        expires_at=expires_at,
        purchase={
            "amount": amount,
            "currency": currency or ProgrammeSettings.get().currency,
            "paid_with_points": paid_with_points,
        },
    )
    return PurchaseResult(order=order, earn=earn_result)


def purchase_available_at(
    *, occurred_at: datetime, programme: ProgrammeSettings, now: datetime | None = None
) -> datetime | None:
    """When a purchase's points become available: `pending_days` (the return window) after the
    purchase; None when there is no window or it has already passed. The one place the window
    is applied, for real events and dry runs alike."""
    if not programme.pending_days:
        return None
    available_at = occurred_at + timedelta(days=programme.pending_days)
    return available_at if available_at > (now or timezone.now()) else None


# --- Debit: FIFO over the active lots -------------------------------------------------------------
_FIFO_TAKE = """
fifo AS (
    SELECT id, remaining,
           sum(remaining) OVER (ORDER BY expires_at ASC NULLS LAST, id
                                ROWS UNBOUNDED PRECEDING) AS running
      FROM points_lot
     WHERE account_id = %(account_id)s AND state = 'active' AND remaining > 0
),
take AS (
    SELECT id, LEAST(remaining, %(from_lots)s - (running - remaining)) AS points
      FROM fifo WHERE running - remaining < %(from_lots)s
),
taken AS (
    UPDATE points_lot l SET remaining = l.remaining - t.points
      FROM take t WHERE l.id = t.id
    RETURNING l.id, t.points
)"""

_ENTRY_INSERT = """
ent AS (
    INSERT INTO points_entry (account_id, kind, amount, available_delta, pending_delta,
                              balance_after, partner_id, reference, memo, reason, operator_id,
                              approved_by_id, source_type, source_id, related_entry_id)
    SELECT id, %(kind)s, %(available_delta)s + %(pending_delta)s, %(available_delta)s,
           %(pending_delta)s, available, %(partner_id)s::bigint, %(reference)s, %(memo)s,
           %(reason)s, %(operator_id)s::integer, %(approved_by_id)s::integer, %(source_type)s,
           %(source_id)s, %(related_entry_id)s::bigint
      FROM acct
    RETURNING *
)"""

_ACCOUNT_UPDATE = """
acct AS (
    UPDATE points_account
       SET available = available + %(available_delta)s,
           pending = pending + %(pending_delta)s,
           lifetime_spent = lifetime_spent + %(spent_delta)s,
           updated_at = now()
     WHERE id = %(account_id)s
    RETURNING id, available
)"""

_DEBIT_SQL = f"""
WITH {_FIFO_TAKE},
{_ACCOUNT_UPDATE},
{_ENTRY_INSERT},
alloc AS (
    INSERT INTO points_allocation (entry_id, lot_id, points)
    SELECT e.id, t.id, -t.points FROM ent e, taken t
)
SELECT {_select("e", _ENTRY_COLUMNS)}, (SELECT COALESCE(sum(points), 0) FROM taken)
  FROM ent e
"""

_SETTLE_DEBT_SQL = f"""
WITH {_FIFO_TAKE}
INSERT INTO points_allocation (entry_id, lot_id, points)
SELECT %(entry_id)s, t.id, -t.points FROM taken t
RETURNING points
"""

_MOVE_LOTS_SQL = f"""
WITH plan AS (
    SELECT * FROM unnest(%(lot_ids)s::bigint[], %(deltas)s::bigint[]) AS p(lot_id, delta)
),
moved AS (
    UPDATE points_lot l
       SET remaining = l.remaining + p.delta,
           state = CASE WHEN l.state = 'expired' AND p.delta > 0 THEN 'active' ELSE l.state END
      FROM plan p
     WHERE l.id = p.lot_id AND l.account_id = %(account_id)s
    RETURNING l.id
),
{_ACCOUNT_UPDATE},
{_ENTRY_INSERT},
alloc AS (
    INSERT INTO points_allocation (entry_id, lot_id, points)
    SELECT e.id, p.lot_id, p.delta FROM ent e, plan p
)
SELECT {_select("e", _ENTRY_COLUMNS)}, (SELECT count(*) FROM moved)
  FROM ent e
"""


def _entry_params(
    *,
    account: Account,
    kind: str,
    available_delta: int,
    pending_delta: int = 0,
    spent_delta: int = 0,
    partner_id: int | None = None,
    reference: str = "",
    memo: str = "",
    reason: str = "",
    operator_id: int | None = None,
    approved_by_id: int | None = None,
    source_type: str = "",
    source_id="",
    related_entry_id: int | None = None,
) -> dict:
    return {
        "account_id": account.pk,
        "kind": kind,
        "available_delta": available_delta,
        "pending_delta": pending_delta,
        "spent_delta": spent_delta,
        "partner_id": partner_id,
        "reference": reference or "",
        "memo": memo or "",
        "reason": reason or "",
        "operator_id": operator_id,
        "approved_by_id": approved_by_id,
        "source_type": source_type or "",
        "source_id": "" if source_id is None else str(source_id),
        "related_entry_id": related_entry_id,
    }


def _debit(*, account: Account, points: int, **entry_fields) -> Entry:
    """Take `points` from the locked account: FIFO from its lots, the rest (if any) as debt.

    The caller has checked the balance and the credit limit; the CHECK constraint backs it.
    """
    from_lots = min(points, max(account.available, 0))
    params = _entry_params(account=account, available_delta=-points, **entry_fields)
    params["from_lots"] = from_lots
    with connection.cursor() as cursor:
        cursor.execute(_DEBIT_SQL, params)
        row = cursor.fetchone()
    if row[-1] != from_lots:
        raise _inconsistent(account=account.pk, expected=from_lots, taken=int(row[-1]))
    account.available -= points
    return _from_row(Entry, _ENTRY_ATTNAMES, row[:-1])


def _settle_debt(*, account: Account, available_before: int, entry: Entry, points: int) -> None:
    """Points just came into the lots of an account that was negative: they pay the debt first."""
    paid = min(points, max(-available_before, 0))
    if paid <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _SETTLE_DEBT_SQL,
            {"account_id": account.pk, "from_lots": paid, "entry_id": entry.pk},
        )
        taken = -sum(points for (points,) in cursor.fetchall())
    if taken != paid:
        raise _inconsistent(account=account.pk, expected=paid, taken=taken)


def _move_lots(
    *, account: Account, plan: list[tuple[int, int]], pending: bool = False, **entry_fields
) -> Entry:
    """Change named lots by signed amounts (give back: +, reverse: -) under one entry."""
    total = sum(delta for _lot, delta in plan)
    params = _entry_params(
        account=account,
        available_delta=0 if pending else total,
        pending_delta=total if pending else 0,
        **entry_fields,
    )
    params["lot_ids"] = [lot_id for lot_id, _delta in plan]
    params["deltas"] = [delta for _lot_id, delta in plan]
    available_before = account.available
    with connection.cursor() as cursor:
        cursor.execute(_MOVE_LOTS_SQL, params)
        row = cursor.fetchone()
    if row[-1] != len(plan):
        raise _inconsistent(account=account.pk, expected=len(plan), moved=int(row[-1]))
    entry = _from_row(Entry, _ENTRY_ATTNAMES, row[:-1])
    if pending:
        account.pending += total
    else:
        account.available += total
        if total > 0:
            _settle_debt(
                account=account, available_before=available_before, entry=entry, points=total
            )
    return entry


def _note_entry(*, account: Account, **entry_fields) -> Entry:
    """An entry that changes no balance: it makes a decision visible (e.g. a write-off)."""
    return Entry.objects.create(
        account_id=account.pk,
        amount=0,
        available_delta=0,
        pending_delta=0,
        balance_after=account.available,
        **entry_fields,
    )


# --- Spending -------------------------------------------------------------------------------------
def _order_for_spend(
    *, account: Account, partner: Partner | None, reference: str, currency: str
) -> Order:
    """The locked Order of (partner, reference), created for this account if missing."""
    partner_id = partner.pk if partner else None
    exists = Order.objects.filter(partner_id=partner_id, reference=reference).exists()
    if not exists:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO points_order (partner_id, reference, account_id, amount, currency,
                                          paid_with_points, refunded_amount, points_earned,
                                          points_reversed, points_written_off, points_lapsed,
                                          points_spent, points_returned)
                VALUES (%s, %s, %s, NULL, %s, 0, 0, 0, 0, 0, 0, 0, 0)
                ON CONFLICT (partner_id, reference) DO NOTHING
                """,
                [partner_id, reference, account.pk, currency],
            )
    order = (
        Order.objects.select_for_update(of=("self",))
        .filter(partner_id=partner_id, reference=reference)
        .get()
    )
    if order.account_id != account.pk:
        raise ReferenceOfAnotherMember(reference=reference)
    return order


def _take(*, member: Member, points: int, kind: str, **entry_fields) -> tuple[Account, Entry]:
    account = _lock_account_for(member)
    _ensure_member_may_use_points(account.member)
    if account.available < points:
        raise InsufficientPoints(available=account.available, requested=points)
    entry = _debit(account=account, points=points, kind=kind, spent_delta=points, **entry_fields)
    return account, entry


@ledger_transaction
def spend(
    *,
    member: Member,
    points: int,
    partner: Partner | None = None,
    reference: str = "",
    memo: str = "",
) -> SpendResult:
    """Use points as payment (积分抵扣): FIFO from the lots, worth points x point_value.

    `InsufficientPoints` when available is short (nothing is taken). With a reference the
    payment is recorded on the Order of (partner, reference), so that a refund of that order
    gives the points back to the same lots; one point payment per reference.
    """
    _validate_points(points)
    programme = ProgrammeSettings.get()
    account = _lock_account_for(member)
    _ensure_member_may_use_points(account.member)
    if account.available < points:
        raise InsufficientPoints(available=account.available, requested=points)
    order = None
    if reference:
        order = _order_for_spend(
            account=account, partner=partner, reference=reference, currency=programme.currency
        )
        if order.spend_entry_id is not None:
            raise DuplicateReference(
                _("Points were already used to pay this reference."), reference=reference
            )
    entry = _debit(
        account=account,
        points=points,
        kind=Kind.SPEND,
        spent_delta=points,
        partner_id=partner.pk if partner else None,
        reference=reference,
        memo=memo,
        source_type="order" if order else "",
        source_id=order.pk if order else "",
    )
    cash_value = _cash_value(points, programme)
    if order is not None:
        order.spend_entry = entry
        order.points_spent = points
        fields = ["spend_entry", "points_spent", "updated_at"]
        if order.amount is None:
            order.paid_with_points = cash_value
            fields.append("paid_with_points")
        order.save(update_fields=fields)
    _record_event(
        type="points.spent",
        account=account,
        payload={
            "member": account.member.external_id,
            "entry_id": entry.pk,
            "points": points,
            "cash_value": str(cash_value),
            "currency": programme.currency,
            "reference": reference,
            "available": account.available,
        },
    )
    return SpendResult(entry=entry, cash_value=cash_value, currency=programme.currency)


@ledger_transaction
def take_for_redemption(
    *, member: Member, points: int, redemption_id, partner: Partner | None = None
) -> Entry:
    """Take a redemption's points (kind "redeem"), FIFO; lock the reward's stock row first."""
    _validate_points(points)
    account, entry = _take(
        member=member,
        points=points,
        kind=Kind.REDEEM,
        partner_id=partner.pk if partner else None,
        source_type="redemption",
        source_id=redemption_id,
    )
    _record_event(
        type="points.redeemed",
        account=account,
        payload={
            "member": account.member.external_id,
            "entry_id": entry.pk,
            "points": points,
            "redemption_id": str(redemption_id),
            "available": account.available,
        },
    )
    return entry


def _allocations_to_give_back(*, taken_by: Entry) -> list[tuple[int, int]]:
    """(lot, points still to give back) of an outgoing entry, the lot taken last first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH taken AS (
                SELECT lot_id, -sum(points) AS points, max(id) AS last_id
                  FROM points_allocation WHERE entry_id = %(entry)s AND points < 0
                 GROUP BY lot_id
            ),
            returned AS (
                SELECT a.lot_id, sum(a.points) AS points
                  FROM points_allocation a JOIN points_entry e ON e.id = a.entry_id
                 WHERE e.related_entry_id = %(entry)s AND e.kind = 'reverse' AND a.points > 0
                 GROUP BY a.lot_id
            )
            SELECT t.lot_id, t.points - COALESCE(r.points, 0)
              FROM taken t LEFT JOIN returned r USING (lot_id)
             WHERE t.points > COALESCE(r.points, 0)
             ORDER BY t.last_id DESC
            """,
            {"entry": taken_by.pk},
        )
        return [(lot_id, int(points)) for lot_id, points in cursor.fetchall()]


@ledger_transaction
def give_back_redemption(*, entry: Entry) -> Entry:
    """Give a cancelled redemption's points back to exactly the lots and amounts it took.

    Lots already past their expiry date are re-activated and expire in the next expiry run.
    Giving back twice is refused (`AlreadyGivenBack`; a unique index backs it).
    """
    if entry.kind != Kind.REDEEM:
        raise InvalidLedgerRequest(_("Only a redemption's points can be given back."))
    account = lock_account(account_id=entry.account_id)
    already = Entry.objects.filter(
        related_entry_id=entry.pk, kind=Kind.REVERSE, source_type="redemption"
    ).exists()
    if already:
        raise AlreadyGivenBack(entry=entry.pk)
    plan = _allocations_to_give_back(taken_by=entry)
    points = sum(delta for _lot, delta in plan)
    if points != -entry.amount:
        raise _inconsistent(entry=entry.pk, expected=-entry.amount, found=points)
    try:
        back = _move_lots(
            account=account,
            plan=plan,
            kind=Kind.REVERSE,
            spent_delta=-points,
            partner_id=entry.partner_id,
            reference=entry.reference,
            memo=_("Redemption cancelled: points given back"),
            source_type="redemption",
            source_id=entry.source_id,
            related_entry_id=entry.pk,
        )
    except IntegrityError as error:
        if "entry_redemption_given_back_once" in str(error):
            _doom_transaction()
            raise AlreadyGivenBack(entry=entry.pk) from error
        raise
    _record_event(
        type="points.returned",
        account=account,
        payload={
            "member": account.member.external_id,
            "entry_id": back.pk,
            "points": points,
            "redemption_id": entry.source_id,
            "available": account.available,
        },
    )
    return back


# --- Adjustments ----------------------------------------------------------------------------------
@ledger_transaction
def adjust(
    *,
    member: Member,
    points: int,
    reason: str,
    operator,
    partner: Partner | None = None,
    approved_by=None,
    source_type: str = "",
    source_id="",
) -> Entry:
    """An operator's correction, with a reason: + creates a lot (policy expiry), - takes FIFO.

    A negative adjustment may take the balance below zero down to the credit limit, never
    further (`InsufficientPoints`). Works on frozen members too: it is how operators fix them.
    Whether it needs a second operator is decided before (points/grants.py, maker-checker);
    `approved_by` names that operator on the entry, `source_type`/`source_id` what it came from.
    """
    _validate_points(points, signed=True)
    if not (reason or "").strip():
        raise InvalidLedgerRequest(_("An adjustment needs a reason."))
    operator_id = operator.pk if operator is not None else None
    approved_by_id = approved_by.pk if approved_by is not None else None
    partner_id = partner.pk if partner else None
    if points > 0:
        result, _order = _credit(
            member=member,
            points=points,
            kind=Kind.ADJUST,
            statuses=ANY_STATUS,
            event_type="points.adjusted",
            partner_id=partner_id,
            reason=reason.strip(),
            operator_id=operator_id,
            approved_by_id=approved_by_id,
            source_type=source_type,
            source_id=source_id,
        )
        return result.entry
    account = _lock_account_for(member)
    if account.available + points < -account.credit_limit:
        raise InsufficientPoints(
            available=account.available, requested=-points, credit_limit=account.credit_limit
        )
    entry = _debit(
        account=account,
        points=-points,
        kind=Kind.ADJUST,
        partner_id=partner_id,
        reason=reason.strip(),
        operator_id=operator_id,
        approved_by_id=approved_by_id,
        source_type=source_type,
        source_id=source_id,
    )
    _record_event(
        type="points.adjusted",
        account=account,
        payload={
            "member": account.member.external_id,
            "entry_id": entry.pk,
            "points": points,
            "available": account.available,
        },
    )
    return entry


# --- Refunds --------------------------------------------------------------------------------------
def _refund_totals(order: Order, amount: Decimal | None) -> Decimal | None:
    """The order's refunded amount after this refund (None: a points-only order, in full)."""
    if order.amount is None:
        if amount is not None:
            raise InvalidLedgerRequest(
                _("This reference was paid with points only: refund it in full, without amount.")
            )
        if order.points_returned >= order.points_spent:
            raise AlreadyRefunded(reference=order.reference)
        return None
    left = order.amount - order.refunded_amount
    if amount is None:
        amount = left
    elif Decimal(amount) <= 0:
        raise InvalidLedgerRequest(_("A refund amount must be greater than zero."))
    amount = Decimal(amount)
    if left <= 0 or amount > left:
        raise AlreadyRefunded(reference=order.reference, refundable=str(left))
    return order.refunded_amount + amount


def _share(points: int, refunded: Decimal | None, amount: Decimal | None) -> int:
    """Points that belong to the refunded part: floor of the cumulative share, so the sum of
    all partial refunds equals the points of a full refund exactly."""
    if refunded is None or amount is None or refunded >= amount:
        return points
    return int((Decimal(points) * refunded / amount).to_integral_value(rounding=ROUND_FLOOR))


def _return_spent_points(*, account: Account, order: Order, points: int) -> Entry:
    spend_entry = Entry.objects.get(pk=order.spend_entry_id)
    plan, left = [], points
    for lot_id, still_out in _allocations_to_give_back(taken_by=spend_entry):
        if left <= 0:
            break
        back = min(left, still_out)
        plan.append((lot_id, back))
        left -= back
    if left:
        raise _inconsistent(order=order.pk, expected=points, missing=left)
    return _move_lots(
        account=account,
        plan=plan,
        kind=Kind.REVERSE,
        spent_delta=-points,
        partner_id=order.partner_id,
        reference=order.reference,
        memo=_("Refund of order %(reference)s: points paid are returned")
        % {"reference": order.reference},
        source_type="order",
        source_id=order.pk,
        related_entry_id=spend_entry.pk,
    )


def _reverse_earned_points(
    *, account: Account, order: Order, points: int, policy: str
) -> tuple[list[Entry], int]:
    """Take back `points` of what the order earned; returns (entries, points taken back).

    First from the order's own lot (pending or available); what expired before the refund is
    not taken again (it already left the balance); what was used is handled by the programme's
    refund_after_spend_policy, and anything not taken back is written off in a visible entry.
    """
    lot = Lot.objects.get(earn_entry_id=order.earn_entry_id)
    common = {
        "partner_id": order.partner_id,
        "reference": order.reference,
        "source_type": "order",
        "source_id": order.pk,
        "related_entry_id": order.earn_entry_id,
    }
    entries, taken = [], 0
    from_lot = min(points, lot.remaining)
    if from_lot:
        entries.append(
            _move_lots(
                account=account,
                plan=[(lot.pk, -from_lot)],
                pending=lot.state == Lot.State.PENDING,
                kind=Kind.REVERSE,
                memo=_("Refund of order %(reference)s") % {"reference": order.reference},
                **common,
            )
        )
        taken += from_lot
    shortfall = points - from_lot
    if not shortfall:
        return entries, taken
    expired = -(
        Allocation.objects.filter(lot=lot, entry__kind=Kind.EXPIRE).aggregate(total=Sum("points"))[
            "total"
        ]
        or 0
    )
    lapsed = min(shortfall, max(expired - order.points_lapsed, 0))
    used = shortfall - lapsed
    can_take = 0
    if policy == ProgrammeSettings.RefundAfterSpendPolicy.TAKE_FROM_OTHER_POINTS:
        can_take = min(used, max(account.available, 0))
    elif policy == ProgrammeSettings.RefundAfterSpendPolicy.ALLOW_NEGATIVE:
        can_take = min(used, max(account.available + account.credit_limit, 0))
    if can_take:
        entries.append(
            _debit(
                account=account,
                points=can_take,
                kind=Kind.REVERSE,
                memo=_(
                    "Refund of order %(reference)s: %(points)s points were already used; "
                    "policy %(policy)s"
                )
                % {"reference": order.reference, "points": can_take, "policy": policy},
                **common,
            )
        )
        taken += can_take
    written_off = used - can_take
    if written_off or lapsed:
        entries.append(
            _note_entry(
                account=account,
                kind=Kind.REVERSE,
                memo=_(
                    "Refund of order %(reference)s: %(written_off)s points written off "
                    "(policy %(policy)s), %(lapsed)s had already expired"
                )
                % {
                    "reference": order.reference,
                    "written_off": written_off,
                    "policy": policy,
                    "lapsed": lapsed,
                },
                **common,
            )
        )
    order.points_written_off += written_off + lapsed
    order.points_lapsed += lapsed
    return entries, taken


@ledger_transaction
def refund_order(
    *, partner: Partner, reference: str, amount: Decimal | None = None
) -> RefundResult:
    """Refund (part of) an order: give back the points it was paid with, to the lots they came
    from, then reverse the points it earned, in proportion to the amount refunded.

    Proportions are floors of the cumulative share, so partial refunds add up to exactly what a
    full refund gives. The order row is locked (after its account): concurrent refunds are
    exact. `AlreadyRefunded` beyond what is left to refund; `OrderNotFound` for an unknown
    reference of this partner.
    """
    partner_id = partner.pk if partner else None
    found = (
        Order.objects.filter(partner_id=partner_id, reference=reference)
        .values("pk", "account_id")
        .first()
    )
    if found is None:
        raise OrderNotFound(reference=reference)
    account = lock_account(account_id=found["account_id"])
    order = lock_order(order_id=found["pk"])
    programme = ProgrammeSettings.get()
    refunded_total = _refund_totals(order, amount)
    entries: list[Entry] = []
    taken = 0

    if order.spend_entry_id is not None:
        to_return = _share(order.points_spent, refunded_total, order.amount) - order.points_returned
        if to_return > 0:
            entries.append(_return_spent_points(account=account, order=order, points=to_return))
            order.points_returned += to_return

    if order.earn_entry_id is not None:
        to_reverse = (
            _share(order.points_earned, refunded_total, order.amount) - order.points_reversed
        )
        if to_reverse > 0:
            reversed_entries, taken = _reverse_earned_points(
                account=account,
                order=order,
                points=to_reverse,
                policy=programme.refund_after_spend_policy,
            )
            entries += reversed_entries
            order.points_reversed += to_reverse

    if refunded_total is not None:
        order.refunded_amount = refunded_total
    order.save()
    _record_event(
        type="points.reversed",
        account=account,
        payload={
            "member": account.member.external_id,
            "reference": reference,
            "refunded_amount": str(order.refunded_amount),
            "points_reversed": taken,
            "points_returned": order.points_returned,
            "entry_ids": [entry.pk for entry in entries],
            "available": account.available,
        },
    )
    return RefundResult(points_reversed=taken, entries=entries)


# --- Batch jobs: expiry and pending release --------------------------------------------------
# Each chunk is one statement in its own transaction: it takes the next `batch` due lots in
# index order (keyset), locks their accounts with SKIP LOCKED (a busy account is left for a
# later pass), locks and changes ALL due lots of those accounts, and writes one entry per
# account with its allocations, the account update and the outbox events. Nothing is loaded
# into Python; a killed run leaves whole chunks done, and a re-run finds only what is left.
#
# Cost: O(rows the chunk touches), never O(chunk^2) nor O(all due lots) (docs/scaling.md).
# - An account's due lots are read per locked account through an index on account_id
#   (lot_fifo_idx, lot_pending_account_idx) in a LATERAL subquery; its FOR UPDATE keeps
#   PostgreSQL from flattening it into a join it could plan as "every due lot, per account".
# - No step joins two CTEs: the planner cannot estimate a CTE's rows, and a nested loop over
#   two CTE scans compares every row with every row. What a later step needs travels along
#   instead: the account's balance, member and entry id ride on each of its lot rows, and the
#   entry id is taken from the sequence once per locked account (`acct`), so the allocations
#   and the outbox events never have to find their entry again (a gap in entry ids, for an
#   account that gets no entry, is harmless).
_EXPIRE_SQL = """
WITH picked AS (
    SELECT l.account_id, l.expires_at, l.id
      FROM points_lot l
     WHERE l.state = 'active' AND l.remaining > 0 AND l.expires_at < %(as_of)s
       AND (l.expires_at, l.id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
     ORDER BY l.expires_at, l.id
     LIMIT %(batch)s
),
last_key AS (SELECT expires_at, id FROM picked ORDER BY expires_at DESC, id DESC LIMIT 1),
acct AS (
    SELECT a.id, a.available, m.external_id,
           nextval(pg_get_serial_sequence('points_entry', 'id')) AS entry_id
      FROM points_account a JOIN members_member m ON m.id = a.member_id
     WHERE a.id IN (SELECT account_id FROM picked)
     ORDER BY a.id
       FOR UPDATE OF a {skip_locked}
),
lots AS (
    SELECT a.id AS account_id, a.available, a.external_id, a.entry_id, l.id, l.remaining
      FROM acct a
     CROSS JOIN LATERAL (
           SELECT l.id, l.remaining
             FROM points_lot l
            WHERE l.account_id = a.id
              AND l.state = 'active' AND l.remaining > 0 AND l.expires_at < %(as_of)s
              FOR UPDATE OF l
           ) l
),
per_account AS (
    SELECT account_id, available, external_id, entry_id, sum(remaining) AS points
      FROM lots GROUP BY account_id, available, external_id, entry_id
),
ent AS (
    INSERT INTO points_entry (id, account_id, kind, amount, available_delta, pending_delta,
                              balance_after, source_type, source_id)
    SELECT p.entry_id, p.account_id, 'expire', -p.points, -p.points, 0, p.available - p.points,
           'expiry', %(as_of_text)s
      FROM per_account p
),
expired AS (
    UPDATE points_lot l SET remaining = 0, state = 'expired'
      FROM lots WHERE l.id = lots.id
    RETURNING l.id, lots.remaining AS points
),
alloc AS (
    INSERT INTO points_allocation (entry_id, lot_id, points)
    SELECT lots.entry_id, lots.id, -lots.remaining FROM lots
),
accounts AS (
    UPDATE points_account a
       SET available = a.available - p.points,
           lifetime_expired = a.lifetime_expired + p.points,
           updated_at = now()
      FROM per_account p WHERE a.id = p.account_id
),
event AS (
    INSERT INTO points_outboxevent (type, account_id, member_external_id, payload)
    SELECT 'points.expired', p.account_id, p.external_id,
           jsonb_build_object('member', p.external_id, 'entry_id', p.entry_id,
                              'points', p.points, 'available', p.available - p.points,
                              'as_of', %(as_of_text)s)
      FROM per_account p
)
SELECT (SELECT count(DISTINCT account_id) FROM picked), (SELECT count(*) FROM acct),
       (SELECT count(*) FROM expired), (SELECT COALESCE(sum(points), 0) FROM expired),
       (SELECT expires_at FROM last_key), (SELECT id FROM last_key)
"""

_RELEASE_SQL = """
WITH picked AS (
    SELECT l.account_id, l.available_at, l.id
      FROM points_lot l
     WHERE l.state = 'pending' AND l.available_at <= %(as_of)s
       AND (l.available_at, l.id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
     ORDER BY l.available_at, l.id
     LIMIT %(batch)s
),
last_key AS (SELECT available_at, id FROM picked ORDER BY available_at DESC, id DESC LIMIT 1),
acct AS (
    SELECT a.id, a.available, m.external_id,
           nextval(pg_get_serial_sequence('points_entry', 'id')) AS entry_id
      FROM points_account a JOIN members_member m ON m.id = a.member_id
     WHERE a.id IN (SELECT account_id FROM picked)
     ORDER BY a.id
       FOR UPDATE OF a {skip_locked}
),
lots AS (
    SELECT a.id AS account_id, a.available, a.external_id, a.entry_id,
           l.id, l.remaining, l.expires_at
      FROM acct a
     CROSS JOIN LATERAL (
           SELECT l.id, l.remaining, l.expires_at
             FROM points_lot l
            WHERE l.account_id = a.id
              AND l.state = 'pending' AND l.available_at <= %(as_of)s
              FOR UPDATE OF l
           ) l
),
settle AS (
    -- A negative balance is paid first from the released lots, in spending order: each lot
    -- pays what is left of the debt after the lots before it (capped at what it holds).
    SELECT id, entry_id,
           LEAST(remaining,
                 GREATEST(GREATEST(-available, 0) - (sum(remaining) OVER w - remaining), 0))
               AS paid
      FROM lots
    WINDOW w AS (PARTITION BY account_id ORDER BY expires_at ASC NULLS LAST, id
                 ROWS UNBOUNDED PRECEDING)
),
per_account AS (
    SELECT account_id, available, external_id, entry_id, sum(remaining) AS points
      FROM lots GROUP BY account_id, available, external_id, entry_id
),
ent AS (
    -- A lot refunded to nothing is released without an entry.
    INSERT INTO points_entry (id, account_id, kind, amount, available_delta, pending_delta,
                              balance_after, source_type, source_id)
    SELECT p.entry_id, p.account_id, 'release', 0, p.points, -p.points, p.available + p.points,
           'release', %(as_of_text)s
      FROM per_account p WHERE p.points > 0
    RETURNING available_delta
),
released AS (
    UPDATE points_lot l SET state = 'active', remaining = l.remaining - s.paid
      FROM settle s WHERE l.id = s.id
    RETURNING l.id
),
alloc AS (
    INSERT INTO points_allocation (entry_id, lot_id, points)
    SELECT s.entry_id, s.id, -s.paid FROM settle s WHERE s.paid > 0
),
accounts AS (
    UPDATE points_account a
       SET available = a.available + p.points,
           pending = a.pending - p.points,
           updated_at = now()
      FROM per_account p WHERE a.id = p.account_id AND p.points > 0
),
event AS (
    INSERT INTO points_outboxevent (type, account_id, member_external_id, payload)
    SELECT 'points.released', p.account_id, p.external_id,
           jsonb_build_object('member', p.external_id, 'entry_id', p.entry_id,
                              'points', p.points, 'available', p.available + p.points,
                              'as_of', %(as_of_text)s)
      FROM per_account p WHERE p.points > 0
)
SELECT (SELECT count(DISTINCT account_id) FROM picked), (SELECT count(*) FROM acct),
       (SELECT count(*) FROM released), (SELECT COALESCE(sum(available_delta), 0) FROM ent),
       (SELECT available_at FROM last_key), (SELECT id FROM last_key)
"""

_COUNT_DUE_SQL = {
    "expire": """SELECT count(*) FROM points_lot
                  WHERE state = 'active' AND remaining > 0 AND expires_at < %(as_of)s""",
    "release": """SELECT count(*) FROM points_lot
                   WHERE state = 'pending' AND available_at <= %(as_of)s""",
}

# Passes that skip busy accounts; the last pass waits for their locks instead.
_SKIPPING_PASSES = 3


@dataclass
class BatchRun:
    """What a run of a batch job did."""

    lots: int = 0
    points: int = 0
    chunks: int = 0
    passes: int = 0


def _run_batch(
    *,
    job: str,
    as_of: datetime,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> BatchRun:
    if timezone.is_naive(as_of):
        raise InvalidLedgerRequest(_("as_of must be timezone-aware."))
    if batch_size <= 0:
        raise InvalidLedgerRequest(_("batch_size must be greater than zero."))
    template = _EXPIRE_SQL if job == "expire" else _RELEASE_SQL
    total = 0
    if progress is not None:
        with connection.cursor() as cursor:
            cursor.execute(_COUNT_DUE_SQL[job], {"as_of": as_of})
            total = cursor.fetchone()[0]
        progress(0, total)
    run = BatchRun()
    for pass_number in range(_SKIPPING_PASSES + 1):
        waiting = pass_number == _SKIPPING_PASSES
        sql = template.format(skip_locked="" if waiting else "SKIP LOCKED")
        run.passes += 1
        after_at, after_id = "-infinity", 0
        skipped = False
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    sql,
                    {
                        "as_of": as_of,
                        "as_of_text": as_of.isoformat(),
                        "after_at": after_at,
                        "after_id": after_id,
                        "batch": batch_size,
                    },
                )
                picked, locked, lots, points, last_at, last_id = cursor.fetchone()
            if not picked:
                break
            run.chunks += 1
            run.lots += lots
            run.points += int(points)
            skipped = skipped or locked < picked
            after_at, after_id = last_at, last_id
            if progress is not None:
                progress(run.lots, max(total, run.lots))
        if not skipped:
            break
    return run


def expire_lots(
    *,
    as_of: datetime,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Expire every active lot whose expires_at is before `as_of`; returns how many lots.

    Idempotent and safe to kill: each chunk commits on its own (one "expire" entry per account
    per chunk, with allocations), and a re-run with the same `as_of` finds only what is left.
    """
    return run_expiry(as_of=as_of, batch_size=batch_size, progress=progress).lots


def run_expiry(
    *,
    as_of: datetime,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> BatchRun:
    """`expire_lots` with the full figures (lots, points, chunks) for reports."""
    return _run_batch(job="expire", as_of=as_of, batch_size=batch_size, progress=progress)


def release_pending_points(
    *,
    as_of: datetime,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Make pending lots whose available_at is at or before `as_of` available; returns how many.

    Same chunking, locking and re-run guarantees as `expire_lots`; one "release" entry per
    account per chunk (amount 0: the points move from pending to available).
    """
    return run_release(as_of=as_of, batch_size=batch_size, progress=progress).lots


def run_release(
    *,
    as_of: datetime,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> BatchRun:
    """`release_pending_points` with the full figures for reports."""
    return _run_batch(job="release", as_of=as_of, batch_size=batch_size, progress=progress)


# --- The invariant ---------------------------------------------------------------------------
_ACCOUNT_CHECK_SQL = """
WITH lot_sums AS (
    SELECT account_id,
           COALESCE(sum(remaining) FILTER (WHERE state = 'active'), 0) AS active_remaining,
           COALESCE(sum(remaining) FILTER (WHERE state = 'pending'), 0) AS pending_remaining
      FROM points_lot GROUP BY account_id
),
entry_sums AS (
    SELECT account_id, sum(available_delta) AS available, sum(pending_delta) AS pending
      FROM points_entry GROUP BY account_id
)
SELECT a.id, m.external_id, a.available, a.pending,
       COALESCE(e.available, 0), COALESCE(e.pending, 0),
       COALESCE(l.active_remaining, 0), COALESCE(l.pending_remaining, 0)
  FROM points_account a
  JOIN members_member m ON m.id = a.member_id
  LEFT JOIN lot_sums l ON l.account_id = a.id
  LEFT JOIN entry_sums e ON e.account_id = a.id
 WHERE a.available <> COALESCE(e.available, 0)
    OR a.pending <> COALESCE(e.pending, 0)
    OR GREATEST(a.available, 0) <> COALESCE(l.active_remaining, 0)
    OR a.pending <> COALESCE(l.pending_remaining, 0)
 ORDER BY a.id
"""

_LOT_CHECK_SQL = """
SELECT l.id, l.account_id, m.external_id, l.amount + COALESCE(s.points, 0), l.remaining
  FROM points_lot l
  JOIN points_account a ON a.id = l.account_id
  JOIN members_member m ON m.id = a.member_id
  LEFT JOIN (SELECT lot_id, sum(points) AS points FROM points_allocation GROUP BY lot_id) s
         ON s.lot_id = l.id
 WHERE l.remaining <> l.amount + COALESCE(s.points, 0)
 ORDER BY l.id
"""


def check_ledger_invariants() -> list[Mismatch]:
    """Every broken invariant of the ledger, found with set-based SQL over all accounts.

    For every account: available = sum(available_delta) and pending = sum(pending_delta) of its
    entries; the remaining points of its active lots = max(available, 0) (a negative balance is
    a debt) and of its pending lots = pending. For every lot: remaining = amount + allocations.
    """
    mismatches: list[Mismatch] = []
    with connection.cursor() as cursor:
        cursor.execute(_ACCOUNT_CHECK_SQL)
        for row in cursor.fetchall():
            account_id, member, available, pending, e_avail, e_pend, l_active, l_pending = row
            checks = [
                ("available = sum of entries' available_delta", available, e_avail),
                ("pending = sum of entries' pending_delta", pending, e_pend),
                ("max(available, 0) = remaining of active lots", max(available, 0), l_active),
                ("pending = remaining of pending lots", pending, l_pending),
            ]
            mismatches += [
                Mismatch(
                    check=check,
                    account_id=account_id,
                    member=member,
                    expected=int(expected),
                    actual=int(actual),
                )
                for check, expected, actual in checks
                if expected != actual
            ]
        cursor.execute(_LOT_CHECK_SQL)
        mismatches += [
            Mismatch(
                check="lot remaining = amount + sum of its allocations",
                account_id=account_id,
                member=member,
                expected=int(expected),
                actual=int(actual),
                lot_id=lot_id,
            )
            for lot_id, account_id, member, expected, actual in cursor.fetchall()
        ]
    return mismatches


# --- Transfers between members and exchange with other programmes (docs/adr/0016) ---------------
@dataclass(frozen=True)
class TransferResult:
    transfer: Transfer
    out_entry: Entry
    in_entry: Entry
    lot: Lot


@dataclass(frozen=True)
class ConversionResult:
    conversion: Conversion
    entry: Entry
    rate: Decimal
    points: int
    partner_units: int


def _day_bounds(now: datetime, programme: ProgrammeSettings) -> tuple[datetime, datetime]:
    """[start, end) of the calendar day of `now` in the programme's time zone (daily limits)."""
    zone = programme.zone
    day = now.astimezone(zone).date()
    start = datetime.combine(day, clock_time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), clock_time.min, tzinfo=zone)
    return start, end


def _check_daily_limit(*, limit: int | None, used: int, points: int, what: str) -> None:
    if limit is not None and used + points > limit:
        raise DailyLimitExceeded(
            _("Daily limit of %(limit)s points (%(what)s): %(used)s already used today.")
            % {"limit": limit, "what": what, "used": used},
            limit=limit,
            used_today=used,
            requested=points,
        )


def _received_lot_expiry(
    *, out_entry: Entry, now: datetime, programme: ProgrammeSettings, recipient: Member
) -> datetime | None:
    """When the lot a transfer creates expires: at the points-weighted average of the expiry
    days of the lots the points were taken from, rounded down to a whole day (end of that day).

    A transfer thus never lengthens the points' life, so passing points back and forth keeps
    nothing from expiring. Points that never expire count, in a mix, as if received today under
    the recipient's policy; only never-expiring points given make a never-expiring lot.
    """
    zone = programme.zone
    taken = Allocation.objects.filter(entry_id=out_entry.pk).values_list(
        "lot__expires_at", "points"
    )
    dated = weighted = never = 0
    for expires_at, points in taken:
        if expires_at is None:
            never -= points
        else:
            dated -= points
            weighted -= points * expires_at.astimezone(zone).date().toordinal()
    if never:
        if not dated:
            return None
        fresh = expiry.lot_expiry(now, programme=programme, tier=recipient.tier)
        if fresh is None:
            return None
        dated += never
        weighted += never * fresh.astimezone(zone).date().toordinal()
    if not dated:
        raise _inconsistent(entry=out_entry.pk, expected=-out_entry.amount, taken=0)
    return expiry.end_of_day(date.fromordinal(weighted // dated), zone)


def _sum_points(queryset) -> int:
    return int(queryset.aggregate(total=Sum("points"))["total"] or 0)


@ledger_transaction
def transfer_points(
    *,
    sender: Member,
    recipient: Member,
    points: int,
    partner: Partner | None = None,
    reference: str = "",
    now: datetime | None = None,
) -> TransferResult:
    """Give `points` of `sender` to `recipient`: one `transfer` entry on each side, together.

    Both accounts are locked in ascending id order (ADR 0001), so A->B and B->A never
    deadlock, and the daily limits (TransferSettings, per calendar day in the programme's time
    zone) are checked under those locks. The sender's points leave FIFO; the recipient gets a
    NEW lot whose expiry follows the points given (`_received_lot_expiry`). Refused before
    anything is written: `InsufficientPoints`, `MemberFrozen` (either side), `MemberClosed`,
    `DailyLimitExceeded`, `InvalidTransfer` (to oneself), `DuplicateReference` (a reference
    names one transfer per partner). Lifetime counters do not move: the points stay in the
    programme.
    """
    _validate_points(points)
    if sender.pk == recipient.pk:
        raise InvalidTransfer(_("A member cannot transfer points to themselves."))
    now = now or timezone.now()
    programme = _programme()
    limits = TransferSettings.get()
    partner_id = partner.pk if partner else None
    sender_account_id = (
        Account.objects.filter(member_id=sender.pk).values_list("pk", flat=True).first()
    )
    if sender_account_id is None:
        raise InsufficientPoints(available=0, requested=points)
    recipient_account_id = account_for_member(member=recipient).pk
    locked = {
        account.pk: account
        for account in lock_accounts(account_ids=[sender_account_id, recipient_account_id])
    }
    giver, receiver = locked[sender_account_id], locked[recipient_account_id]
    _ensure_member_may_use_points(giver.member)
    _ensure_member_may_use_points(receiver.member)
    if giver.available < points:
        raise InsufficientPoints(available=giver.available, requested=points)
    start, end = _day_bounds(now, programme)
    today = Transfer.objects.filter(created_at__gte=start, created_at__lt=end)
    _check_daily_limit(
        limit=limits.daily_out_limit,
        used=_sum_points(today.filter(from_account_id=giver.pk)),
        points=points,
        what=_("given by %(member)s") % {"member": giver.member.external_id},
    )
    _check_daily_limit(
        limit=limits.daily_in_limit,
        used=_sum_points(today.filter(to_account_id=receiver.pk)),
        points=points,
        what=_("received by %(member)s") % {"member": receiver.member.external_id},
    )
    if reference and Transfer.objects.filter(partner_id=partner_id, reference=reference).exists():
        raise DuplicateReference(
            _("A transfer with this reference was already made."), reference=reference
        )
    try:
        transfer = Transfer.objects.create(
            partner_id=partner_id,
            reference=reference or "",
            from_account_id=giver.pk,
            to_account_id=receiver.pk,
            points=points,
            created_at=now,
        )
    except IntegrityError as error:  # the same reference, committed by a concurrent request
        _doom_transaction()
        raise DuplicateReference(
            _("A transfer with this reference was already made."), reference=reference
        ) from error
    sender_id, recipient_id = giver.member.external_id, receiver.member.external_id
    out_entry = _debit(
        account=giver,
        points=points,
        kind=Kind.TRANSFER,
        partner_id=partner_id,
        reference=reference,
        memo=_("Points given to %(member)s") % {"member": recipient_id},
        source_type="transfer",
        source_id=transfer.pk,
    )
    expires_at = _received_lot_expiry(
        out_entry=out_entry, now=now, programme=programme, recipient=receiver.member
    )
    try:
        received, _order = _credit(
            member=receiver.member,
            points=points,
            kind=Kind.TRANSFER,
            statuses=ACTIVE_STATUSES,
            event_type="points.transferred",
            partner_id=partner_id,
            reference=reference,
            memo=_("Points received from %(member)s") % {"member": sender_id},
            source_type="transfer",
            source_id=transfer.pk,
            expires_at=expires_at,
            expiry_given=True,
            issuance=False,  # a transfer moves points that exist: a freeze lets it through
        )
    except LoyaltyError:
        _doom_transaction()  # the sender's side is already written
        raise
    transfer.out_entry, transfer.in_entry = out_entry, received.entry
    transfer.save(update_fields=["out_entry", "in_entry"])
    _record_event(
        type="points.transferred",
        account=giver,
        payload={
            "member": sender_id,
            "kind": Kind.TRANSFER,
            "points": -points,
            "to": recipient_id,
            "reference": reference or "",
            "entry_id": out_entry.pk,
            "available": giver.available,
        },
    )
    return TransferResult(
        transfer=transfer, out_entry=out_entry, in_entry=received.entry, lot=received.lot
    )


def exchange_rate(exchange_partner: ExchangePartner) -> Decimal:
    """Our points per ONE partner unit now: base rate x adjustment factor, exact (no rounding:
    6 + 4 decimal places fit the 10 a conversion records)."""
    return exchange_partner.base_rate * exchange_partner.factor


def conversion_amounts(*, rate: Decimal, direction: str, amount: int) -> tuple[int, int]:
    """(our points, partner units) of a conversion of `amount` at `rate`; never in the member's
    favour. `out` (amount = our points): whole units only, floor(amount / rate), and the member
    pays ceil(units x rate) <= amount for them, keeping the rest. `in` (amount = partner units):
    floor(amount x rate) points."""
    if direction == Conversion.Direction.OUT:
        units = int((Decimal(amount) / rate).to_integral_value(rounding=ROUND_FLOOR))
        points = int((units * rate).to_integral_value(rounding=ROUND_CEILING))
        return points, units
    return int((amount * rate).to_integral_value(rounding=ROUND_FLOOR)), amount


@ledger_transaction
def convert_points(
    *,
    member: Member,
    programme_code: str,
    direction: str,
    amount: int,
    partner: Partner | None = None,
    reference: str = "",
    now: datetime | None = None,
) -> ConversionResult:
    """Exchange points with another programme at its current rate, one `convert` entry.

    `out`: `amount` of our points buy whole partner units (FIFO from the lots, only what the
    units cost is taken); `in`: `amount` partner units credit our points as a new lot with the
    programme's expiry from now (the member's tier may override it). Daily limits per member,
    partner and direction, in our points, per calendar day in the programme's time zone,
    checked under the account lock. Refused before anything is written:
    `UnknownExchangeProgramme`, `InvalidConversion` (too small for one unit or one point),
    `InsufficientPoints`, `MemberFrozen`, `MemberClosed`, `DailyLimitExceeded`,
    `DuplicateReference`.
    """
    _validate_points(amount)
    if direction not in Conversion.Direction.values:
        raise InvalidConversion(_("The direction must be `in` or `out`."), direction=direction)
    exchange_partner = ExchangePartner.objects.filter(code=programme_code, is_active=True).first()
    if exchange_partner is None:
        raise UnknownExchangeProgramme(programme=programme_code)
    rate = exchange_rate(exchange_partner)
    points, units = conversion_amounts(rate=rate, direction=direction, amount=amount)
    if points <= 0 or units <= 0:
        raise InvalidConversion(
            _("Too small to convert: %(amount)s gives nothing at the rate %(rate)s.")
            % {"amount": amount, "rate": rate.normalize()},
            rate=f"{rate.normalize():f}",
        )
    now = now or timezone.now()
    programme = _programme()
    partner_id = partner.pk if partner else None
    going_out = direction == Conversion.Direction.OUT
    if not going_out:
        ensure_issuance_open()  # points converted in are new points (docs/adr/0018)
    account = _lock_account_for(member)
    _ensure_member_may_use_points(account.member)
    if going_out and account.available < points:
        raise InsufficientPoints(available=account.available, requested=points)
    start, end = _day_bounds(now, programme)
    _check_daily_limit(
        limit=exchange_partner.daily_out_limit if going_out else exchange_partner.daily_in_limit,
        used=_sum_points(
            Conversion.objects.filter(
                account_id=account.pk,
                exchange_partner_id=exchange_partner.pk,
                direction=direction,
                created_at__gte=start,
                created_at__lt=end,
            )
        ),
        points=points,
        what=_("conversions %(direction)s with %(programme)s")
        % {"direction": direction, "programme": exchange_partner.code},
    )
    duplicate = DuplicateReference(
        _("A conversion with this reference was already made."), reference=reference
    )
    if reference and Conversion.objects.filter(partner_id=partner_id, reference=reference).exists():
        raise duplicate
    try:
        conversion = Conversion.objects.create(
            exchange_partner=exchange_partner,
            account_id=account.pk,
            direction=direction,
            points=points,
            partner_units=units,
            rate=rate,
            partner_id=partner_id,
            reference=reference or "",
            created_at=now,
        )
    except IntegrityError as error:  # the same reference, committed by a concurrent request
        _doom_transaction()
        raise duplicate from error
    memo_values = {
        "units": units,
        "unit": exchange_partner.unit_name or exchange_partner.code,
        "programme": exchange_partner.name,
        "rate": f"{rate.normalize():f}",
    }
    if going_out:
        entry = _debit(
            account=account,
            points=points,
            kind=Kind.CONVERT,
            partner_id=partner_id,
            reference=reference,
            memo=_("Converted to %(units)s %(unit)s of %(programme)s at %(rate)s points each")
            % memo_values,
            source_type="conversion",
            source_id=conversion.pk,
        )
        _record_event(
            type="points.converted",
            account=account,
            payload={
                "member": account.member.external_id,
                "kind": Kind.CONVERT,
                "direction": direction,
                "programme": exchange_partner.code,
                "points": -points,
                "partner_units": units,
                "rate": f"{rate.normalize():f}",
                "reference": reference or "",
                "entry_id": entry.pk,
                "available": account.available,
            },
        )
    else:
        try:
            credited, _order = _credit(
                member=account.member,
                points=points,
                kind=Kind.CONVERT,
                statuses=ACTIVE_STATUSES,
                event_type="points.converted",
                partner_id=partner_id,
                reference=reference,
                memo=_("Converted from %(units)s %(unit)s of %(programme)s at %(rate)s points each")
                % memo_values,
                source_type="conversion",
                source_id=conversion.pk,
                occurred_at=now,
            )
        except LoyaltyError:
            _doom_transaction()  # the conversion row is already written
            raise
        entry = credited.entry
    conversion.entry = entry
    conversion.save(update_fields=["entry"])
    return ConversionResult(
        conversion=conversion, entry=entry, rate=rate, points=points, partner_units=units
    )
