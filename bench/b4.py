"""B4: flash redemption. Every member of a block presses "redeem" on one hot reward at once:
`POST /api/v1/redemptions` over HTTP against gunicorn, one request per member (a unique
Idempotency-Key each), all released together; the reward has far less stock than members.

Target (perf.md): exactly `stock` redemptions placed, every other request 422 `out_of_stock`,
stock left 0, the ledger invariant holds. Reported: redemption requests answered per second.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import timedelta

from bench.b2 import start_gunicorn
from bench.common import emit, log, setup
from bench.harness import Row
from loyalty_site.embedded import free_port

CLIENTS = 100
POINTS_EACH = 1000
PRICE = 500
ADDRESS = {"recipient": "Bench", "phone": "13800000000", "address": "1 Bench Road", "city": "SH"}


def redemption_request(key: str, external_id: str, run: str) -> tuple[str, dict, str]:
    body = json.dumps(
        {"member": external_id, "reward": "flash", "quantity": 1, "shipping_address": ADDRESS}
    )
    headers = {
        "Authorization": f"Api-Key {key}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"{run}-{external_id}",
    }
    return "/api/v1/redemptions", headers, body


def fire_at_once(port: int, requests: list[tuple[str, dict, str]], clients: int):
    """Send every request once from `clients` threads released together; returns
    (outcomes as (status, code), latencies in ms, elapsed seconds)."""
    shares = [requests[index::clients] for index in range(clients)]
    lock = threading.Lock()
    outcomes: list[tuple[int, str]] = []
    latencies: list[float] = []

    def client(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, times = [], []
        barrier.wait()
        for path, headers, body in share:
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                mine.append((0, type(error).__name__))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            times.append((time.perf_counter() - started) * 1000)
            code = ""
            if response.status >= 400:
                code = json.loads(payload or b"{}").get("code", "")
            mine.append((response.status, code))
        connection.close()
        with lock:
            outcomes.extend(mine)
            latencies.extend(times)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares if share]
    barrier = threading.Barrier(len(threads) + 1)
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return outcomes, latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def warm_up(port: int, key: str) -> None:
    """Each gunicorn worker imports its views and opens its database connection first."""
    for _ in range(16):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/v1/rewards", headers={"Authorization": f"Api-Key {key}"})
        connection.getresponse().read()
        connection.close()


def main() -> None:
    sizes = setup()
    from django.db import connection
    from django.utils import timezone

    from loyalty_site.api.keys import create_partner_key
    from loyalty_site.bulk_data import create_earned_lots, create_members
    from points.services import check_ledger_invariants
    from rewards_mall.models import Redemption, Reward

    members, stock = sizes["b4_members"], sizes["b4_stock"]
    block = create_members(members, prefix="b4", progress=log)
    now = timezone.now()
    create_earned_lots(
        block,
        lots_per_account=1,
        points_per_lot=POINTS_EACH,
        expires_between=(now + timedelta(days=30), now + timedelta(days=365)),
        progress=log,
    )
    Reward.objects.create(
        code="flash", name_zh="限时抢兑", name_en="Flash item", points_price=PRICE, stock=stock
    )
    _api_key, key = create_partner_key(
        partner_name="Bench app", scopes=["redemptions:write", "rewards:read"]
    )
    external_ids = [f"b4-{block.first_member_id + n}" for n in range(block.count)]
    connection.close()

    port = free_port()
    os.environ["API_RATE_LIMIT"] = "10000000/min"
    # 900 refusals would each log a django.request warning: measure the answers, not stderr.
    os.environ["LOG_LEVEL"] = "ERROR"
    server = start_gunicorn(port)
    try:
        warm_up(port, key)
        run = f"b4-{int(time.time())}"
        requests = [redemption_request(key, external_id, run) for external_id in external_ids]
        outcomes, latencies, elapsed = fire_at_once(port, requests, CLIENTS)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)

    answers = Counter(f"{status} {code}".strip() for status, code in outcomes)
    placed = Redemption.objects.filter(reward__code="flash", status="placed").count()
    stock_left = Reward.objects.get(code="flash").stock
    mismatches = check_ledger_invariants()
    log(
        f"B4: {len(outcomes):,} requests in {elapsed:.2f} s from {CLIENTS} clients: "
        f"{dict(answers)}; placed in the database {placed}, stock left {stock_left}, "
        f"ledger invariant {'holds' if not mismatches else f'BROKEN ({len(mismatches)})'}"
    )
    exact = (
        answers.get("201", 0) == stock
        and answers.get("422 out_of_stock", 0) == members - stock
        and placed == stock
        and stock_left == 0
        and not mismatches
    )
    emit(
        Row(
            bench="B4",
            what="flash redemption over HTTP: redemption requests answered",
            value=len(outcomes) / elapsed,
            unit="redemptions/s",
            target=f"exactly {stock} placed, {members - stock} out_of_stock, invariant",
            ok=exact,
            size=f"{members:,} members at once, stock {stock}, {CLIENTS} clients",
            extra={"answers": dict(answers), "placed": placed, "stock_left": stock_left},
        )
    )
    emit(
        Row(
            bench="B4",
            what="placed (201) / out_of_stock (422)",
            value=answers.get("201", 0),
            unit=f"placed, {answers.get('422 out_of_stock', 0)} out_of_stock",
            target=f"== {stock} / {members - stock}",
            ok=exact,
            size=f"p50 {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms",
        )
    )


if __name__ == "__main__":
    main()
