"""Bulk data for benchmarks and scale tests, written with COPY (never row by row).

Rows are formatted in Python in large text blocks and streamed with psycopg's COPY, which
writes about a million rows in a few seconds on a small machine. Ids are assigned here so that
lots can point at their earning entries without a round trip; sequences are moved past them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from members.models import REFERRAL_ALPHABET, Tier

BLOCK_ROWS = 20_000


def _copy(table: str, columns: list[str], lines: Iterator[str]) -> int:
    """Stream tab-separated `lines` into `table`; returns the number of rows."""
    count = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        block: list[str] = []
        for line in lines:
            block.append(line)
            if len(block) >= BLOCK_ROWS:
                copy.write("".join(block))
                count += len(block)
                block.clear()
        if block:
            copy.write("".join(block))
            count += len(block)
    return count


def _next_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
        return cursor.fetchone()[0]


def _move_sequence(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT coalesce(max(id), 1) FROM {table}))"
        )


def _referral_code(number: int) -> str:
    """A unique code per member number (base 32 over the referral alphabet), prefixed Z."""
    digits = []
    for _ in range(7):
        number, rest = divmod(number, len(REFERRAL_ALPHABET))
        digits.append(REFERRAL_ALPHABET[rest])
    return "Z" + "".join(reversed(digits))


@dataclass(frozen=True)
class MemberBlock:
    first_member_id: int
    first_account_id: int
    count: int


def create_members(
    count: int,
    *,
    prefix: str = "bench",
    now: datetime | None = None,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> MemberBlock:
    """`count` members, each with an empty points account, joined over the last two years."""
    now = now or timezone.now()
    rng = random.Random(seed)
    tier_id = Tier.entry_tier().pk
    first_member = _next_id("members_member")
    first_account = _next_id("points_account")
    stamp = now.isoformat()

    def members() -> Iterator[str]:
        for index in range(count):
            member_id = first_member + index
            joined = (now - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))).isoformat()
            yield (
                f"{member_id}\t{prefix}-{member_id}\tMember {member_id}\t"
                f"139{member_id:08d}\t{prefix}{member_id}@example.com\t\\N\tf\tzh-hans\tactive\t"
                f"{tier_id}\t0\t{_referral_code(member_id)}\t\\N\t{joined}\t{stamp}\n"
            )

    _copy(
        "members_member",
        [
            "id",
            "external_id",
            "name",
            "phone",
            "email",
            "birthday",
            "marketing_consent",
            "language",
            "status",
            "tier_id",
            "growth",
            "referral_code",
            "referred_by_id",
            "joined_at",
            "updated_at",
        ],
        members(),
    )
    if progress:
        progress(f"{count:,} members")

    def accounts() -> Iterator[str]:
        for index in range(count):
            yield f"{first_account + index}\t{first_member + index}\t0\t0\t0\t0\t0\t0\t{stamp}\n"

    _copy(
        "points_account",
        [
            "id",
            "member_id",
            "available",
            "pending",
            "lifetime_earned",
            "lifetime_spent",
            "lifetime_expired",
            "credit_limit",
            "updated_at",
        ],
        accounts(),
    )
    _move_sequence("members_member")
    _move_sequence("points_account")
    if progress:
        progress(f"{count:,} accounts")
    return MemberBlock(first_member, first_account, count)


def create_earned_lots(
    block: MemberBlock,
    *,
    lots_per_account: int,
    points_per_lot: int = 100,
    expires_between: tuple[datetime, datetime],
    partner_id: int | None = None,
    seed: int = 11,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Earn entries and active lots for every account of `block`, with balances to match.

    Expiry dates are spread uniformly over `expires_between`; each lot's entry was created a
    year before its expiry. Returns the number of lots.
    """
    rng = random.Random(seed)
    start, end = expires_between
    span = int((end - start).total_seconds())
    first_entry = _next_id("points_entry")
    first_lot = _next_id("points_lot")
    partner = "\\N" if partner_id is None else str(partner_id)
    total = block.count * lots_per_account
    expiries = [(start + timedelta(seconds=rng.randrange(max(span, 1)))) for _ in range(total)]

    def entries() -> Iterator[str]:
        for index in range(total):
            account_id = block.first_account_id + index // lots_per_account
            balance = (index % lots_per_account + 1) * points_per_lot
            expires = expiries[index]
            created = (expires - timedelta(days=365)).isoformat()
            yield (
                f"{first_entry + index}\t{account_id}\tearn\t{points_per_lot}\t{points_per_lot}\t0"
                f"\t{balance}\t{partner}\tbench\t\t\t\\N\t\\N\trule\t\t\\N\t"
                f"{expires.isoformat()}\t\\N\t{created}\n"
            )

    _copy(
        "points_entry",
        [
            "id",
            "account_id",
            "kind",
            "amount",
            "available_delta",
            "pending_delta",
            "balance_after",
            "partner_id",
            "reference",
            "memo",
            "reason",
            "operator_id",
            "approved_by_id",
            "source_type",
            "source_id",
            "related_entry_id",
            "expires_at",
            "available_at",
            "created_at",
        ],
        entries(),
    )
    if progress:
        progress(f"{total:,} earn entries")

    def lots() -> Iterator[str]:
        for index in range(total):
            account_id = block.first_account_id + index // lots_per_account
            expires = expiries[index]
            yield (
                f"{first_lot + index}\t{account_id}\t{first_entry + index}\t{partner}\t"
                f"{points_per_lot}\t{points_per_lot}\tactive\t\\N\t{expires.isoformat()}\t"
                f"{(expires - timedelta(days=365)).isoformat()}\n"
            )

    _copy(
        "points_lot",
        [
            "id",
            "account_id",
            "earn_entry_id",
            "partner_id",
            "amount",
            "remaining",
            "state",
            "available_at",
            "expires_at",
            "created_at",
        ],
        lots(),
    )
    if progress:
        progress(f"{total:,} lots")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE points_account
               SET available = available + %(points)s,
                   lifetime_earned = lifetime_earned + %(points)s
             WHERE id BETWEEN %(first)s AND %(last)s
            """,
            {
                "points": lots_per_account * points_per_lot,
                "first": block.first_account_id,
                "last": block.first_account_id + block.count - 1,
            },
        )
    _move_sequence("points_entry")
    _move_sequence("points_lot")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE points_entry; ANALYZE points_lot; ANALYZE points_account")
    return total


# --- A whole programme's history, generated in SQL (benchmark B5, tests/admin_scale) ----------
# Every member's ledger repeats one cycle of five pairs of entries. Each pair starts with an
# earn of 100 points (its lot) and goes on with:
#   0: spend -40 from that lot      1: redeem -30 from it        2: the lot expires (-100)
#   3: a second earn of 100         4: an adjustment of -20 from the lot
# so the balances, lots and allocations agree by construction and `check_ledger` passes.
_CYCLE_NET = [60, 70, 0, 200, 80]  # available change of each pair
_CYCLE_BEFORE = [0, 60, 130, 130, 330]  # available before pair k of a cycle
_CYCLE_POINTS = sum(_CYCLE_NET)

_HISTORY_ENTRY_SQL = """
WITH slots AS (
    -- Time runs in slots of one entry per member; member a makes its entry number r in slot
    -- r + a %% 10, so that at any moment members are at different points of their cycle
    -- (every kind of entry all along the timeline). e orders entries in time; ids follow e.
    SELECT e, e %% %(accounts)s AS a, e / %(accounts)s - (e %% %(accounts)s) %% 10 AS r
      FROM generate_series(0::bigint, %(slots)s * %(accounts)s - 1) AS e
), s AS (
    SELECT e, a, r, r / 2 AS j, (r / 2) %% 5 AS k, r %% 2 = 0 AS first
      FROM slots WHERE r >= 0 AND r < %(entries_per_member)s
), d AS (
    SELECT s.*,
           (first OR k = 3) AS is_earn,
           (NOT first AND k = 3 AND j = 3 AND a < %(pending_accounts)s) AS is_pending,
           (a < %(pending_accounts)s AND (j > 3 OR (j = 3 AND NOT first))) AS after_pending,
           %(start)s::timestamptz + e * %(step_us)s * interval '1 microsecond' AS created,
           (ARRAY[%(partners)s])[e %% 4 + 1]::bigint AS partner
      FROM s
), x AS (
    SELECT d.*,
           CASE WHEN first THEN 100 ELSE (ARRAY[-40, -30, -100, 100, -20])[k + 1] END AS amount,
           %(cycle)s * ((j + CASE WHEN first THEN 0 ELSE 1 END) / 5)
             + (ARRAY[0, 60, 130, 130, 330])[(j + CASE WHEN first THEN 0 ELSE 1 END) %% 5 + 1]
             + CASE WHEN first THEN 100 ELSE 0 END
             - CASE WHEN after_pending THEN 100 ELSE 0 END AS balance,
           CASE
             WHEN first AND k = 2
               THEN %(start)s::timestamptz
                    + (e + %(accounts)s) * %(step_us)s * interval '1 microsecond'
             WHEN a < %(due_accounts)s
               THEN %(now)s::timestamptz - interval '1 day'
                    - (e %% 86400) * interval '1 second'
             ELSE %(start)s::timestamptz + e * %(step_us)s * interval '1 microsecond'
                  + interval '800 days'
           END AS lot_expires
      FROM d
)
"""

_HISTORY_INSERT_ENTRIES = """
INSERT INTO points_entry (id, account_id, kind, amount, available_delta, pending_delta,
                          balance_after, partner_id, reference, memo, reason, source_type,
                          source_id, expires_at, available_at, created_at)
