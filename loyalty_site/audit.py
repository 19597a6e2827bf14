"""The audit trail (docs/adr/0012-audit-trail-and-roles.md).

Two records, both append-only:

- changes of configuration and members, recorded by PostgreSQL triggers (django-pghistory) with
  who, when and the row before and after. A model opts in with ONE line, `@audited()` above its
  class, then `makemigrations` for its event model;
- every partner API call that changed points or stock: an `ApiCallRecord` row written by the
  write's own transaction (`api_call_values`, folded into the idempotency statement).

Who made a change travels to the triggers as two transaction-local PostgreSQL settings that
`audit_context()` prepends to each writing statement (pghistory's own context does the same, but
it would also rewrite the ledger's server-side prepared statement, which cannot carry two
commands; this one leaves those alone). Outside any context nothing is added to any statement.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pghistory
import pgtrigger
import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

# The settings pghistory's triggers read (pghistory/trigger.py).
CONTEXT_ID_SETTING = "pghistory.context_id"
CONTEXT_METADATA_SETTING = "pghistory.context_metadata"
IN_CONTEXT_SQL = f"COALESCE(current_setting('{CONTEXT_ID_SETTING}', true), '') <> ''"

# Labels of the recorded events. "before_update" keeps the row as it was; its trigger sorts
# before "update"'s (PostgreSQL fires same-event triggers by name), so an update's previous event
# is always its own before-image and pghistory's diff is exactly that change.
INSERT, BEFORE_UPDATE, UPDATE, DELETE, PERSONAL_DATA = (
    "insert",
    "before_update",
    "update",
    "delete",
    "personal_data",
)
SHOWN_LABELS = (INSERT, UPDATE, DELETE, PERSONAL_DATA)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# Statements that never write a row (pghistory's list): nothing to attribute.
_READ_ONLY_PREFIXES = (
    "select",
    "vacuum",
    "analyze",
    "checkpoint",
    "discard",
    "load",
    "cluster",
    "reindex",
    "create",
    "alter",
    "drop",
    "set ",
    "begin",
    "start",
    "savepoint",
    "release",
    "rollback",
    "commit",
)


# --- Opting a model in ------------------------------------------------------------------------
class _ChangeCondition(pgtrigger.Condition):
    """Fires when a `loud` column changes, or a `quiet` one changes inside an audit context.

    Quiet columns are those that jobs and members' own actions move all day (a reward's stock,
    a member's tier and growth): their records are the redemption, the tier change, the ledger.
    An operator or a partner changing them by hand is still recorded.
    """

    def __init__(self, *, loud: Iterable[str], quiet: Iterable[str]) -> None:
        self.loud, self.quiet = tuple(loud), tuple(quiet)
        super().__init__(sql="-")  # resolved per model below

    @staticmethod
    def _changed(model, names: tuple[str, ...]) -> str:
        columns = [model._meta.get_field(name).column for name in names]
        return " OR ".join(f'OLD."{c}" IS DISTINCT FROM NEW."{c}"' for c in columns)

    def resolve(self, model) -> str:
        parts = []
        if self.loud:
            parts.append(f"({self._changed(model, self.loud)})")
        if self.quiet:
            parts.append(f"(({self._changed(model, self.quiet)}) AND {IN_CONTEXT_SQL})")
        return "(" + (" OR ".join(parts) or "FALSE") + ")"


def audited(
    *,
    personal: Iterable[str] = (),
    quiet: Iterable[str] = (),
    exclude: Iterable[str] = (),
    inserts_in_context_only: bool = False,
):
    """Record every insert, update (row before and after) and delete of the decorated model.

    `personal`: fields never copied into the trail (PIPL erasure must be able to forget them);
    a change of one is still recorded, as "personal_data", with who and when but no values.
    `quiet`: fields whose change alone is recorded only inside an audit context (see
    `_ChangeCondition`). `exclude`: fields not worth keeping (secrets, caches).
    `inserts_in_context_only`: for tables that partners and bulk loads fill (members).
    `auto_now` timestamps are left out: they change on every save and say nothing.
    """
    personal, quiet, exclude = tuple(personal), tuple(quiet), tuple(exclude)

    def decorate(model: type[models.Model]) -> type[models.Model]:
        left_out = set(personal) | set(exclude)
        snapshot = [
            f.name
            for f in model._meta.concrete_fields
            if f.name not in left_out and not getattr(f, "auto_now", False)
        ]
        loud = [name for name in snapshot if name not in quiet and name != model._meta.pk.name]
        changed = _ChangeCondition(loud=loud, quiet=quiet)
        trackers = [
            pghistory.InsertEvent(
                INSERT,
                condition=pgtrigger.Condition(f"({IN_CONTEXT_SQL})")
                if inserts_in_context_only
                else None,
            ),
            # Trigger names fix the firing order: the before-image first, then the update.
            pghistory.UpdateEvent(
                BEFORE_UPDATE, row=pghistory.Old, condition=changed, trigger_name="audit_1_before"
            ),
            pghistory.UpdateEvent(UPDATE, condition=changed, trigger_name="audit_2_update"),
            pghistory.DeleteEvent(DELETE),
        ]
        if personal:
            trackers.append(
                pghistory.UpdateEvent(
                    PERSONAL_DATA,
                    condition=pghistory.AnyChange(*personal),
                    trigger_name="audit_3_personal_data",
                )
            )
        return pghistory.track(
            *trackers,
            fields=snapshot,
            model_name=f"{model.__name__}AuditEvent",
            obj_field=pghistory.ObjForeignKey(related_name="audit_events"),
        )(model)

    return decorate


# --- Who: the audit context -------------------------------------------------------------------
@dataclass
class _Context:
    id: uuid.UUID
    metadata: dict[str, Any] = field(default_factory=dict)


_local = threading.local()


def current_context() -> _Context | None:
    return getattr(_local, "context", None)


@contextlib.contextmanager
def audit_context(**metadata: Any) -> Iterator[_Context]:
    """Attribute every change recorded inside the block to `metadata` (user, partner, ...).

    Nested blocks add to the outer one's metadata and share its id.
    """
    outer = current_context()
    if outer is not None:
        outer.metadata.update(metadata)
        yield outer
        return
    context = _Context(id=uuid.uuid4(), metadata=dict(metadata))
    _local.context = context
    try:
        with connection.execute_wrapper(_attach_context):
            yield context
    finally:
        del _local.context


def _sql_literal(value: str) -> str:
    # standard_conforming_strings is on (PostgreSQL's default since 9.1): only quotes double.
    return "'" + value.replace("'", "''") + "'"


def _attach_context(execute, sql, params, many, context):
    audit = current_context()
    cursor = getattr(context["cursor"], "cursor", context["cursor"])
    text = sql.decode() if isinstance(sql, bytes) else sql
    if (
        audit is None
        or many
        # Only a client-side binding cursor runs two commands in one call; the ledger's
        # prepared statement (server-side binding) is left as it is.
        or not isinstance(cursor, psycopg.ClientCursor)
        or text.lstrip()[:10].lower().startswith(_READ_ONLY_PREFIXES)
        or cursor.connection.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    ):
        return execute(sql, params, many, context)
    context_id = str(audit.id)
    metadata = json.dumps(audit.metadata, cls=DjangoJSONEncoder)
    if params is None:
        # No placeholders may be introduced into a statement sent without parameters.
        prefix = (
            f"SELECT set_config('{CONTEXT_ID_SETTING}', {_sql_literal(context_id)}, true), "
            f"set_config('{CONTEXT_METADATA_SETTING}', {_sql_literal(metadata)}, true); "
        )
    elif isinstance(params, dict):
        params = {**params, "audit__context_id": context_id, "audit__metadata": metadata}
        prefix = (
            f"SELECT set_config('{CONTEXT_ID_SETTING}', %(audit__context_id)s, true), "
            f"set_config('{CONTEXT_METADATA_SETTING}', %(audit__metadata)s, true); "
        )
    else:
        params = (context_id, metadata, *params)
        prefix = (
            f"SELECT set_config('{CONTEXT_ID_SETTING}', %s, true), "
            f"set_config('{CONTEXT_METADATA_SETTING}', %s, true); "
        )
    result = execute(prefix + text, params, many, context)
    # The statement's own result comes after set_config's: move the cursor onto it.
    while result is not None and result.nextset():
        pass
    return result


def user_metadata(request) -> dict[str, Any]:
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated and hasattr(user, "_meta"))
    return {
        "user": user.pk if authenticated else None,
        "username": user.get_username() if authenticated else "",
        "url": request.path,
        "request_id": getattr(request, "request_id", ""),
        "ip": client_ip(request),
    }


def partner_metadata(request) -> dict[str, Any]:
    """Who a partner API call is: partner, key prefix, request id, address."""
    principal = request.user
    return {
        "partner": principal.partner.pk,
        "partner_name": principal.partner.name,
        "api_key": principal.key_prefix,
        "url": request.path,
        "request_id": getattr(request, "request_id", ""),
        "ip": client_ip(request),
    }


class AdminAuditMiddleware:
    """Every change made through the admin is attributed to the logged-in user.

    Only admin requests pay for it: the partner API (the benchmarked hot path) is untouched.
    Goes after AuthenticationMiddleware.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._admin_prefix: str | None = None

    def __call__(self, request):
        if self._admin_prefix is None:
            self._admin_prefix = reverse("admin:index")
        if not request.path.startswith(self._admin_prefix):
            return self.get_response(request)
        with audit_context(**user_metadata(request)):
            return self.get_response(request)


