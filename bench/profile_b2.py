"""CPU per request of B2's `POST /api/v1/events`, without sockets: `python -m bench.profile_b2`.

Calls the WSGI application in-process (what a gunicorn worker runs, minus HTTP parsing) with
B2's requests, against B2's data and rulebook, and prints the CPU time (time.process_time) per
request and the queries per request; `--profile` adds a cProfile of the measured requests.
Run it inside the embedded services on a throwaway database:

    .venv/bin/python -m loyalty_site.embedded --throwaway -- .venv/bin/python manage.py migrate
    ... -- .venv/bin/python -m bench.profile_b2 --requests 2000 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument(
        "--statements", action="store_true", help="wall time per statement (one more round)"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_site.settings")
    os.environ["API_RATE_LIMIT"] = "10000000/min"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, reset_queries

    call_command("migrate", verbosity=0)
    from bench.b2 import purchase_request
    from bench.common import create_rulebook
    from loyalty_site.api.keys import create_partner_key
    from loyalty_site.bulk_data import create_members
    from loyalty_site.wsgi import application

    block = create_members(args.members, prefix="b2")
    create_rulebook()
    _api_key, key = create_partner_key(partner_name="Bench POS", scopes=["events:write"])
    run = uuid.uuid4().hex[:8]

    def environ(seq: int) -> dict:
        method, path, headers, body = purchase_request(
            key, block.first_member_id, block.count, run, 0, 0, seq
        )
        data = body.encode()
        env = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": headers["Content-Type"],
            "HTTP_HOST": "127.0.0.1:8000",
        }
        for name, value in headers.items():
            if name != "Content-Type":
                env["HTTP_" + name.upper().replace("-", "_")] = value
        return env

    statuses: dict[str, int] = {}

    def start_response(status, _headers, _exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def call(seq: int) -> None:
        for chunk in application(environ(seq), start_response):
            del chunk

    for seq in range(200):  # warm-up: imports, caches, prepared statements
        call(seq)
    statuses.clear()
    from django.conf import settings

    settings.DEBUG = True  # count queries
    reset_queries()
    call(10_000_000)
    queries = [q["sql"] for q in connection.queries]
    settings.DEBUG = False
    # Timed by CPU, not wall clock: waiting for PostgreSQL or Redis costs this process nothing.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    # The machine is shared: the least CPU per request over several rounds is the figure that
    # other processes disturb least.
    rounds = []
    first = 1000
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    server_cpu = _process_cpu(backend)
    for _round in range(args.rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for seq in range(first, first + args.requests):
            call(seq)
        first += args.requests
        if profiler:
            profiler.disable()
        rounds.append((time.process_time() - cpu, time.perf_counter() - wall))
    server_user, server_system = (
        after - before for after, before in zip(_process_cpu(backend), server_cpu, strict=True)
    )
    timings: dict[str, list[float]] = {}
    if args.statements:

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                text = " ".join(str(sql).split())[:70]
                timings.setdefault(text, []).append(time.perf_counter() - started)

        with connection.execute_wrapper(timed):
            for seq in range(first, first + args.requests):
                call(seq)
    print(f"statuses {statuses}")
    print(f"queries per request: {len(queries)}")
    for sql in queries:
        print("   ", " ".join(str(sql).split())[:150])
    per_request = sorted(cpu / args.requests * 1000 for cpu, _wall in rounds)
    print(
        f"CPU per request {per_request[0]:.2f} ms (least of {args.rounds} rounds of"
        f" {args.requests}; all: {', '.join(f'{ms:.2f}' for ms in per_request)}),"
        f" wall {min(wall for _cpu, wall in rounds) / args.requests * 1000:.2f} ms"
    )
    total = args.rounds * args.requests
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans, left(regexp_replace(statement, '\\s+', ' ', 'g'),"
            " 60) FROM pg_prepared_statements ORDER BY 2 DESC"
        )
        for generic, custom, text in cursor.fetchall():
            print(f"  prepared: {generic} generic plans, {custom} custom plans: {text}")
    print(
        f"PostgreSQL backend CPU per request: user {server_user / total * 1000:.2f} ms,"
        f" system {server_system / total * 1000:.2f} ms"
    )
    for text, seconds in timings.items():
        print(f"  {sum(seconds) / args.requests * 1000:6.3f} ms  {text}")
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats(args.sort).print_stats(60)


def _process_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) a process on this machine has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


if __name__ == "__main__":
    main()
