"""B6: programme health: the daily rollup over 10,000,000 entries (full scale), then the
admin dashboard page.

Data (loyalty_site.bulk_data.create_rollup_history): entries of every kind spread evenly over
365 days (120 at small scale) across many merchants and members, purchase orders over the same
days, a year of segment sizes. The first `compute_health_metrics` run rolls up the whole
history (the worst case: a programme switching the feature on); the nightly run after it
reads one day. The dashboard is then requested by a superuser through Django's test client in
this process (warm: the first request is not counted).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import timedelta

from bench.common import emit, log, setup
from bench.harness import Row, run_measured

DASHBOARD_REQUESTS = 10


def main() -> None:
    sizes = setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from campaigns.models import DailyMerchantRollup, DailyProgrammeRollup
    from loyalty_site.bulk_data import create_members, create_rollup_history

    started = time.monotonic()
    block = create_members(sizes["b6_members"], prefix="b6", progress=log)
    history = create_rollup_history(
        block,
        entries=sizes["b6_entries"],
        days=sizes["b6_days"],
        partners=sizes["b6_partners"],
        orders=sizes["b6_orders"],
        progress=log,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO members_segmentsize (segment_id, as_of, members)"
            " SELECT s.id, d::date, 1000 + s.id * 100 + extract(doy FROM d)::int"
            "   FROM members_segment s, generate_series(now() - %s * interval '1 day', now(),"
            "        interval '1 day') d",
            [sizes["b6_days"]],
        )
    log(
        f"B6 data: {history['entries']:,} entries, {history['orders']:,} orders over "
        f"{history['days']} days, {history['partners']} merchants, {block.count:,} members "
        f"in {time.monotonic() - started:.0f} s"
    )
    size = (
        f"{history['entries']:,} entries, {history['days']} days, {history['partners']} merchants"
    )
    now = timezone.now()
    connection.close()

    rollup_seconds, peak_mb, output = run_measured(
        [sys.executable, "manage.py", "compute_health_metrics", "--as-of", now.isoformat()]
    )
    log(output.strip().splitlines()[-1] if output.strip() else "(no output)")
    days = DailyProgrammeRollup.objects.count()
    merchant_rows = DailyMerchantRollup.objects.count()
    log(
        f"B6 rollup: {rollup_seconds:.1f} s, peak {peak_mb:.0f} MB, {days} days, "
        f"{merchant_rows} merchant rows"
    )
    emit(
        Row(
            bench="B6",
            what="compute_health_metrics, whole history (process wall time)",
            value=rollup_seconds,
            unit="s",
            target="< 60 s",
            ok=rollup_seconds < 60,
            size=size,
            extra={"days": days, "merchant_rows": merchant_rows, "peak_mb": round(peak_mb)},
        )
    )

    yesterday = (now.astimezone(timezone.get_current_timezone()) - timedelta(days=1)).date()
    nightly_seconds, _peak, _output = run_measured(
        [
            sys.executable,
            "manage.py",
            "compute_health_metrics",
            "--as-of",
            now.isoformat(),
            "--day",
            yesterday.isoformat(),
        ]
    )
    emit(
        Row(
            bench="B6",
            what="compute_health_metrics, one day (nightly)",
            value=nightly_seconds,
            unit="s",
            size=size,
        )
    )

    # The manifest storage needs `collectstatic`; the page's cost is what is measured.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    user = get_user_model().objects.create_superuser("b6-admin", "b6@example.com", "b6-password")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = reverse("admin:campaigns_healthdashboard_changelist")
    warm = client.get(url, {"days": 365})
    if warm.status_code != 200:
        raise RuntimeError(f"dashboard answered {warm.status_code}")
    timings = []
    for _ in range(DASHBOARD_REQUESTS):
        began = time.perf_counter()
        response = client.get(url, {"days": 365})
        timings.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    median = statistics.median(timings)
    log(f"B6 dashboard: median {median:.0f} ms, max {max(timings):.0f} ms")
    emit(
        Row(
            bench="B6",
            what="health dashboard page, 365 days (median, warm)",
            value=median,
            unit="ms",
            target="< 300 ms",
            ok=median < 300,
            size=size,
            extra={"max_ms": round(max(timings), 1), "requests": DASHBOARD_REQUESTS},
        )
    )


if __name__ == "__main__":
    main()
