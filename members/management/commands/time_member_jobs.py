"""`manage.py time_member_jobs --members 100000 --yes`: time evaluate_tiers and compute_segments
over generated members (a throwaway database only: it ADDS that many members).

Members and accounts come from loyalty_site.bulk_data.create_members; purchases (points.Order)
and their growth entries are written here with COPY, spread over the last two years; a quarter
of the members hold a higher tier whose period has ended, so the run moves members both ways.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from loyalty_site.bulk_data import create_members
from members.models import Tier
from members.services import compute_segments, evaluate_tiers
from points.models import Partner

TIERS = [("silver", "银卡", "Silver", 1000), ("gold", "金卡", "Gold", 3000)]
TIERS += [("diamond", "钻石卡", "Diamond", 6000)]


def _copy(table: str, columns: list[str], lines) -> int:
    count = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        block = []
        for line in lines:
            block.append(line)
            if len(block) >= 20_000:
                copy.write("".join(block))
                count += len(block)
                block.clear()
        copy.write("".join(block))
        count += len(block)
    return count


class Command(BaseCommand):
    help = "Generate members with purchases and time evaluate_tiers and compute_segments."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=100_000)
        parser.add_argument("--orders-per-member", type=int, default=5)
        parser.add_argument("--seed", type=int, default=5)
        parser.add_argument("--yes", action="store_true", help="I know this adds rows.")

    def handle(self, *args, members, orders_per_member, seed, yes, **options):
        if not yes:
            raise CommandError("This adds bulk rows to the database: pass --yes (throwaway only).")
        rng = random.Random(seed)
        now = timezone.now()
        for rank, (code, name, name_en, threshold) in enumerate(TIERS, start=1):
            Tier.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "name_en": name_en,
                    "rank": 100 + rank,
                    "growth_threshold": threshold,
                },
            )
        partner, _created = Partner.objects.get_or_create(name="time-member-jobs")
        started = time.monotonic()
        block = create_members(members, prefix=f"tmj{seed}", now=now, seed=seed)
        orders = self._orders(block, orders_per_member, partner.pk, now, rng)
        higher = list(Tier.objects.order_by("rank").values_list("id", flat=True))[1:]
        with connection.cursor() as cursor:
            # A quarter hold a higher tier whose period ended yesterday: candidates to move down.
            cursor.execute(
                """
                UPDATE members_member
                   SET tier_id = (%(tiers)s::bigint[])[1 + (id %% array_length(%(tiers)s, 1))],
                       tier_since = %(since)s, tier_period_ends_at = %(ended)s
                 WHERE id BETWEEN %(first)s AND %(last)s AND id %% 4 = 0
                """,
                {
                    "tiers": higher,
                    "since": now - timedelta(days=366),
                    "ended": now - timedelta(days=1),
                    "first": block.first_member_id,
                    "last": block.first_member_id + block.count - 1,
                },
            )
            cursor.execute(
                "ANALYZE members_member; ANALYZE members_growthentry; ANALYZE points_order"
            )
        self.stdout.write(
            f"generated {members:,} members, {orders:,} orders and growth entries "
            f"in {time.monotonic() - started:.1f} s"
        )

        started = time.monotonic()
        tiers_run = evaluate_tiers(as_of=now)
        tier_seconds = time.monotonic() - started
        self.stdout.write(
            f"evaluate_tiers: {tier_seconds:.1f} s ({tiers_run.members:,} members, "
            f"{tiers_run.upgraded:,} up, {tiers_run.downgraded:,} down, "
            f"{tiers_run.updated:,} updated, {tiers_run.chunks} chunks)"
        )
        started = time.monotonic()
        again = evaluate_tiers(as_of=now)
        self.stdout.write(
            f"evaluate_tiers again (idempotent): {time.monotonic() - started:.1f} s "
            f"({again.upgraded + again.downgraded + again.updated} changes)"
        )
        started = time.monotonic()
        segments_run = compute_segments(as_of=now)
        segment_seconds = time.monotonic() - started
        self.stdout.write(
            f"compute_segments: {segment_seconds:.1f} s ({segments_run.members_scored:,} "
            f"members scored, {segments_run.memberships:,} memberships)"
        )

    def _orders(self, block, per_member, partner_id, now, rng) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM points_order")
            first_order = cursor.fetchone()[0]
        plan = []  # (order id, account id, member id, amount, created_at)
        order_id = first_order
        for index in range(block.count):
            for _ in range(rng.randint(0, 2 * per_member)):
                created = now - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
                amount = rng.randrange(100, 200_000) / 100
                plan.append(
                    (
                        order_id,
                        block.first_account_id + index,
                        block.first_member_id + index,
                        amount,
                        created.isoformat(),
                    )
                )
                order_id += 1
        _copy(
            "points_order",
            [
                "id",
                "partner_id",
                "reference",
                "account_id",
                "amount",
                "currency",
                "paid_with_points",
                "refunded_amount",
                "points_earned",
                "points_reversed",
                "points_written_off",
                "points_lapsed",
                "points_spent",
                "points_returned",
                "created_at",
                "updated_at",
            ],
            (
                f"{oid}\t{partner_id}\ttmj-{oid}\t{account}\t{amount:.2f}\tCNY\t0\t0\t0\t0\t0\t0"
                f"\t0\t0\t{created}\t{created}\n"
                for oid, account, _member, amount, created in plan
            ),
        )
        _copy(
            "members_growthentry",
            [
                "member_id",
                "kind",
                "amount",
                "reference",
                "source_type",
                "source_id",
                "memo",
                "counts_at",
                "created_at",
            ],
            (
                f"{member}\tpurchase\t{int(amount)}\ttmj-{oid}\torder\t{oid}\t\t{created}"
                f"\t{created}\n"
                for oid, _account, member, amount, created in plan
                if int(amount) > 0
            ),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('points_order', 'id'), "
                "(SELECT max(id) FROM points_order))"
            )
        return len(plan)
