"""`make run`: prepare the database and static files, then start web, worker and beat.

Run inside `python -m loyalty_site.embedded -- ...` (which supplies DATABASE_URL and
CELERY_BROKER_URL when they are not configured): migrate, collect static files, create the demo
data once, print where to go, then replace this process with honcho running the Procfile.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _step(title: str, started: float) -> None:
    from django.utils.translation import gettext as _

    seconds = f"{time.monotonic() - started:.1f}"
    print("  " + _("%(step)s (%(seconds)s s)") % {"step": title, "seconds": seconds}, flush=True)


def prepare() -> None:
    """Migrate, collect static files, seed the demo data; each step is safe to repeat."""
    from django.core.management import call_command
    from django.utils.translation import gettext as _

    started = time.monotonic()
    # Static files need no database: collect them on the side while the database is prepared.
    collectstatic = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "manage.py"), "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
    )
    try:
        call_command("migrate", interactive=False, verbosity=0)
        _step(_("database migrated"), started)
        call_command("seed_demo")
        _step(_("demo data ready"), started)
        if collectstatic.wait() != 0:
            sys.exit(_("collectstatic failed; see above."))
    finally:
        if collectstatic.poll() is None:
            collectstatic.terminate()
            collectstatic.wait()
    _step(_("static files collected"), started)


def banner(port: int) -> str:
    from django.utils.translation import gettext as _

    base = f"http://127.0.0.1:{port}"
    return "\n".join(
        [
            "",
            _("Loyalty back office (会员积分管理后台) is starting:"),
            "  " + _("admin") + f"  {base}/admin/",
            "  " + _("API docs") + f"  {base}/api/v1/docs/",
            "  " + _("OpenAPI schema") + f"  {base}/api/v1/schema/",
            "  " + _("health") + f"  {base}/healthz  {base}/readyz",
            _(
                "Log in to the admin as `admin` with the password seed_demo printed the first "
                "time (forgotten: `.venv/bin/python manage.py changepassword admin` while this "
                "runs)."
            ),
            _("The demo partner key (printed once, on the first run) calls the API:"),
            f"  curl -H 'Authorization: Api-Key <key>' {base}/api/v1/members/demo-0001",
            _("Stop everything with Ctrl-C."),
            "",
        ]
    )


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_site.settings")
    django.setup()
    from django.conf import settings
    from django.utils.translation import gettext as _

    port = settings.PORT
    # Fail before migrating, with a hint, rather than after, in gunicorn's log.
    if not port_is_free(port):
        sys.exit(
            _("Port %(port)s is in use (another `make run`?). Stop it or set PORT=<free port>.")
            % {"port": port}
        )
    prepare()
    print(banner(port), flush=True)
    env = dict(os.environ)
    # Procfile commands (gunicorn, celery) live next to this interpreter, in the virtualenv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PORT"] = str(port)
    command = [
        sys.executable,
        "-m",
        "honcho",
        "start",
        "--procfile",
        str(BASE_DIR / "Procfile"),
        "--app-root",
        str(BASE_DIR),
        "--port",
        str(port),
        # Every process sees exactly the environment the preparation steps saw: no .env file.
        "--env",
        os.devnull,
    ]
    sys.stdout.flush()
    os.chdir(BASE_DIR)
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()
