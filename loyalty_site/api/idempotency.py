"""Idempotency-Key handling for writes that change points or stock (api.md, "Conventions").

A request with a new key claims it, in the same transaction as its effects, with one statement
that takes a transaction-scoped advisory lock on (partner, key) and inserts a placeholder
record. The placeholder is filled with the response before commit, so a record is visible
exactly when the effects are. A duplicate that cannot take the lock while the first runs gets
409 `idempotency_key_in_flight` at once instead of waiting; one that comes after finds the
record and gets the stored response again with `Idempotent-Replayed: true` (or 422 when its
body differs). The claim uses INSERT ... ON CONFLICT, which sees rows committed after the
statement's snapshot was taken, so a duplicate that arrives just as the first commits can never
run the write a second time; the unique (partner, key) constraint is the last line of defence.

A successful write also leaves its ApiCallRecord (partner, key, Idempotency-Key, request id,
client address), written by the same statement that stores the response.

Domain errors (4xx from a LoyaltyError) are stored too, in a transaction of their own after the
failed one rolled back, so a retry gets the same answer; validation errors of the request
itself and 5xx answers are not stored, so a corrected retry runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty_site.audit import api_call_values
from loyalty_site.exceptions import LoyaltyError
from loyalty_site.models import ApiCallRecord, IdempotencyRecord
from loyalty_site.prepared import statement_cursor

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
CONSTRAINT = "idempotency_partner_key_uniq"
MIN_TTL_HOURS = 24  # api.md: keys are kept at least 24 hours
ATTEMPTS = 3

# Placeholder status of a claimed key; never visible outside its transaction.
CLAIMED = 0

_TABLE = IdempotencyRecord._meta.db_table
_CLAIM_SQL = f"""
WITH lock AS (SELECT pg_try_advisory_xact_lock(%(lock_id)s) AS got),
claim AS (
    INSERT INTO {_TABLE}
           (partner_id, key, fingerprint, method, path, response_status, response_body,
            created_at)
    SELECT %(partner_id)s, %(key)s, %(fingerprint)s, %(method)s, %(path)s, {CLAIMED}, NULL,
           now()
      FROM lock
     WHERE lock.got
    ON CONFLICT (partner_id, key) DO NOTHING
    RETURNING id
)
SELECT (SELECT got FROM lock), (SELECT id FROM claim), r.fingerprint, r.response_status,
       r.response_body::text
  FROM (SELECT 1) AS one
  LEFT JOIN {_TABLE} AS r ON r.partner_id = %(partner_id)s AND r.key = %(key)s
"""


_STORE_SUCCESS_SQL = f"""
WITH stored AS (
    UPDATE {_TABLE}
       SET response_status = %(status_code)s, response_body = %(response_body)s::jsonb
     WHERE id = %(claimed_id)s
)
INSERT INTO {ApiCallRecord._meta.db_table}
       (partner_id, api_key_prefix, method, path, idempotency_key, request_id, client_ip,
        status_code, created_at)
VALUES (%(partner_id)s, %(api_key_prefix)s, %(method)s, %(path)s, %(idempotency_key)s,
        %(request_id)s, %(client_ip)s, %(status_code)s, now())
