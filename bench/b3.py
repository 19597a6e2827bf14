"""B3: the nightly expiry job over 1,000,000 expired lots in 100,000 accounts (full scale).

Baseline: one hand-written set-based SQL transaction making the same writes (one expire entry
and one outbox event per account, one allocation per lot, lots emptied, balances lowered) on
an identical copy of the data. The job runs as `manage.py expire_points` in a process of its
own, whose peak resident memory is read from the kernel.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

import psycopg

from bench.common import emit, log, setup
from bench.harness import Row, run_measured

BASELINE_DUE_SQL = """
CREATE TEMP TABLE due ON COMMIT DROP AS
    SELECT id, account_id, remaining FROM points_lot
     WHERE state = 'active' AND remaining > 0 AND expires_at <= %(as_of)s
"""

BASELINE_SQL = """
WITH per_account AS (
    SELECT account_id, sum(remaining) AS points FROM due GROUP BY account_id
), acc AS (
    UPDATE points_account a
       SET available = a.available - p.points,
           lifetime_expired = a.lifetime_expired + p.points,
           updated_at = now()
      FROM per_account p
     WHERE a.id = p.account_id
 RETURNING a.id, a.available, p.points
), ent AS (
    INSERT INTO points_entry (account_id, kind, amount, available_delta, pending_delta,
                              balance_after, reference, memo, reason, source_type, source_id,
                              created_at)
    SELECT id, 'expire', -points, -points, 0, available, '', '', '', '', '', now() FROM acc
 RETURNING id, account_id
), alloc AS (
    INSERT INTO points_allocation (entry_id, lot_id, points)
    SELECT ent.id, due.id, -due.remaining FROM due JOIN ent USING (account_id)
), lots AS (
    UPDATE points_lot l SET remaining = 0, state = 'expired' FROM due WHERE l.id = due.id
)
INSERT INTO points_outboxevent (type, account_id, member_external_id, payload, created_at)
SELECT 'points.expired', account_id, '', '{}', now() FROM ent;
"""


def _connect(db: dict, name: str) -> psycopg.Connection:
    return psycopg.connect(
        host=db.get("HOST") or "localhost",
        port=db.get("PORT") or None,
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname=name,
    )


def _expired_totals(conn: psycopg.Connection) -> tuple[int, int, int]:
    return conn.execute(
        "SELECT (SELECT sum(lifetime_expired) FROM points_account),"
        " (SELECT count(*) FROM points_lot WHERE state = 'expired'),"
        " (SELECT coalesce(sum(available), 0) FROM points_account)"
    ).fetchone()


def main() -> None:
    sizes = setup()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from loyalty_site.bulk_data import create_earned_lots, create_members

    now = timezone.now()
    accounts = sizes["b3_accounts"]
    per_account = sizes["b3_lots_per_account"]
    started = time.monotonic()
    block = create_members(accounts, prefix="b3", progress=log)
    lots = create_earned_lots(
        block,
        lots_per_account=per_account,
        expires_between=(now - timedelta(days=60), now - timedelta(days=1)),
        progress=log,
    )
    log(f"B3 data: {lots:,} lots in {accounts:,} accounts in {time.monotonic() - started:.0f} s")
    db = dict(settings.DATABASES["default"])
    name = db["NAME"]
    copy_name = f"{name}_baseline"
    connection.close()

    with _connect(db, "postgres") as admin:
        admin.autocommit = True
        admin.execute(f'DROP DATABASE IF EXISTS "{copy_name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{copy_name}" TEMPLATE "{name}"')
    try:
        with _connect(db, copy_name) as conn:
            began = time.perf_counter()
            with conn.transaction():
                conn.execute(BASELINE_DUE_SQL, {"as_of": now})
                conn.execute(BASELINE_SQL)
            baseline_seconds = time.perf_counter() - began
            baseline_totals = _expired_totals(conn)
        log(f"B3 baseline SQL: {baseline_seconds:.1f} s, totals {baseline_totals}")

        env = dict(os.environ)
        job_seconds, peak_mb, output = run_measured(
            [sys.executable, "manage.py", "expire_points", "--as-of", now.isoformat()], env=env
        )
        log(output.strip().splitlines()[-1] if output.strip() else "(no output)")
        with _connect(db, name) as conn:
            job_totals = _expired_totals(conn)
        log(f"B3 job: {job_seconds:.1f} s, peak {peak_mb:.0f} MB, totals {job_totals}")
        check_seconds, _peak, check_output = run_measured(
            [sys.executable, "manage.py", "check_ledger"], env=env
        )
        log(f"check_ledger after the job ({check_seconds:.1f} s): {check_output.strip()[-200:]}")
    finally:
        with _connect(db, "postgres") as admin:
            admin.autocommit = True
            admin.execute(f'DROP DATABASE IF EXISTS "{copy_name}" WITH (FORCE)')

    same = job_totals == baseline_totals
    ratio = job_seconds / baseline_seconds
    size = f"{lots:,} lots, {accounts:,} accounts"
    emit(
        Row(
            bench="B3",
            what="expire_points (process wall time)",
            value=job_seconds,
            unit="s",
            baseline=baseline_seconds,
            ratio=ratio,
            target="<= 3.00",
            ok=ratio <= 3 and same,
            size=size,
            extra={"job_totals": job_totals, "baseline_totals": baseline_totals},
        )
    )
    emit(
        Row(
            bench="B3",
            what="expire_points peak memory",
            value=peak_mb,
            unit="MB",
            target="< 300 MB",
            ok=peak_mb < 300,
            size=size,
        )
    )


if __name__ == "__main__":
    main()
