"""`manage.py create_partner_key PARTNER_NAME --scopes a,b,c` and the service behind it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from loyalty_site.api.keys import PartnerKeyError, create_partner_key
from points.models import ApiScope, Partner, PartnerAPIKey
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_partner_key", *args, stdout=out)
    return out.getvalue().splitlines()


def test_the_command_prints_a_working_key_alone_on_its_last_line():
    MemberFactory(external_id="u-1")

    lines = run_command("Demo POS", "--scopes", "members:read,events:write")

    key = lines[-1]
    assert key.strip() == key and " " not in key and len(key) > 30
    assert all(key not in line for line in lines[:-1])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/members/u-1").status_code == 200
    assert client.put("/api/v1/members/u-1", {}, format="json").status_code == 403


def test_the_command_creates_the_partner_once_and_adds_keys_to_it():
    run_command("Demo POS", "--scopes", "members:read")
    run_command("Demo POS", "--scopes", "events:write")

    partner = Partner.objects.get(name="Demo POS")
    assert sorted(k.scopes[0] for k in partner.api_keys.all()) == ["events:write", "members:read"]


def test_an_unknown_scope_is_refused_with_the_list_of_valid_ones():
    with pytest.raises(CommandError) as error:
        run_command("Demo POS", "--scopes", "members:read,points:steal")

    message = str(error.value)
    assert "points:steal" in message
    for scope in ApiScope.values:
        assert scope in message
    assert not Partner.objects.filter(name="Demo POS").exists()


def test_empty_scopes_are_refused():
    with pytest.raises(CommandError):
        run_command("Demo POS", "--scopes", " , ")


def test_scopes_are_stored_once_each_in_a_stable_order():
    api_key, _plain = create_partner_key(
        partner_name="Shop", scopes=["events:write", "members:read", "events:write"]
    )

    assert api_key.scopes == ["members:read", "events:write"]  # ApiScope's order


def test_the_service_returns_the_only_copy_of_the_key():
    api_key, plain_key = create_partner_key(partner_name="Shop", scopes=["rewards:read"])

    stored = PartnerAPIKey.objects.get(pk=api_key.pk)
    assert stored.partner.name == "Shop"
    assert stored.scopes == ["rewards:read"]
    assert plain_key.startswith(f"{stored.prefix}.")
    assert PartnerAPIKey.objects.get_from_key(plain_key).pk == stored.pk


def test_a_blank_partner_name_is_refused():
    with pytest.raises(PartnerKeyError):
        create_partner_key(partner_name="  ", scopes=["rewards:read"])