"""


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


class _Retry(Exception):
    """The claim met a record committed after its snapshot: read again."""


def request_fingerprint(request: Request) -> str:
    """Method, path, query and the JSON body in canonical form (key order does not matter).

    A body that is not valid JSON raises ParseError (400) before any key is claimed.
    """
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    raw = f"{request.method}\n{request.get_full_path()}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _lock_id(partner_id: int, key: str) -> int:
    digest = hashlib.blake2b(f"idempotency:{partner_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _rendered(response: Response):
    """The body exactly as the client received it (Decimals, dates, lazy strings rendered)."""
    if response.data is None:
        return None
    return json.loads(JSONRenderer().render(response.data))


def _replay(status_code: int, body) -> Response:
    response = Response(body, status=status_code)
    if status_code >= 400:
        response.content_type = "application/problem+json"
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(request: Request, partner_id: int, key: str, fingerprint: str) -> int | Response:
    """The id of our placeholder record, or the response for a key already used."""
    with statement_cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "lock_id": _lock_id(partner_id, key),
                "partner_id": partner_id,
                "key": key,
                "fingerprint": fingerprint,
                "method": request.method,
                "path": request.path[:512],
            },
        )
        locked, claimed_id, stored_fingerprint, stored_status, stored_body = cursor.fetchone()
    if claimed_id is not None:
        return claimed_id
    if stored_fingerprint is not None:
        if stored_fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        return _replay(stored_status, json.loads(stored_body) if stored_body else None)
    if not locked:
        raise IdempotencyKeyInFlight()
    raise _Retry()  # committed after this statement's snapshot: the next read sees it


def _store_success(request: Request, claimed_id: int, key: str, response: Response) -> None:
    """Fill the claimed record with the response and write the call's ApiCallRecord (the audit
    trail of writes that changed points or stock): one statement, no extra round trip."""
    # The rendered JSON text goes to the jsonb column as it is (PostgreSQL parses it): the same
    # stored value as parsing and dumping it again here, without that work per request.
    body = None if response.data is None else JSONRenderer().render(response.data).decode()
    values = api_call_values(request, status_code=response.status_code, idempotency_key=key)
    with statement_cursor() as cursor:
        cursor.execute(
            _STORE_SUCCESS_SQL,
            {**values, "claimed_id": claimed_id, "response_body": body},
        )


def _is_key_conflict(error: IntegrityError) -> bool:
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == CONSTRAINT


def _store_failure(request, partner_id: int, key: str, fingerprint: str, response) -> None:
    with transaction.atomic():
        IdempotencyRecord.objects.create(
            partner_id=partner_id,
            key=key,
            fingerprint=fingerprint,
            method=request.method,
            path=request.path[:512],
            response_status=response.status_code,
            response_body=_rendered(response),
        )


def run_idempotent(request: Request, handler: Callable[[Request], Response]) -> Response:
    """Run `handler(request)` at most once per (partner, Idempotency-Key); see the module doc."""
    key = request.META.get(HEADER, "")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [_("This header is required, 1 to 255 characters.")]}
        )
    partner_id = request.user.partner.pk
    fingerprint = request_fingerprint(request)
    for _attempt in range(ATTEMPTS):
        failure = None
        try:
            with transaction.atomic():
                claimed = _claim(request, partner_id, key, fingerprint)
                if isinstance(claimed, Response):
                    return claimed
                try:
                    response = handler(request)
                except LoyaltyError as error:
                    failure = error
                else:
                    if response.status_code < 400:
                        _store_success(request, claimed, key, response)
                        return response
                # The write failed: undo whatever it did (and the claim) before answering.
                transaction.set_rollback(True)
        except _Retry:
            continue
        except IntegrityError as error:
            if _is_key_conflict(error):
                continue  # a duplicate committed first: read and replay its response
            raise
        if failure is None:
            return response  # a 4xx the handler answered itself: not stored, a retry runs

        from loyalty_site.api.errors import problem_exception_handler

        response = problem_exception_handler(failure, {"request": request})
        try:
            _store_failure(request, partner_id, key, fingerprint, response)
        except IntegrityError as error:
            if _is_key_conflict(error):
                continue  # a duplicate ran meanwhile and its outcome stands: replay it
            raise
        return response
    raise IdempotencyKeyInFlight()


class IdempotentAPIView(APIView):
    """An APIView whose POST runs under `run_idempotent`.

    Subclasses define `perform_post(request, *args, **kwargs) -> Response` with the write itself.
    """

    def post(self, request, *args, **kwargs):
        return run_idempotent(request, lambda req: self.perform_post(req, *args, **kwargs))


def purge_expired_records(*, now=None, batch_size: int = 10_000) -> int:
    """Delete records older than IDEMPOTENCY_KEY_TTL_HOURS (never under 24 h); returns how many.

    Deletes in batches so that a large backlog never holds one long transaction.
    """
    hours = max(MIN_TTL_HOURS, settings.IDEMPOTENCY_KEY_TTL_HOURS)
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    expired = IdempotencyRecord.objects.filter(created_at__lt=cutoff)
    deleted = 0
    while True:
        batch = list(expired.order_by("created_at").values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        count, _rows = IdempotencyRecord.objects.filter(pk__in=batch).delete()
        deleted += count
