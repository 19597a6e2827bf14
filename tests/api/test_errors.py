"""Every error under /api/ is application/problem+json with a `code` from api.md."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.api.assertions import assert_problem

pytestmark = pytest.mark.django_db


def test_an_unknown_path_under_api_is_problem_json_not_found(partner_api):
    assert_problem(partner_api().get("/api/v1/no-such-thing"), 404, "not_found")
    assert_problem(APIClient().get("/api/v2/members/u-1"), 404, "not_found")


def test_an_unknown_path_outside_api_stays_an_html_page(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unknown_member_is_problem_json_not_found(partner_api):
    body = assert_problem(partner_api().get("/api/v1/members/u-nobody"), 404, "not_found")

    assert body["type"].endswith("/not_found")


def test_a_method_the_resource_does_not_have_is_405_problem_json(partner_api):
    response = partner_api().delete("/api/v1/members/u-1")

    assert_problem(response, 405, "validation_error")
    assert "GET" in response["Allow"] and "PUT" in response["Allow"]


def test_a_400_lists_the_invalid_fields_in_errors(partner_api):
    response = partner_api().put(
        "/api/v1/members/u-1",
        {"email": "not-an-email", "birthday": "someday", "marketing_consent": "perhaps"},
        format="json",
    )

    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == {"email", "birthday", "marketing_consent"}
    assert all(isinstance(m, str) for msgs in body["errors"].values() for m in msgs)


def test_a_body_that_is_not_json_is_a_400_validation_error(partner_api):
    response = partner_api().put(
        "/api/v1/members/u-1", data="{not json", content_type="application/json"
    )

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"]["non_field_errors"]


def test_a_body_that_is_not_json_at_all_is_415_problem_json(partner_api):
    response = partner_api().put("/api/v1/members/u-1", data="name=x", content_type="text/plain")

    assert_problem(response, 415, "validation_error")


@pytest.mark.urls("tests.api.plumbing_urls")
@pytest.mark.parametrize("path", ["/api/v1/test/failing", "/api/v1/test/failing-plain"])
def test_an_unexpected_error_under_api_is_a_500_problem_json(path, partner_api, settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {partner_api('members:read').plain_key}"

    response = client.get(path)

    body = assert_problem(response, 500, "server_error")
    assert "a bug" not in response.content.decode()  # nothing internal leaks out
    assert body["detail"]
