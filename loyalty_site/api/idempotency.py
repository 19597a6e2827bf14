"""Idempotency-Key handling for writes that change points or stock (api.md, "Conventions").

One transaction holds both the write's effects and the stored response, so either both exist or
neither does. Inside it, a transaction-scoped advisory lock on (partner, key) tells a duplicate
that arrives while the first is still running apart from one that arrives after: the former gets
409 `idempotency_key_in_flight` at once instead of waiting; the latter finds the stored response
and replays it with `Idempotent-Replayed: true`. The unique (partner, key) constraint is the
backstop: if two requests ever both ran the write, the second cannot commit.

Domain errors (4xx) are stored too, in a transaction of their own after the failed one rolled
back, so a retry gets the same answer; 5xx answers are not stored, so a retry runs again.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty_site.exceptions import LoyaltyError
from loyalty_site.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(LoyaltyError):
    code = "idempotency_key_reused"
    status = 422
    default_message = _("This Idempotency-Key was already used with a different request.")


class IdempotencyKeyInFlight(LoyaltyError):
    code = "idempotency_key_in_flight"
    status = 409
    default_message = _(
        "A request with this Idempotency-Key is still being processed; retry shortly."
    )


def request_fingerprint(request) -> str:
    """Method, path, query and the JSON body in canonical form (key order does not matter)."""
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    except exceptions.ParseError:
        body = request.body.decode("utf-8", "replace")
    raw = f"{request.method}\n{request.get_full_path()}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _lock_id(partner_id: int, key: str) -> int:
    digest = hashlib.blake2b(f"{partner_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _replay(record_status: int, body) -> Response:
    response = Response(body, status=record_status)
    if record_status >= 400:
        response.content_type = "application/problem+json"
    response[REPLAYED_HEADER] = "true"
    return response


def _lock_and_find(partner_id: int, key: str):
    """Take the advisory lock and read any stored record, in one round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pg_try_advisory_xact_lock(%s), r.fingerprint, r.response_status,
                   r.response_body::text
              FROM (SELECT 1) AS one
              LEFT JOIN loyalty_site_idempotencyrecord r
                ON r.partner_id = %s AND r.key = %s
            """,
            [_lock_id(partner_id, key), partner_id, key],
        )
        return cursor.fetchone()


def _store(request, partner_id: int, key: str, fingerprint: str, response: Response) -> None:
    IdempotencyRecord.objects.create(
        partner_id=partner_id,
        key=key,
        fingerprint=fingerprint,
        method=request.method,
        path=request.path[:512],
        response_status=response.status_code,
        response_body=response.data,
    )


def _check_existing(found, fingerprint: str) -> Response | None:
    locked, stored_fingerprint, stored_status, stored_body = found
    if stored_fingerprint is not None:
        if stored_fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        return _replay(stored_status, json.loads(stored_body) if stored_body else None)
    if not locked:
        raise IdempotencyKeyInFlight()
    return None


def run_idempotent(request, handler) -> Response:
    """Run `handler(request)` at most once per (partner, Idempotency-Key)."""
    key = request.META.get(HEADER, "")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [_("This header is required, 1 to 255 characters.")]}
        )
    partner_id = request.user.partner.pk
    fingerprint = request_fingerprint(request)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                existing = _check_existing(_lock_and_find(partner_id, key), fingerprint)
                if existing is not None:
                    return existing
                try:
                    response = handler(request)
                except LoyaltyError as error:
                    failure = error
                else:
                    if response.status_code < 400:
                        _store(request, partner_id, key, fingerprint, response)
                        return response
                    failure = None
                # The write failed: undo whatever it did, then record the answer below.
                transaction.set_rollback(True)
        except IntegrityError as error:
            if "idempotency_partner_key_uniq" in str(error):
                continue  # a duplicate committed first: read and replay its response
            raise
        if failure is None:
            return response
        from loyalty_site.api.errors import problem_exception_handler

        response = problem_exception_handler(failure, {"request": request})
        try:
            with transaction.atomic():
                _store(request, partner_id, key, fingerprint, response)
        except IntegrityError:
            continue
        return response
    raise IdempotencyKeyInFlight()


class IdempotentAPIView(APIView):
    """An APIView whose POST runs under `run_idempotent`.

    Subclasses define `perform_post(request, *args, **kwargs) -> Response` with the write itself.
    """

    def post(self, request, *args, **kwargs):
        return run_idempotent(request, lambda req: self.perform_post(req, *args, **kwargs))


def purge_expired_records(*, now=None) -> int:
    """Delete records older than IDEMPOTENCY_KEY_TTL_HOURS; returns how many."""
    from datetime import timedelta

    from django.utils import timezone

    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _rows = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
