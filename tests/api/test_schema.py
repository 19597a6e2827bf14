"""The OpenAPI document describes what is served, and the docs page works offline."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_a_valid_openapi_3_document(schema):
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 JSON schema

    assert schema["openapi"].startswith("3.")


def test_the_schema_lists_the_member_endpoints_with_their_answers(schema):
    member = schema["paths"]["/api/v1/members/{external_id}"]

    assert set(member) >= {"get", "put"}
    assert set(member["get"]["responses"]) >= {"200", "401", "403", "404", "429"}
    assert set(member["put"]["responses"]) >= {"200", "201", "400", "401", "403", "422"}
    body = schema["components"]["schemas"]["MemberInputRequest"]["properties"]
    assert set(body) >= {"name", "phone", "email", "birthday", "marketing_consent", "referral_code"}
    output = schema["components"]["schemas"]["MemberOutput"]["properties"]
    assert set(output) == {
        "external_id",
        "name",
        "status",
        "tier",
        "growth",
        "next_tier",
        "projected_tier",
        "tier_period_ends_at",
        "growth_to_keep_tier",
        "points",
        "referral_code",
        "joined_at",
    }


def test_errors_are_documented_as_problem_json(schema):
    not_found = schema["paths"]["/api/v1/members/{external_id}"]["get"]["responses"]["404"]
    assert "application/problem+json" in not_found["content"]
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert {"not_authenticated", "permission_denied", "throttled"} <= set(
        problem["properties"]["code"]["enum"]
    )
    throttled = schema["components"]["responses"]["Throttled"]
    assert "Retry-After" in throttled["headers"]


def test_the_api_key_security_scheme_is_documented_and_required(schema):
    scheme = schema["components"]["securitySchemes"]["PartnerApiKey"]

    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
    for operation in schema["paths"]["/api/v1/members/{external_id}"].values():
        assert operation["security"] == [{"PartnerApiKey": []}]


def test_the_docs_page_loads_its_assets_from_this_server_not_a_cdn(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/v1/schema/" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets, "the page references no assets"
    for asset in assets:
        assert not re.match(r"(https?:)?//", asset), f"external asset {asset}"
    static = [a for a in assets if a.startswith("/static/")]
    assert any("swagger-ui-bundle.js" in a for a in static)
    for asset in static:
        assert finders.find(asset.removeprefix("/static/")), f"missing static file {asset}"
