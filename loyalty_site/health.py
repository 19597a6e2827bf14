"""Liveness and readiness probes for load balancers and `make run`'s checks (api.md, Operations)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from kombu import Connection

# A probe must answer quickly even when a dependency hangs: fail after this many seconds.
PROBE_TIMEOUT_SECONDS = 2


def healthz(request):
    """200 while the process runs: no dependency is touched."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"{exc.__class__.__name__}: {exc}".strip()
    return None


def _check_broker() -> str | None:
    # A fresh connection to the configured URL, so a broker that went away is noticed at once.
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=PROBE_TIMEOUT_SECONDS,
            transport_options={"socket_timeout": PROBE_TIMEOUT_SECONDS},
        ) as broker:
            broker.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"{exc.__class__.__name__}: {exc}".strip()
    return None


def readyz(request):
    """200 only when the database and the Celery broker answer; 503 with the reasons if not."""
    failures = {"database": _check_database(), "broker": _check_broker()}
    checks = {name: "ok" if reason is None else "failing" for name, reason in failures.items()}
    reasons = [f"{name}: {reason}" for name, reason in failures.items() if reason is not None]
    if reasons:
        return JsonResponse(
            {"status": "unavailable", "checks": checks, "reasons": reasons}, status=503
        )
    return JsonResponse({"status": "ok", "checks": checks})
