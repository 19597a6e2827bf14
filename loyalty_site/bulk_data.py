"""Bulk data for benchmarks and scale tests, written with COPY (never row by row).

Rows are formatted in Python in large text blocks and streamed with psycopg's COPY, which
writes about a million rows in a few seconds on a small machine. Ids are assigned here so that
lots can point at their earning entries without a round trip; sequences are moved past them.
"""

from __future__ import annotations

import random
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


def create_ledger_history(
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
