"""EXPLAIN ANALYZE one chunk of the pending release and of the expiry at several chunk sizes.

    python -m loyalty_site.embedded --throwaway -- python -m bench.explain_jobs \
        [--members 100000] [--due 20000] [--batches 2000 20000] [--sql-from FILE] [--plans DIR]

Generates a ledger history (loyalty_site.bulk_data.create_ledger_history: `--due` members with
one pending lot due for release, and as many with their lots past expiry), then runs each job's
chunk statement under EXPLAIN (ANALYZE, BUFFERS) once per chunk size, each inside a transaction
that is rolled back, so every size works on the same data. A job whose cost grows with the
chunk (not its square) takes about ten times as long for ten times the lots (docs/scaling.md).
`--sql-from` reads `_RELEASE_SQL` / `_EXPIRE_SQL` from another copy of points/services.py
(e.g. `git show main:points/services.py > /tmp/old.py`) to compare before and after.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import time
from pathlib import Path


def _statements(path: str | None) -> dict[str, str]:
    if path is None:
        from points import services

        return {"release": services._RELEASE_SQL, "expire": services._EXPIRE_SQL}
    tree = ast.parse(Path(path).read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("_RELEASE_SQL", "_EXPIRE_SQL"):
                found["release" if name == "_RELEASE_SQL" else "expire"] = ast.literal_eval(
                    node.value
                )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--jobs", nargs="+", default=["release", "expire"])
    parser.add_argument("--sql-from", help="a copy of points/services.py to take the SQL from")
    parser.add_argument("--plans", help="folder to write each full plan to")
    parser.add_argument("--skip-data", action="store_true", help="reuse the data already there")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from loyalty_site.bulk_data import create_ledger_history

    call_command("migrate", verbosity=0)
    if not args.skip_data:
        counts = create_ledger_history(
            members=args.members,
            pending_members=args.due,
            due_members=args.due,
            prefix="explain",
            bulk_load=True,
            progress=print,
        )
        print(f"data: {counts}", flush=True)
    statements = _statements(args.sql_from)
    as_of = timezone.now()
    plans = Path(args.plans) if args.plans else None
    if plans:
        plans.mkdir(parents=True, exist_ok=True)
    for job in args.jobs:
        sql = statements[job].format(skip_locked="SKIP LOCKED")
        for batch in args.batches:
            params = {
                "as_of": as_of,
                "as_of_text": as_of.isoformat(),
                "after_at": "-infinity",
                "after_id": 0,
                "batch": batch,
            }
            # A first run, rolled back too, warms the cache and counts what the chunk does.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                picked, locked, lots, points, _at, _id = cursor.fetchone()
                transaction.set_rollback(True)
            began = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                transaction.set_rollback(True)
            wall = time.perf_counter() - began
            executed = re.search(r"Execution Time: ([\d.]+) ms", plan)
            ms = float(executed.group(1)) if executed else float("nan")
            print(
                f"{job}: chunk of {batch:,} due lots ({picked:,} accounts picked,"
                f" {locked:,} locked, {lots:,} lots changed, {points:,} points):"
                f" {ms:,.0f} ms (wall {wall:.1f} s)",
                flush=True,
            )
            if plans:
                (plans / f"{job}-{batch}.txt").write_text(plan + "\n")


if __name__ == "__main__":
    main()