SELECT %(first_entry)s + e, %(first_account)s + a,
       CASE WHEN is_earn THEN 'earn'
            ELSE (ARRAY['spend', 'redeem', 'expire', 'earn', 'adjust'])[k + 1] END,
       amount,
       CASE WHEN is_pending THEN 0 ELSE amount END,
       CASE WHEN is_pending THEN amount ELSE 0 END,
       balance, partner,
       CASE WHEN is_earn THEN 'o-' || (%(first_entry)s + e)
            WHEN k = 0 THEN 'pay-' || (%(first_entry)s + e) ELSE '' END,
       '', CASE WHEN NOT is_earn AND k = 4 THEN 'goodwill correction' ELSE '' END,
       CASE WHEN is_earn THEN 'rule' ELSE '' END, '',
       CASE WHEN is_earn THEN lot_expires END,
       CASE WHEN is_pending THEN %(now)s::timestamptz - interval '1 hour' END,
       created
  FROM x
"""

_HISTORY_INSERT_LOTS = """
INSERT INTO points_lot (id, account_id, earn_entry_id, partner_id, amount, remaining, state,
                        available_at, expires_at, created_at)
SELECT %(first_lot)s + e, %(first_account)s + a, %(first_entry)s + e, partner, 100,
       CASE WHEN NOT first THEN 100 ELSE (ARRAY[60, 70, 0, 100, 80])[k + 1] END,
       CASE WHEN first AND k = 2 THEN 'expired' WHEN is_pending THEN 'pending'
            ELSE 'active' END,
       CASE WHEN is_pending THEN %(now)s::timestamptz - interval '1 hour' END,
       lot_expires, created
  FROM x WHERE is_earn
