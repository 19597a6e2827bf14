"""What the OpenAPI document says about the conventions every endpoint shares (api.md).

- the `Authorization: Api-Key <key>` security scheme of PartnerKeyAuthentication;
- problem+json error bodies and the error answers every partner endpoint can give (401, 403,
  429; 404 with a path parameter; 400 and 422 on writes; 409 / 422 with an Idempotency-Key),
  added by a postprocessing hook so that no view can forget them;
- the `Idempotent-Replayed` header on the success answers of idempotent writes.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from loyalty_site.api.errors import CODES, PROBLEM_CONTENT_TYPE

SECURITY_SCHEME = "PartnerApiKey"
WRITE_METHODS = ("post", "put", "patch", "delete")


def problem(description: str, *, validation: bool = False) -> OpenApiResponse:
    """An error answer for `extend_schema(responses={(status, PROBLEM_CONTENT_TYPE): ...})`."""
    name = "ValidationProblem" if validation else "Problem"
    return OpenApiResponse(
        response={"$ref": f"#/components/schemas/{name}"}, description=description
    )


class PartnerKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "loyalty_site.api.auth.PartnerKeyAuthentication"
    name = SECURITY_SCHEME

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": str(
                _(
                    "`Authorization: Api-Key <key>`. A key belongs to a partner and carries "
                    "scopes; it is shown once when created (`manage.py create_partner_key`). "
                    "Missing or bad key: 401 `not_authenticated`; a key without the scope the "
                    "operation needs: 403 `permission_denied`."
                )
            ),
        }


def _problem_schema(validation: bool = False) -> dict:
    schema = {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": sorted(CODES)},
        },
    }
    if validation:
        schema["required"] = [*schema["required"], "errors"]
        schema["properties"]["errors"] = {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }
    return schema


# component name -> (status, description, schema name, extra headers)
RESPONSES = {
    "ValidationError": (
        "400",
        _("`validation_error`: the request is not valid; `errors` maps fields to messages."),
        "ValidationProblem",
        {},
    ),
    "NotAuthenticated": (
        "401",
        _("`not_authenticated`: the API key is missing, malformed, unknown or revoked."),
        "Problem",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Api-Key"}},
    ),
    "PermissionDenied": (
        "403",
        _("`permission_denied`: the API key lacks the scope this operation needs."),
        "Problem",
        {},
    ),
    "NotFound": ("404", _("`not_found`: no such resource."), "Problem", {}),
    "IdempotencyKeyInFlight": (
        "409",
        _("`idempotency_key_in_flight`: a request with this key is still running; retry."),
        "Problem",
        {},
    ),
    "DomainError": (
        "422",
        _(
            "A business rule refused the request, e.g. `validation_error`, "
            "`insufficient_points`, `member_frozen`, `idempotency_key_reused`."
        ),
        "Problem",
        {},
    ),
    "Throttled": (
        "429",
        _("`throttled`: this key went over its rate limit; retry after `Retry-After` seconds."),
        "Problem",
        {
            "Retry-After": {
                "schema": {"type": "integer"},
                "description": str(_("Seconds to wait before the next request.")),
            }
        },
    ),
}


def _wanted_responses(path: str, method: str, operation: dict) -> list[str]:
    wanted = ["NotAuthenticated", "PermissionDenied", "Throttled"]
    if "{" in path and method != "put":  # a PUT creates what is not there yet
        wanted.append("NotFound")
    parameters = operation.get("parameters", [])
    if method in WRITE_METHODS or any(p.get("in") == "query" for p in parameters):
        wanted.append("ValidationError")
    if method in WRITE_METHODS:
        wanted.append("DomainError")
    if _is_idempotent(operation):
        wanted.append("IdempotencyKeyInFlight")
    return wanted


def _is_idempotent(operation: dict) -> bool:
    return any(
        p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key"
        for p in operation.get("parameters", [])
    )


def add_problem_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the shared error answers on every partner endpoint."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", _problem_schema())
    schemas.setdefault("ValidationProblem", _problem_schema(validation=True))
    responses = components.setdefault("responses", {})
    for name, (_status, description, schema_name, headers) in RESPONSES.items():
        response = {
            "description": str(description),
            "content": {
                PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
            },
        }
        if headers:
            response["headers"] = headers
        responses[name] = response

    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not any(SECURITY_SCHEME in entry for entry in operation.get("security", [])):
                continue  # the schema and docs themselves need no key
            for name in _wanted_responses(path, method, operation):
                status_code = RESPONSES[name][0]
                operation["responses"].setdefault(
                    status_code, {"$ref": f"#/components/responses/{name}"}
                )
            if _is_idempotent(operation):
                for status_code, response in operation["responses"].items():
                    if status_code.startswith("2") and "$ref" not in response:
                        response.setdefault("headers", {})["Idempotent-Replayed"] = {
                            "schema": {"type": "string", "enum": ["true"]},
                            "description": str(
                                _("Present when this is the stored answer to an earlier request.")
                            ),
                        }
    return result
