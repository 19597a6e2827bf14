"""`make bench [SCALE=small|full]`: run perf.md's benchmarks, print one table, write JSON.

Each benchmark runs in a process of its own against a database of its own, copied from a
migrated template (CREATE DATABASE ... TEMPLATE), so one benchmark's data never slows another.
Every figure that matters is a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import environ
import psycopg

from bench.harness import Row, print_table, write_results

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS = BASE_DIR / "bench" / "results.json"
BENCHES = ["B1", "B2", "B3", "B4", "B5", "B6"]
TEMPLATE = "bench_template"


def server_config() -> dict:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("make bench runs inside the embedded services (or with DATABASE_URL set)")
    return environ.Env.db_url_config(url)


def database_url(config: dict, name: str) -> str:
    host = config.get("HOST") or "localhost"
    user = quote(config.get("USER") or "postgres", safe="")
    password = config.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}" if password else user
    if host.startswith("/"):
        return f"postgres://{auth}@/{quote(host, safe='')}/{name}"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{name}"


def admin_connection(config: dict) -> psycopg.Connection:
    return psycopg.connect(
        host=config.get("HOST") or "localhost",
        port=config.get("PORT") or None,
        user=config.get("USER") or "postgres",
        password=config.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )


def recreate(config: dict, name: str, template: str | None = None) -> None:
    with admin_connection(config) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')


def drop(config: dict, name: str) -> None:
    with admin_connection(config) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_env(config: dict, name: str) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url(config, name)
    env["DJANGO_SETTINGS_MODULE"] = "loyalty_site.settings"
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["small", "full"], default="full")
    parser.add_argument("--only", nargs="*", choices=BENCHES, default=BENCHES)
    args = parser.parse_args()
    config = server_config()
    started = time.monotonic()

    print(f"bench: scale={args.scale}; preparing a migrated template database", flush=True)
    recreate(config, TEMPLATE)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        env=child_env(config, TEMPLATE),
        cwd=BASE_DIR,
        check=True,
    )

    rows: list[Row] = []
    for bench in args.only:
        name = f"bench_{bench.lower()}"
        recreate(config, name, template=TEMPLATE)
        print(f"bench: {bench} ...", flush=True)
        bench_started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", f"bench.{bench.lower()}", "--scale", args.scale],
            env=child_env(config, name),
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        drop(config, name)
        if completed.returncode != 0:
            print(completed.stdout)
            print(f"bench: {bench} FAILED (exit {completed.returncode})", file=sys.stderr)
            return completed.returncode
        for line in completed.stdout.splitlines():
            if line.startswith("ROW "):
                rows.append(Row(**json.loads(line[4:])))
            else:
                print(f"  {line}")
        print(f"bench: {bench} done in {time.monotonic() - bench_started:.0f} s", flush=True)
    drop(config, TEMPLATE)

    print()
    print_table(rows)
    meta = {
        "scale": args.scale,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.monotonic() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_results(rows, RESULTS, meta)
    print(f"\nwritten to {RESULTS.relative_to(BASE_DIR)} in {meta['seconds']} s")
    failed = [r for r in rows if r.ok is False]
    if failed and args.scale == "full":
        print(f"{len(failed)} target(s) missed: " + ", ".join(r.bench for r in failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
