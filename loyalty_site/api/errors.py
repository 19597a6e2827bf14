"""Every API error as application/problem+json (RFC 9457) with a `code` from api.md.

Domain errors (LoyaltyError subclasses, one exceptions module per app) carry their own code and
status; DRF's own errors are mapped here; 404 / 405 / 500 under /api/ get the same shape.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from loyalty_site.exceptions import LoyaltyError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://loyalty.example/problems/"

# The codes api.md lists, plus `server_error` for an unexpected failure (api.md has none).
CODES = frozenset(
    {
        "validation_error",
        "not_found",
        "insufficient_points",
        "out_of_stock",
        "limit_exceeded",
        "member_frozen",
        "issuance_frozen",
        "reward_unavailable",
        "already_refunded",
        "idempotency_key_reused",
        "idempotency_key_in_flight",
        "throttled",
        "not_authenticated",
        "permission_denied",
        "server_error",
    }
)

TITLES = {
    "validation_error": "The request is not valid",
    "not_found": "Not found",
    "insufficient_points": "Not enough points",
    "out_of_stock": "Out of stock",
    "limit_exceeded": "Limit exceeded",
    "member_frozen": "Member is frozen",
    "issuance_frozen": "Points issuance is frozen",
    "reward_unavailable": "Reward unavailable",
    "already_refunded": "Already refunded",
    "idempotency_key_reused": "Idempotency key reused with another request",
    "idempotency_key_in_flight": "Request with this idempotency key is in progress",
    "throttled": "Too many requests",
    "not_authenticated": "Not authenticated",
    "permission_denied": "Permission denied",
    "server_error": "Internal error",
}


def problem_body(
    code: str, status_code: int, detail: str, errors: dict | None = None, **extra
) -> dict:
    assert code in CODES, code
    body = {
        "type": TYPE_BASE + code,
        "title": _(TITLES[code]),
        "status": status_code,
        "detail": str(detail),
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(code: str, status_code: int, detail: str, **kwargs) -> Response:
    return Response(
        problem_body(code, status_code, detail, **kwargs),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _field_errors(detail) -> dict:
    """DRF's nested ValidationError detail as {field: [messages]}."""
    if isinstance(detail, dict):
        flat = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _field_errors(value).items():
                    flat[f"{field}.{sub}"] = messages
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for index, item in enumerate(value):
                    for sub, messages in _field_errors(item).items():
                        flat[f"{field}[{index}].{sub}"] = messages
            else:
                flat[field] = [str(m) for m in (value if isinstance(value, list) else [value])]
        return flat
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def problem_exception_handler(exc, context):
    headers = {}
    if isinstance(exc, LoyaltyError):
        extra = {k: v for k, v in exc.data.items() if isinstance(v, (str, int, float, bool))}
        response = problem_response(exc.code, exc.status, exc.message, **extra)
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        response = problem_response(
            "validation_error",
            400,
            _("Some fields are not valid; see `errors`."),
            errors=_field_errors(exc.detail),
        )
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response = problem_response("not_authenticated", 401, exc.detail)
        authenticator = context["request"].authenticators[:1] if context.get("request") else []
        if authenticator:
            headers["WWW-Authenticate"] = authenticator[0].authenticate_header(context["request"])
    elif isinstance(exc, exceptions.PermissionDenied):
        response = problem_response("permission_denied", 403, exc.detail)
    elif isinstance(exc, exceptions.NotFound):
        response = problem_response("not_found", 404, exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        response = problem_response("throttled", 429, exc.detail)
        if exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    elif isinstance(exc, exceptions.APIException):
        # 405, 406, 415, malformed JSON: the request itself is wrong.
        response = problem_response("validation_error", exc.status_code, exc.detail)
    else:
        return None  # let Django's 500 handling (handler500 below) answer
    for name, value in headers.items():
        response[name] = value
    return response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            problem_body("not_found", 404, _("No API resource at this path.")),
            status=404,
            content_type=PROBLEM_CONTENT_TYPE,
            json_dumps_params={"ensure_ascii": False},
        )
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return JsonResponse(
            problem_body(
                "server_error",
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                _("An unexpected error occurred; it has been logged."),
            ),
            status=500,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    return defaults.server_error(request)
