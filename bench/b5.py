"""B5: the admin at scale. Member, ledger entry and lot change lists over 1,000,000 members and
10,000,000 entries (full scale; 10,000 members and 100,000 entries at the small scale).

The history is generated in SQL (loyalty_site.bulk_data.create_ledger_history: consistent
balances, lots and allocations, ids following time). Each page is requested by a logged-in
superuser through Django's test client in this process, warmed up, then timed REPEAT times:
median and p95 per page, with its number of queries. Target (perf.md): each page < 500 ms warm
(the median; p95 reported), query count independent of table size (tests/admin_scale).

Then, for docs/scaling.md, what the jobs cost on this ledger: `check_ledger` (reads everything),
`release_pending_points` and `expire_points` (a fixed amount of due work at every size), each as
`manage.py` in a process of its own. `BENCH_B5_MEMBERS` overrides the number of members (10
entries each), e.g. 100000 for the 1,000,000-entry point of the table.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from bench.common import emit, log, setup
from bench.harness import Row, run_measured

# Timed requests per page after the warm-up ones; fewer at the small scale (CI's 3 minutes).
REPEAT = {"small": 5, "full": 9}
WARMUP = {"small": 1, "full": 2}
ENTRIES_PER_MEMBER = 10
# Due work for the jobs, the same at every size: O(rows touched), not O(all rows).
DUE_MEMBERS = {"small": 1_000, "full": 10_000}
PENDING_MEMBERS = {"small": 1_000, "full": 10_000}
SIZES = {"small": 10_000, "full": 1_000_000}
TARGET_MS = 500


def _date_choice(field: str, label: str) -> str:
    """The query string of a DateFieldListFilter choice, computed as Django does (local
    midnights); the test client gives no response context outside the test runner."""
    from datetime import timedelta
    from urllib.parse import urlencode

    from django.utils import timezone

    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    if label == "Past 7 days":
        since, until = today - timedelta(days=7), tomorrow
    elif label == "This month":
        since = today.replace(day=1)
        until = (since + timedelta(days=32)).replace(day=1)
    else:  # "This year"
        since = today.replace(month=1, day=1)
        until = since.replace(year=since.year + 1)
    return "?" + urlencode({f"{field}__gte": str(since), f"{field}__lt": str(until)})


def admin_pages(partners) -> dict[str, str]:
    from django.urls import reverse

    from members.models import Member, Tier
    from points.models import Entry

    members = reverse("admin:members_member_changelist")
    entries = reverse("admin:points_entry_changelist")
    lots = reverse("admin:points_lot_changelist")
    member = Member.objects.order_by("-id").first()
    reference = Entry.objects.filter(kind="spend").order_by("-id").first().reference
    return {
        "members": members,
        "members, page 50": f"{members}?p=50",
        "members frozen": f"{members}?status__exact=frozen",
        "members of the entry tier": f"{members}?tier__id__exact={Tier.entry_tier().pk}",
        "members consenting": f"{members}?marketing_consent__exact=1",
        "members joined past 7 days": members + _date_choice("joined_at", "Past 7 days"),
        "members search external id": f"{members}?q={member.external_id}",
        "members search phone": f"{members}?q={member.phone}",
        "members search name prefix": f"{members}?q={member.name[:4]}",
        "entries": entries,
        "entries, page 100": f"{entries}?p=100",
        "entries kind=expire": f"{entries}?kind__exact=expire",
        "entries kind=transfer (none)": f"{entries}?kind__exact=transfer",
        "entries of a merchant": f"{entries}?partner__id__exact={partners[1].pk}",
        "entries past 7 days": entries + _date_choice("created_at", "Past 7 days"),
        "entries this year": entries + _date_choice("created_at", "This year"),
        "entries search member": f"{entries}?q={member.external_id}",
        "entries search reference": f"{entries}?q={reference}",
        "lots": lots,
        "lots expired": f"{lots}?state__exact=expired",
        "lots pending": f"{lots}?state__exact=pending",
        "lots of a merchant": f"{lots}?partner__id__exact={partners[2].pk}",
        "lots expiring this month": lots + _date_choice("expires_at", "This month"),
        "lots search member": f"{lots}?q={member.external_id}",
    }


def explain_slowest(sql: str) -> str:
    """The plan's first lines and execution time of one captured query (EXPLAIN ANALYZE)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql)
        lines = [row[0] for row in cursor.fetchall()]
    nodes = [line.strip() for line in lines if "->" in line or line is lines[0]][:4]
    total = next((line for line in lines if line.startswith("Execution Time")), "")
    return f"{total}: " + " | ".join(nodes)


