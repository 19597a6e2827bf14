"""`Authorization: Api-Key <key>`: 401 without a valid key, 403 without the scope (api.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from points.models import PartnerAPIKey
from tests.api.assertions import assert_problem
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

MEMBER_URL = "/api/v1/members/u-auth"


def client_with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def test_a_request_without_a_key_gets_401_problem_json():
    response = APIClient().get(MEMBER_URL)

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc.def",
        "Api-Key",
        "Api-Key ",
        "Api-Key abc.def extra",
        "Token abc.def",
    ],
)
def test_a_malformed_authorization_header_gets_401(header):
    assert_problem(client_with_header(header).get(MEMBER_URL), 401, "not_authenticated")


@pytest.mark.parametrize("key", ["not-a-key", "abcdefgh.wrongsecretwrongsecretwrongse", "."])
def test_an_unknown_key_gets_401(key, partner_key):
    partner_key("members:read")  # a real key exists; these are not it

    assert_problem(client_with_header(f"Api-Key {key}").get(MEMBER_URL), 401, "not_authenticated")


def test_a_key_with_the_right_prefix_but_a_wrong_secret_gets_401(partner_key):
    api_key, plain_key = partner_key("members:read")
    forged = f"{api_key.prefix}.{'x' * (len(plain_key) - len(api_key.prefix) - 1)}"

    response = client_with_header(f"Api-Key {forged}").get(MEMBER_URL)

    assert_problem(response, 401, "not_authenticated")


def test_a_valid_key_with_the_scope_is_let_through(partner_api):
    MemberFactory(external_id="u-auth")

    response = partner_api("members:read").get(MEMBER_URL)

    assert response.status_code == 200
    assert response.json()["external_id"] == "u-auth"


def test_the_keyword_is_case_insensitive(partner_key):
    MemberFactory(external_id="u-auth")
    _api_key, plain_key = partner_key("members:read")

    assert client_with_header(f"api-key {plain_key}").get(MEMBER_URL).status_code == 200


def test_a_revoked_key_gets_401(partner_api):
    client = partner_api("members:read")
    PartnerAPIKey.objects.filter(pk=client.api_key.pk).update(revoked=True)

    assert_problem(client.get(MEMBER_URL), 401, "not_authenticated")


def test_revoking_a_key_in_use_takes_effect_once_the_cache_expires(partner_api, settings):
    settings.API_KEY_CACHE_SECONDS = 0  # the cache would otherwise keep the key valid for 10 s
    MemberFactory(external_id="u-auth")
    client = partner_api("members:read")
    assert client.get(MEMBER_URL).status_code == 200

    client.api_key.revoked = True
    client.api_key.save()

    assert_problem(client.get(MEMBER_URL), 401, "not_authenticated")


def test_an_expired_key_gets_401(partner_api):
    client = partner_api("members:read")
    PartnerAPIKey.objects.filter(pk=client.api_key.pk).update(
        expiry_date=timezone.now() - timedelta(minutes=1)
    )

    assert_problem(client.get(MEMBER_URL), 401, "not_authenticated")


def test_a_key_of_an_inactive_partner_gets_401(partner_api):
    client = partner_api("members:read")
    partner = client.api_key.partner
    partner.is_active = False
    partner.save()

    assert_problem(client.get(MEMBER_URL), 401, "not_authenticated")


def test_a_key_without_the_scope_gets_403_permission_denied(partner_api):
    MemberFactory(external_id="u-auth")

    response = partner_api("events:write", "members:write").get(MEMBER_URL)

    body = assert_problem(response, 403, "permission_denied")
    assert "members:read" in body["detail"]


def test_read_scope_does_not_allow_writes(partner_api):
    response = partner_api("members:read").put(MEMBER_URL, {"name": "x"}, format="json")

    assert_problem(response, 403, "permission_denied")


def test_keys_are_stored_hashed_and_the_plain_key_is_nowhere_in_the_database(partner_key):
    api_key, plain_key = partner_key("members:read")

    stored = PartnerAPIKey.objects.get(pk=api_key.pk)
    secret = plain_key.split(".", 1)[1]
    assert stored.hashed_key.startswith("sha512$$")
    for value in (stored.pk, stored.prefix, stored.hashed_key, stored.name):
        assert secret not in value