# --- Requests: id and client address ----------------------------------------------------------
class RequestIdMiddleware:
    """Gives each request an id (the client's `X-Request-ID` when usable, else a new one), kept
    in `request.request_id`, in the API call records, and in the response's `X-Request-ID`."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request) -> str | None:
    """The caller's address: REMOTE_ADDR, or when that is one of TRUSTED_PROXIES, the last
    address in X-Forwarded-For that is not itself a trusted proxy (a client can put anything
    at the left end of that header; only what our proxies appended counts)."""
    remote = request.META.get("REMOTE_ADDR") or None
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if remote is None or not networks or not _is_trusted(remote, networks):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed chain: keep what we know
        if not _is_trusted(hop, networks):
            return hop
    return remote


# --- API calls that changed points or stock ---------------------------------------------------
def api_call_values(request, *, status_code: int, idempotency_key: str = "") -> dict[str, Any]:
    """The columns of one ApiCallRecord for this partner request."""
    principal = request.user
    return {
        "partner_id": principal.partner.pk,
        "api_key_prefix": principal.key_prefix,
        "method": request.method,
        "path": request.path[:512],
        "idempotency_key": idempotency_key,
        "request_id": getattr(request, "request_id", "") or "",
        "client_ip": client_ip(request),
        "status_code": status_code,
    }


def record_api_call(request, *, status_code: int, idempotency_key: str = ""):
    """Write the ApiCallRecord of a write that is not idempotent-keyed (PUT /rewards with
    stock); call it inside the write's transaction."""
    from loyalty_site.models import ApiCallRecord

    return ApiCallRecord.objects.create(
        **api_call_values(request, status_code=status_code, idempotency_key=idempotency_key)
    )


def document_request_id(result, generator, request, public):
    """drf-spectacular postprocessing hook: every partner operation accepts `X-Request-ID` and
    every answer carries it (RequestIdMiddleware)."""
    header = {
        "schema": {"type": "string"},
        "description": str(_("The request's id: the one sent in X-Request-ID, or a new one.")),
    }
    parameter = {
        "in": "header",
        "name": REQUEST_ID_HEADER,
        "required": False,
        "schema": {"type": "string", "maxLength": 128, "pattern": _REQUEST_ID.pattern},
        "description": str(
            _(
                "Your id for this request (kept in the audit records); one is made when absent "
                "or not of this form."
            )
        ),
    }
    for response in result.get("components", {}).get("responses", {}).values():
        response.setdefault("headers", {})[REQUEST_ID_HEADER] = header
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(p.get("name") == REQUEST_ID_HEADER for p in parameters):
                parameters.append(parameter)
            for response in operation["responses"].values():
                if "$ref" not in response:
                    response.setdefault("headers", {})[REQUEST_ID_HEADER] = header
    return result