def time_pages(client, pages: dict[str, str], size: str, scale: str, explain: bool) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for name, url in pages.items():
        for _ in range(WARMUP[scale]):
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {url} answered {response.status_code}")
        timings = []
        for _ in range(REPEAT[scale]):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        median = statistics.median(timings)
        p95 = sorted(timings)[max(0, round(0.95 * len(timings)) - 1)]
        queries = len(captured)
        log(f"B5 {name}: median {median:.0f} ms, p95 {p95:.0f} ms, {queries} queries ({url})")
        if explain:
            slowest = max(
                (q for q in captured if q["sql"].lstrip().upper().startswith("SELECT")),
                key=lambda q: float(q["time"]),
            )
            log(
                f"    slowest query {float(slowest['time']) * 1000:.1f} ms; plan: "
                + explain_slowest(slowest["sql"])
            )
        emit(
            Row(
                bench="B5",
                what=f"admin {name} (p95 {p95:.0f} ms, {queries} queries)",
                value=median,
                unit="ms",
                target=f"< {TARGET_MS} ms",
                ok=median < TARGET_MS,
                size=size,
                extra={"p95_ms": p95, "queries": queries, "url": url},
            )
        )


def time_jobs(size: str) -> None:
    from django.utils import timezone

    env = dict(os.environ)
    as_of = timezone.now().isoformat()
    for what, command in (
        ("check_ledger", ["check_ledger"]),
        ("release_pending_points", ["release_pending_points", "--as-of", as_of]),
        ("expire_points", ["expire_points", "--as-of", as_of]),
    ):
        seconds, peak_mb, output = run_measured([sys.executable, "manage.py", *command], env=env)
        last = output.strip().splitlines()[-1] if output.strip() else ""
        log(f"B5 job {what}: {seconds:.1f} s, peak {peak_mb:.0f} MB: {last[:160]}")
        emit(
            Row(
                bench="B5",
                what=f"job {what} (process wall time)",
                value=seconds,
                unit="s",
                size=size,
                extra={"peak_mb": peak_mb, "output": last[:300]},
            )
        )


def main() -> None:
    sizes = setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from loyalty_site.bulk_data import create_ledger_history
    from points.models import Partner

    scale = sizes["scale"]
    members = int(os.environ.get("BENCH_B5_MEMBERS") or SIZES[scale])
    # The test client's host, and static files without a collectstatic manifest.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    partners = [Partner.objects.get_or_create(name=f"B5 merchant {n}")[0] for n in (1, 2, 3)]
    started = time.monotonic()
    counts = create_ledger_history(
        members=members,
        entries_per_member=ENTRIES_PER_MEMBER,
        pending_members=PENDING_MEMBERS[scale],
        due_members=DUE_MEMBERS[scale],
        partner_ids=[p.pk for p in partners],
        prefix="b5",
        bulk_load=True,
        progress=lambda message: log(f"B5 data: {message}"),
    )
    generated = time.monotonic() - started
    log(f"B5 data: {counts} in {generated:.0f} s")
    size = f"{counts['members']:,} members, {counts['entries']:,} entries, {counts['lots']:,} lots"
    emit(
        Row(
            bench="B5",
            what="generate the history (SQL, indexes rebuilt, ANALYZE)",
            value=generated,
            unit="s",
            size=size,
            extra=counts,
        )
    )

    user = get_user_model().objects.create_superuser("b5-admin", "b5@example.com", "b5-pass")
    client = Client()
    client.force_login(user)
    explain = bool(os.environ.get("BENCH_EXPLAIN"))
    time_pages(client, admin_pages(partners), size, scale, explain=explain)
    time_jobs(size)


if __name__ == "__main__":
    main()