"""

_HISTORY_INSERT_ALLOCATIONS = """
INSERT INTO points_allocation (entry_id, lot_id, points)
SELECT %(first_entry)s + e, %(first_lot)s + e - %(accounts)s, amount
  FROM x WHERE NOT first AND k <> 3
"""


def _secondary_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of `table` that back no constraint."""
    cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = current_schema() AND i.tablename = %s
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        """,
        [table],
    )
    return cursor.fetchall()


def create_ledger_history(
    *,
    members: int,
    entries_per_member: int = 10,
    pending_members: int = 0,
    due_members: int = 0,
    partner_ids: list[int] | None = None,
    years: float = 2.0,
    now: datetime | None = None,
    prefix: str = "hist",
    bulk_load: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Members, accounts and `members * entries_per_member` ledger entries with their lots and
    allocations, spread over the last `years` with every kind of entry all along it (entry ids
    follow time, as in a real append-only ledger; they are not dense), all consistent with the
    ledger invariant.

    The first `due_members` members' lots with points left expire before `now` (work for
    `expire_points`; the others expire after it); the first `pending_members` members have one
    pending lot due for release. Entries are shared round-robin between `partner_ids` and no
    partner. `bulk_load` drops the tables' secondary indexes and skips trigger-checked foreign
    keys while loading, then rebuilds the indexes (what pg_restore does): for millions of rows.
    Returns the row counts.
    """
    if entries_per_member < 2 or entries_per_member % 2:
        raise ValueError("entries_per_member must be even and at least 2")
    now = now or timezone.now()
    start = now - timedelta(days=365 * years)
    total = members * entries_per_member
    partners = [str(p) for p in (partner_ids or [])][:3]
    partners += ["NULL"] * (4 - len(partners))
    slots = entries_per_member + 9
    step_us = max(1, int((now - start).total_seconds() * 1_000_000 / max(slots * members, 1)))
    tier_id = Tier.entry_tier().pk
    first_member, first_account = _next_id("members_member"), _next_id("points_account")
    first_entry, first_lot = _next_id("points_entry"), _next_id("points_lot")
    pending_members, due_members = min(pending_members, members), min(due_members, members)
    params = {
        "accounts": members,
        "slots": slots,
        "entries_per_member": entries_per_member,
        "pending_accounts": pending_members if entries_per_member >= 8 else 0,
        "due_accounts": due_members,
        "start": start,
        "now": now,
        "step_us": step_us,
        "partners": ", ".join(partners),
        "cycle": _CYCLE_POINTS,
        "first_entry": first_entry,
        "first_lot": first_lot,
        "first_account": first_account,
    }
    pairs = entries_per_member // 2
    per_k = [len(range(k, pairs, 5)) for k in range(5)]
    final_available = _CYCLE_POINTS * (pairs // 5) + sum(_CYCLE_NET[: pairs % 5])
    has_pending = params["pending_accounts"] > 0
    # %% in the shared CTE is doubled for psycopg; the partner list is inlined (ints or NULL).
    with_cte = _HISTORY_ENTRY_SQL.replace("%(partners)s", params["partners"])

    def step(message: str, began: float) -> None:
        if progress:
            progress(f"{message} in {time.monotonic() - began:.1f} s")

    with connection.cursor() as cursor:
        dropped: list[tuple[str, str]] = []
        if bulk_load:
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for table in ("points_entry", "points_lot", "points_allocation"):
                for name, definition in _secondary_indexes(cursor, table):
                    cursor.execute(f'DROP INDEX "{name}"')
                    dropped.append((name, definition))
        began = time.monotonic()
        cursor.execute(
            """
            INSERT INTO members_member (id, external_id, name, phone, email, marketing_consent,
                language, status, tier_id, growth, referral_code, joined_at, updated_at)
            SELECT %(first)s + i, %(prefix)s || '-' || (%(first)s + i),
                   (ARRAY['王', '李', '张', '刘', '陈', '杨', '黄', '赵', 'Smith ', 'Lee '])
                       [i %% 10 + 1] || 'M' || (%(first)s + i),
                   '139' || lpad((%(first)s + i)::text, 8, '0'),
                   %(prefix)s || (%(first)s + i) || '@example.com',
                   i %% 3 = 0, 'zh-hans',
                   CASE WHEN i %% 97 = 5 THEN 'frozen' WHEN i %% 1009 = 7 THEN 'closed'
                        ELSE 'active' END,
                   %(tier)s, 0, 'H' || (%(first)s + i),
                   %(start)s::timestamptz + i * %(step)s * interval '1 microsecond', %(now)s
              FROM generate_series(0::bigint, %(count)s - 1) AS i
            """,
            {
                "first": first_member,
                "prefix": prefix,
                "tier": tier_id,
                "start": start,
                "now": now,
                "count": members,
                "step": max(1, int((now - start).total_seconds() * 1_000_000 / max(members, 1))),
            },
        )
        cursor.execute(
            """
            INSERT INTO points_account (id, member_id, available, pending, lifetime_earned,
                lifetime_spent, lifetime_expired, credit_limit, updated_at)
            SELECT %(first_account)s + i, %(first_member)s + i,
                   %(available)s - CASE WHEN i < %(pending)s THEN 100 ELSE 0 END,
                   CASE WHEN i < %(pending)s THEN 100 ELSE 0 END,
                   %(earned)s, %(spent)s, %(expired)s, 0, %(now)s
              FROM generate_series(0::bigint, %(count)s - 1) AS i
            """,
            {
                "first_account": first_account,
                "first_member": first_member,
                "available": final_available,
                "pending": params["pending_accounts"] if pairs > 3 and has_pending else 0,
                "earned": 100 * (pairs + per_k[3]),
                "spent": 40 * per_k[0] + 30 * per_k[1],
                "expired": 100 * per_k[2],
                "now": now,
                "count": members,
            },
        )
        step(f"{members:,} members and accounts", began)
        for label, insert in (
            ("entries", _HISTORY_INSERT_ENTRIES),
            ("lots", _HISTORY_INSERT_LOTS),
            ("allocations", _HISTORY_INSERT_ALLOCATIONS),
        ):
            began = time.monotonic()
            cursor.execute(with_cte + insert, params)
            step(f"{cursor.rowcount:,} {label}", began)
        if bulk_load:
            for name, definition in dropped:
                began = time.monotonic()
                cursor.execute(definition)
                step(f"index {name}", began)
            cursor.execute("SET session_replication_role = origin")
    for table in ("members_member", "points_account", "points_entry", "points_lot"):
        _move_sequence(table)
    with connection.cursor() as cursor:
        began = time.monotonic()
        cursor.execute(
            "ANALYZE members_member; ANALYZE points_account; ANALYZE points_entry; "
            "ANALYZE points_lot; ANALYZE points_allocation"
        )
        step("ANALYZE", began)
    lots = members * (pairs + per_k[3])
    return {
        "members": members,
        "entries": total,
        "lots": lots,
        "allocations": members * (per_k[0] + per_k[1] + per_k[2] + per_k[4]),
    }


# Kinds of the B6 history by entry number modulo 20: 12 earn, 3 spend, 2 redeem, 2 expire,
# 1 reverse (a refund taking earned points back).
LEDGER_HISTORY_SQL = """
INSERT INTO points_entry (account_id, kind, amount, available_delta, pending_delta,
                          balance_after, partner_id, reference, memo, reason, source_type,
                          source_id, created_at)
SELECT %(first_account)s + (i * 7919) %% %(accounts)s,
       k.kind, k.sign * p.points, k.sign * p.points, 0, 0,
       CASE WHEN k.kind = 'expire' THEN NULL
            ELSE %(first_partner)s + (i * 31) %% %(partners)s END,
       'bench', '', '', '', '', %(start)s + (i - 1) * %(step)s
  FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS i
 CROSS JOIN LATERAL (SELECT 10 + (i * 37) %% 990 AS points) p
 CROSS JOIN LATERAL (
     SELECT CASE WHEN i %% 20 < 12 THEN 'earn' WHEN i %% 20 < 15 THEN 'spend'
                 WHEN i %% 20 < 17 THEN 'redeem' WHEN i %% 20 < 19 THEN 'expire'
                 ELSE 'reverse' END AS kind,
            CASE WHEN i %% 20 < 12 THEN 1 ELSE -1 END AS sign) k
"""

ORDER_HISTORY_SQL = """
INSERT INTO points_order (partner_id, reference, account_id, amount, currency,
                          paid_with_points, refunded_amount, points_earned, points_reversed,
                          points_written_off, points_lapsed, points_spent, points_returned,
                          created_at, updated_at)
SELECT %(first_partner)s + (i * 31) %% %(partners)s, 'bench-' || i,
       %(first_account)s + (i * 7919) %% %(accounts)s, (20 + (i * 53) %% 2000)::numeric(14, 2),
       'CNY', 0, 0, 0, 0, 0, 0, 0, 0,
       %(start)s + (i - 1) * %(step)s, %(start)s + (i - 1) * %(step)s
  FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS i
"""


def create_rollup_history(
    block: MemberBlock,
    *,
    entries: int,
    days: int,
    partners: int,
    orders: int,
    end: datetime | None = None,
    chunk: int = 1_000_000,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """`entries` ledger entries of every kind over the `days` days before `end`, spread evenly
    in time (ids follow time, as in production), across `partners` new merchants and the
    accounts of `block`, plus `orders` purchase orders over the same days. Written with
    INSERT ... SELECT generate_series in chunks (no Python per row).

    For the health rollup (B6) only: entries carry amounts but no lots, allocations or
    balances, so the ledger invariant does NOT hold on this data (no job but the rollup may
    run on it)."""
    end = end or timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    first_partner = _next_id("points_partner")
    stamp = timezone.now()
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO points_partner (id, name, kind, is_active, created_at)"
            " VALUES (%s, %s, 'merchant', true, %s)",
            [
                (first_partner + n, f"Bench merchant {first_partner + n}", stamp)
                for n in range(partners)
            ],
        )
    _move_sequence("points_partner")
    params = {
        "first_account": block.first_account_id,
        "accounts": block.count,
        "first_partner": first_partner,
        "partners": partners,
        "start": start,
    }
    work = [(LEDGER_HISTORY_SQL, entries, "entries"), (ORDER_HISTORY_SQL, orders, "orders")]
    for sql, total, label in work:
        step = (end - start) / max(total, 1)
        for low in range(1, total + 1, chunk):
            high = min(low + chunk - 1, total)
            with transaction.atomic(), connection.cursor() as cursor:
                # The rows reference accounts and merchants that exist by construction: skip
                # the per-row foreign key triggers (superuser, bench databases only).
                cursor.execute("SET LOCAL session_replication_role = replica")
                cursor.execute(sql, {**params, "step": step, "low": low, "high": high})
            if progress:
                progress(f"{high:,} / {total:,} {label}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE points_entry; ANALYZE points_order")
    return {"entries": entries, "orders": orders, "partners": partners, "days": days}
