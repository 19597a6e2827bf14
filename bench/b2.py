"""B2: earn over HTTP. `POST /api/v1/events` with a unique Idempotency-Key each, 16 concurrent
clients, against gunicorn (the production web server), on the same machine.

Baseline: B1's baseline (pgbench of the earn's SQL statements, 8 clients), measured again here
so that the ratio compares two figures taken minutes apart on the same machine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

from bench.b1 import BASELINE_SCRIPT, WORKERS
from bench.common import create_rulebook, emit, log, setup
from bench.harness import Row, http_load, run_pgbench
from loyalty_site.embedded import free_port

CLIENTS = 16
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "4"))


def purchase_request(key: str, first_member: int, members: int, run: str, process, thread, seq):
    number = first_member + (process * 7919 + thread * 104729 + seq * 31) % members
    reference = f"{run}-{process}-{thread}-{seq}"
    body = json.dumps(
        {
            "type": "purchase",
            "member": f"b2-{number}",
            "reference": reference,
            "amount": "128.50",
            "currency": "CNY",
            "channel": "pos",
            "store": "store-12",
            "items": [{"sku": "A1", "category": "drinks", "quantity": 2, "amount": "128.50"}],
        }
    )
    headers = {
        "Authorization": f"Api-Key {key}",
        "Content-Type": "application/json",
        "Idempotency-Key": reference,
    }
    return "POST", "/api/v1/events", headers, body


def start_gunicorn(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "loyalty_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(GUNICORN_WORKERS),
            "--log-level",
            "warning",
        ],
        env=dict(os.environ),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def main() -> None:
    sizes = setup()
    from django.conf import settings
    from django.db import connection

    from loyalty_site.api.keys import create_partner_key
    from loyalty_site.bulk_data import create_members

    block = create_members(sizes["b2_members"], prefix="b2", progress=log)
    create_rulebook()
    _api_key, key = create_partner_key(partner_name="Bench POS", scopes=["events:write"])
    db = settings.DATABASES["default"]
    seconds = sizes["b2_seconds"]
    connection.close()

    baseline = run_pgbench(
        BASELINE_SCRIPT,
        db=db,
        clients=WORKERS,
        seconds=seconds,
        defines={"first": block.first_account_id, "last": block.first_account_id + block.count - 1},
    )
    log(f"B2 baseline pgbench: {baseline:,.0f} tps")

    port = free_port()
    os.environ["API_RATE_LIMIT"] = "10000000/min"
    server = start_gunicorn(port)
    try:
        factory = functools.partial(
            purchase_request, key, block.first_member_id, block.count, uuid.uuid4().hex[:8]
        )
        # Warm-up: every gunicorn worker imports its views and opens its connection.
        http_load(host="127.0.0.1", port=port, requests_factory=factory, clients=CLIENTS, seconds=2)
        factory = functools.partial(
            purchase_request, key, block.first_member_id, block.count, uuid.uuid4().hex[:8]
        )
        result = http_load(
            host="127.0.0.1",
            port=port,
            requests_factory=factory,
            clients=CLIENTS,
            seconds=seconds,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)

    created = result.statuses.get(201, 0)
    log(
        f"B2: {result.requests:,} requests in {result.seconds:.1f} s, statuses {result.statuses},"
        f" errors {result.errors}, p50 {result.median_ms:.1f} ms,"
        f" p99 {result.percentile(99):.1f} ms"
    )
    rps = created / result.seconds
    ratio = rps / baseline
    p99 = result.percentile(99)
    emit(
        Row(
            bench="B2",
            what="POST /api/v1/events over HTTP, 16 clients",
            value=rps,
            unit="earns/s",
            baseline=baseline,
            ratio=ratio,
            target=">= 0.20",
            ok=ratio >= 0.2 and created == result.requests,
            size=f"{block.count:,} members, {seconds} s, gunicorn x{GUNICORN_WORKERS}",
            extra={"statuses": result.statuses, "errors": result.errors},
        )
    )
    emit(
        Row(
            bench="B2",
            what="p99 latency",
            value=p99,
            unit="ms",
            target="< 100 ms",
            ok=p99 < 100,
            size=f"p50 {result.median_ms:.1f} ms",
        )
    )


if __name__ == "__main__":
    main()
