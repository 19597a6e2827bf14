"""B1: ledger earn throughput through the points service, 8 concurrent workers.

Baseline: pgbench at the same concurrency running the earn as separate SQL statements (lock the
account, insert the entry, insert the lot, update the account, insert the outbox event: the
writes the service makes). For information, pgbench also runs the service's own single
statement, which shows what Python and Django cost on top of the database.
"""

from __future__ import annotations

import random
import time
from multiprocessing import get_context

from bench.common import create_rulebook, emit, log, setup
from bench.harness import Row, run_pgbench

WORKERS = 8
POINTS = 10

BASELINE_SCRIPT = """
\\set aid random(:first, :last)
BEGIN;
SELECT id FROM points_account WHERE id = :aid FOR UPDATE;
INSERT INTO points_entry (account_id, kind, amount, available_delta, pending_delta,
    balance_after, reference, memo, reason, source_type, source_id, expires_at, created_at)
  VALUES (:aid, 'earn', 10, 10, 0, 0, '', '', '', '', '', now() + interval '1 year', now());
INSERT INTO points_lot (account_id, earn_entry_id, amount, remaining, state, expires_at,
    created_at)
  VALUES (:aid, currval('points_entry_id_seq'), 10, 10, 'active', now() + interval '1 year',
    now());
UPDATE points_account SET available = available + 10, lifetime_earned = lifetime_earned + 10,
    updated_at = now() WHERE id = :aid;
INSERT INTO points_outboxevent (type, account_id, member_external_id, payload, created_at)
  VALUES ('points.earned', :aid, '', '{}', now());
END;
"""


def _worker(member_ids, seconds, seed, ready, results) -> None:
    import django
    from django.db import connection

    django.setup()
    from members.models import Member
    from points.models import Partner
    from points.services import earn

    partner = Partner.objects.get(name="Bench POS")
    members = list(Member.objects.select_related("tier").filter(id__in=member_ids))
    earn(member=members[0], points=POINTS, partner=partner, reference="b1-warm-up")
    rng = random.Random(seed)
    done = 0
    # Every worker is set up (Django imported, connection open) before any starts timing.
    ready.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        earn(member=rng.choice(members), points=POINTS, partner=partner, reference="b1")
        done += 1
    connection.close()
    results.put(done)


def main() -> None:
    sizes = setup()
    from django.conf import settings
    from django.db import connection

    from loyalty_site.bulk_data import create_members
    from points.models import Partner

    Partner.objects.get_or_create(name="Bench POS")
    block = create_members(sizes["b1_members"], prefix="b1", progress=log)
    create_rulebook()
    db = settings.DATABASES["default"]
    seconds = sizes["b1_seconds"]
    first, last = block.first_account_id, block.first_account_id + block.count - 1
    connection.close()

    baseline = run_pgbench(
        BASELINE_SCRIPT,
        db=db,
        clients=WORKERS,
        seconds=seconds,
        defines={"first": first, "last": last},
    )
    log(f"B1 baseline pgbench (separate statements): {baseline:,.0f} tps")

    member_ids = list(range(block.first_member_id, block.first_member_id + block.count))
    context = get_context("spawn")
    ready = context.Barrier(WORKERS + 1)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(member_ids, seconds, index, ready, results))
        for index in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    ready.wait(timeout=300)
    counts = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    service_tps = sum(counts) / seconds
    log(f"B1 service: {sum(counts):,} earns in {seconds} s by {WORKERS} workers")

    ratio = service_tps / baseline
    emit(
        Row(
            bench="B1",
            what="earn via points service, 8 workers",
            value=service_tps,
            unit="earns/s",
            baseline=baseline,
            ratio=ratio,
            target=">= 0.50",
            ok=ratio >= 0.5,
            size=f"{block.count:,} accounts, {seconds} s",
        )
    )


if __name__ == "__main__":
    main()
