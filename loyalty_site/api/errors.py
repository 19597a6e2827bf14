"""Every API error as application/problem+json (RFC 9457) with a `code` from api.md.

Domain errors (LoyaltyError subclasses, one exceptions module per app) carry their own code and
status; DRF's own errors are mapped here; 404 / 405 / 500 under /api/ get the same shape.
"""

from __future__ import annotations

import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import set_rollback

from loyalty_site.exceptions import LoyaltyError

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://loyalty.example/problems/"

# The codes api.md lists, plus `server_error` for an unexpected failure (api.md has none).
TITLES = {
    "validation_error": gettext_lazy("The request is not valid"),
    "not_found": gettext_lazy("Not found"),
    "insufficient_points": gettext_lazy("Not enough points"),
    "out_of_stock": gettext_lazy("Out of stock"),
    "limit_exceeded": gettext_lazy("Limit exceeded"),
    "member_frozen": gettext_lazy("Member is frozen"),
    "issuance_frozen": gettext_lazy("Points issuance is frozen"),
    "reward_unavailable": gettext_lazy("Reward unavailable"),
    "already_refunded": gettext_lazy("Already refunded"),
    "idempotency_key_reused": gettext_lazy("Idempotency key reused with another request"),
    "idempotency_key_in_flight": gettext_lazy("Request with this idempotency key is in progress"),
    "throttled": gettext_lazy("Too many requests"),
    "not_authenticated": gettext_lazy("Not authenticated"),
    "permission_denied": gettext_lazy("Permission denied"),
    "server_error": gettext_lazy("Internal error"),
}


CODES = frozenset(TITLES)

# Members of every problem body; a domain error's extra data never overrides them.
RESERVED = frozenset({"type", "title", "status", "detail", "code", "errors"})


def problem_body(
    code: str, status_code: int, detail: str, errors: dict | None = None, **extra
) -> dict:
    """An RFC 9457 body with api.md's `code`; `errors` ({field: [messages]}) on 400."""
    if code not in CODES:
        raise ValueError(f"unknown problem code {code!r}")
    body = {
        "type": TYPE_BASE + code,
        "title": str(TITLES[code]),
        "status": status_code,
        "detail": str(detail),
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body.update({key: value for key, value in extra.items() if key not in RESERVED})
    return body


def problem_response(code: str, status_code: int, detail: str, **kwargs) -> Response:
    return Response(
        problem_body(code, status_code, detail, **kwargs),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _field_errors(detail) -> dict:
    """DRF's nested ValidationError detail as {field: [messages]} ("items[0].sku" for nesting)."""
    if isinstance(detail, dict):
        flat = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _field_errors(value).items():
                    flat[f"{field}.{sub}"] = messages
            elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
                for index, item in enumerate(value):
                    if not item:
                        continue  # DRF puts {} for the list items that are valid
                    for sub, messages in _field_errors(item).items():
                        flat[f"{field}[{index}].{sub}"] = messages
            else:
                flat[field] = [str(m) for m in (value if isinstance(value, list) else [value])]
        return flat
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def _retry_after(wait: float | None) -> str | None:
    return None if wait is None else str(max(1, math.ceil(wait)))


def problem_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every known error as problem+json; None lets a 500 through."""
    if isinstance(exc, LoyaltyError):
        extra = {k: v for k, v in exc.data.items() if isinstance(v, (str, int, float, bool))}
        set_rollback()
        return problem_response(exc.code, exc.status, exc.message, **extra)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if not isinstance(exc, exceptions.APIException):
        return None  # Django's 500 handling (handler500 below) answers and logs it

    headers = {}
    if isinstance(exc, exceptions.ValidationError):
        response = problem_response(
            "validation_error",
            400,
            _("Some fields are not valid; see `errors`."),
            errors=_field_errors(exc.detail),
        )
    elif isinstance(exc, exceptions.ParseError):
        response = problem_response(
            "validation_error", 400, exc.detail, errors={"non_field_errors": [str(exc.detail)]}
        )
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response = problem_response("not_authenticated", 401, exc.detail)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
    elif isinstance(exc, exceptions.PermissionDenied):
        response = problem_response("permission_denied", 403, exc.detail)
    elif isinstance(exc, exceptions.NotFound):
        response = problem_response("not_found", 404, exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        response = problem_response("throttled", 429, exc.detail)
        retry_after = _retry_after(exc.wait)
        if retry_after:
            headers["Retry-After"] = retry_after
    else:
        # 405, 406, 415: the request itself is wrong; api.md has no closer code.
        response = problem_response("validation_error", exc.status_code, exc.detail)
    for name, value in headers.items():
        response[name] = value
    set_rollback()
    return response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _problem_json_response(body: dict) -> JsonResponse:
    return JsonResponse(
        body,
        status=body["status"],
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"ensure_ascii": False},
    )


def handler404(request, exception=None):
    """Django's 404 handler: problem+json under /api/, the usual page elsewhere."""
    if _is_api(request):
        return _problem_json_response(
            problem_body("not_found", 404, _("No API resource at this path."))
        )
    return defaults.page_not_found(request, exception)


def handler500(request):
    """Django's 500 handler: problem+json under /api/ (the error itself is logged by Django)."""
    if _is_api(request):
        return _problem_json_response(
            problem_body(
                "server_error",
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                _("An unexpected error occurred; it has been logged."),
            )
        )
    return defaults.server_error(request)
