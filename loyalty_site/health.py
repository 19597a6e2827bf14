"""Liveness and readiness probes for load balancers and `make run`'s checks."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """200 while the process runs: no dependency is touched."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"database: {exc.__class__.__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    from loyalty_site.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"broker: {exc.__class__.__name__}: {exc}"
    return None


def readyz(request):
    """200 only when the database and the Celery broker answer; 503 with the reasons if not."""
    problems = [p for p in (_check_database(), _check_broker()) if p]
    if problems:
        return JsonResponse({"status": "unavailable", "reasons": problems}, status=503)
    return JsonResponse(
        {"status": "ok", "checks": {"database": "ok", "broker": "ok"}, "debug": settings.DEBUG}
    )
