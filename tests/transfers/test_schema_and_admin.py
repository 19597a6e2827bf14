"""The OpenAPI document describes both endpoints; the admin pages of transfers and exchange."""

from __future__ import annotations

from decimal import Decimal

import pytest

from points import services
from points.models import ExchangePartner, TransferSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    ("path", "fields", "output"),
    [
        (
            "/api/v1/members/{external_id}/points/transfer",
            {"to", "points", "reference"},
            "TransferOutput",
        ),
        (
            "/api/v1/members/{external_id}/points/convert",
            {"programme", "direction", "amount", "reference"},
            "ConvertOutput",
        ),
    ],
)
def test_the_schema_documents_both_endpoints(schema, path, fields, output):
    operation = schema["paths"][path]["post"]

    assert set(operation["responses"]) >= {"201", "400", "401", "403", "404", "409", "422"}
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert "Idempotency-Key" in headers
    assert operation["security"] == [{"PartnerApiKey": []}]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][request.rsplit("/", 1)[1]]
    assert set(body["properties"]) == fields
    success = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert success.endswith(f"/{output}")


def test_the_convert_answer_has_its_four_members(schema):
    output = schema["components"]["schemas"]["ConvertOutput"]

    assert set(output["properties"]) == {"entry", "rate", "points", "partner_units"}
    assert (
        schema["components"]["schemas"]["TransferOutput"]["properties"]["entries"]["type"]
        == "array"
    )


def test_the_admin_lists_and_edits_transfers_and_exchange(admin_client, alice, bob, airline):
    services.transfer_points(sender=alice, recipient=bob, points=10, reference="gift-1")
    services.convert_points(member=alice, programme_code="airline-x", direction="out", amount=10)

    for url in [
        "/admin/points/transfer/",
        "/admin/points/conversion/",
        "/admin/points/exchangepartner/",
        f"/admin/points/exchangepartner/{airline.pk}/change/",
        "/admin/points/exchangepartner/add/",
    ]:
        assert admin_client.get(url).status_code == 200, url
    settings_page = admin_client.get("/admin/points/transfersettings/")
    assert settings_page.status_code == 302
    assert admin_client.get(settings_page["Location"]).status_code == 200


def test_the_admin_refuses_a_factor_outside_its_bounds(admin_client, airline):
    form = {
        "code": airline.code,
        "name": airline.name,
        "unit_name": "miles",
        "is_active": "on",
        "base_rate": "8",
        "min_factor": "0.5",
        "max_factor": "1.5",
        "factor": "1.6",
        "daily_out_limit": "",
        "daily_in_limit": "",
    }

    refused = admin_client.post(f"/admin/points/exchangepartner/{airline.pk}/change/", form)
    accepted = admin_client.post(
        f"/admin/points/exchangepartner/{airline.pk}/change/", {**form, "factor": "0.9"}
    )

    assert refused.status_code == 200  # the form again, with the error
    assert "factor" in refused.context["adminform"].form.errors
    assert accepted.status_code == 302
    assert ExchangePartner.objects.get(pk=airline.pk).factor == Decimal("0.9")


def test_the_admin_saves_the_transfer_limits(admin_client):
    limits = TransferSettings.get()

    response = admin_client.post(
        f"/admin/points/transfersettings/{limits.pk}/change/",
        {"daily_out_limit": "2000", "daily_in_limit": ""},
    )

    assert response.status_code == 302
    saved = TransferSettings.get()
    assert (saved.daily_out_limit, saved.daily_in_limit) == (2000, None)
