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

from django.db import connection
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
