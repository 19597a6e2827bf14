"""Measuring tools shared by the benchmarks: pgbench, an HTTP load generator, peak memory."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    what: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    size: str = ""
    extra: dict = field(default_factory=dict)


def print_table(rows: list[Row]) -> None:
    headers = ["bench", "what", "value", "baseline", "ratio", "target", "ok", "size"]
    lines = []
    for row in rows:
        lines.append(
            [
                row.bench,
                row.what,
                f"{row.value:,.1f} {row.unit}",
                "" if row.baseline is None else f"{row.baseline:,.1f}",
                "" if row.ratio is None else f"{row.ratio:.2f}",
                row.target,
                {True: "yes", False: "NO", None: "-"}[row.ok],
                row.size,
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for line in lines:
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def write_results(rows: list[Row], path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in rows]}, indent=2, default=str)
    )


def libpq_environ(db: dict) -> dict:
    """PG* environment variables for libpq tools (pgbench, psql) from a Django DATABASES entry."""
    env = dict(os.environ)
    env["PGHOST"] = db.get("HOST") or "localhost"
    if db.get("PORT"):
        env["PGPORT"] = str(db["PORT"])
    env["PGUSER"] = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    env["PGDATABASE"] = db["NAME"]
    return env


def pgbench_binary() -> str:
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "pgbench"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("pgbench")
    if not found:
        raise RuntimeError("pgbench not found (it ships with the pgserver wheel)")
    return found


def run_pgbench(
    script: str, *, db: dict, clients: int, seconds: int, defines: dict | None = None
) -> float:
    """Run a custom pgbench script; returns transactions per second (excluding connections)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
        path = handle.name
    args = [
        pgbench_binary(),
        "-n",  # no vacuum of pgbench's own tables
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(clients),
        "-T",
        str(seconds),
        "-f",
        path,
    ]
    for name, value in (defines or {}).items():
        args += ["-D", f"{name}={value}"]
    try:
        completed = subprocess.run(
            args, env=libpq_environ(db), capture_output=True, text=True, check=False
        )
    finally:
        os.unlink(path)
    if completed.returncode != 0:
        raise RuntimeError(f"pgbench failed: {completed.stderr}\n{completed.stdout}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", completed.stdout)
    if not match:
        raise RuntimeError(f"cannot read pgbench's tps: {completed.stdout}")
    return float(match.group(1))


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def _load_worker(args) -> tuple[int, int, list[float], dict]:
    host, port, requests_factory, worker_index, threads, seconds, keep_alive = args
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    done = errors = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    def client(thread_index: int) -> None:
        nonlocal done, errors
        sequence = 0
        connection = None
        local_latencies = []
        local_statuses: dict[int, int] = {}
        local_done = local_errors = 0
        while time.monotonic() < deadline:
            sequence += 1
            method, path, headers, body = requests_factory(worker_index, thread_index, sequence)
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, port, timeout=30)
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if not keep_alive or response.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                local_errors += 1
                if connection is not None:
                    connection.close()
                connection = None
                continue
            local_latencies.append((time.perf_counter() - started) * 1000)
            local_statuses[status] = local_statuses.get(status, 0) + 1
            local_done += 1
        with lock:
            done += local_done
            errors += local_errors
            latencies.extend(local_latencies)
            for status, count in local_statuses.items():
                statuses[status] = statuses.get(status, 0) + count

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done, errors, latencies, statuses


def http_load(
    *,
    host: str,
    port: int,
    requests_factory,
    clients: int,
    seconds: float,
    processes: int = 2,
    keep_alive: bool = True,
) -> LoadResult:
    """`clients` concurrent HTTP clients (threads spread over processes) for `seconds`.

    `requests_factory(process_index, thread_index, sequence) -> (method, path, headers, body)`
    must be a picklable top-level function.
    """
    threads = max(1, clients // processes)
    context = get_context("fork")
    started = time.monotonic()
    with context.Pool(processes) as pool:
        parts = pool.map(
            _load_worker,
            [
                (host, port, requests_factory, index, threads, seconds, keep_alive)
                for index in range(processes)
            ],
        )
    elapsed = time.monotonic() - started
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = errors = 0
    for done, failed, part_latencies, part_statuses in parts:
        total += done
        errors += failed
        latencies.extend(part_latencies)
        for status, count in part_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return LoadResult(
        requests=total,
        errors=errors,
        seconds=min(elapsed, seconds) if total else elapsed,
        latencies_ms=latencies,
        statuses=statuses,
    )


def run_measured(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run a command; returns (seconds, peak resident memory in MB, output)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read() if process.stdout else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed ({process.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss / 1024, output
