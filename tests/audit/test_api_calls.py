"""Every partner API call that changed points or stock leaves an ApiCallRecord."""

from __future__ import annotations

import re

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from loyalty_site.audit import client_ip
from loyalty_site.models import ApiCallRecord, AuditEvent
from tests.factories import MemberFactory, RewardFactory
from tests.ledger_api.conftest import PartnerApi

pytestmark = pytest.mark.django_db


@pytest.fixture
def pos(db) -> PartnerApi:
    return PartnerApi("POS")


@pytest.fixture
def member(entry_tier):
    return MemberFactory(external_id="u-1001")


def test_a_purchase_records_partner_key_idempotency_key_request_id_and_ip(pos, member):
    # when
    response = pos.post(
        "events",
        {"type": "purchase", "member": "u-1001", "reference": "o-1", "amount": "88.00"},
        key="pos-key-1",
        HTTP_X_REQUEST_ID="req-abc-123",
        REMOTE_ADDR="203.0.113.7",
    )

    # then
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "req-abc-123"
    record = ApiCallRecord.objects.get()
    assert record.partner == pos.partner
    assert record.api_key_prefix == pos.api_key.prefix
    assert (record.method, record.path) == ("POST", "/api/v1/events")
    assert record.idempotency_key == "pos-key-1"
    assert record.request_id == "req-abc-123"
    assert record.client_ip == "203.0.113.7"
    assert record.status_code == 201


def test_a_request_without_an_id_gets_one_back_and_in_its_record(pos, member):
    response = pos.purchase("u-1001", "o-1", "10.00")

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert ApiCallRecord.objects.get().request_id == response["X-Request-ID"]


def test_spend_refund_and_redemptions_are_recorded_but_not_replays_refusals_or_dry_runs(
    pos, member
):
    reward = RewardFactory(code="spa", kind="service", stock=3, points_price=10)
    pos.purchase("u-1001", "o-1", "100.00")
    twice = {"type": "purchase", "member": "u-1001", "reference": "o-2", "amount": "5.00"}
    assert pos.post("events", twice, key="k-dup").status_code == 201
    assert pos.post("events", twice, key="k-dup")["Idempotent-Replayed"] == "true"
    pos.client.post(
        "/api/v1/events?dry_run=true",
        {"type": "purchase", "member": "u-1001", "reference": "o-dry", "amount": "9.00"},
        format="json",
    )
    pos.post("members/u-1001/points/spend", {"points": 100_000})  # insufficient_points
    pos.post("members/u-1001/points/spend", {"points": 20, "reference": "pay-1"})
    pos.post("orders/o-1/refunds", {"amount": "10.00"})
    placed = pos.post("redemptions", {"member": "u-1001", "reward": reward.code})
    pos.post(f"redemptions/{placed.json()['id']}/cancel")

    paths = list(ApiCallRecord.objects.order_by("id").values_list("path", flat=True))
    assert paths == [
        "/api/v1/events",
        "/api/v1/events",
        "/api/v1/members/u-1001/points/spend",
        "/api/v1/orders/o-1/refunds",
        "/api/v1/redemptions",
        f"/api/v1/redemptions/{placed.json()['id']}/cancel",
    ]


def test_put_reward_with_stock_is_recorded_and_the_change_attributed_to_the_partner(pos):
    shop = pos.client
    body = {"name": "Spa", "points_price": 100, "kind": "service"}

    shop.put("/api/v1/rewards/spa", body, format="json")
    shop.put("/api/v1/rewards/spa", {**body, "stock": 7}, format="json", HTTP_X_REQUEST_ID="r-7")

    [record] = ApiCallRecord.objects.all()
    assert (record.method, record.path, record.request_id) == ("PUT", "/api/v1/rewards/spa", "r-7")
    [change] = AuditEvent.objects.filter(pgh_obj_model="rewards_mall.Reward", pgh_label="update")
    assert change.pgh_diff == {"stock": [0, 7]}
    assert change.pgh_context["partner_name"] == "POS"
    assert change.pgh_context["api_key"] == pos.api_key.prefix


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_the_client_ip_comes_from_x_forwarded_for_only_behind_a_trusted_proxy():
    def ip(remote: str, forwarded: str = "") -> str | None:
        request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
        return client_ip(request)

    # Only the hops our proxies appended count: the client controls the left end.
    assert ip("10.0.0.5", "198.51.100.1, 203.0.113.9") == "203.0.113.9"
    assert ip("10.0.0.5", "203.0.113.9, 10.1.1.1") == "203.0.113.9"
    assert ip("192.0.2.44", "203.0.113.9") == "192.0.2.44"
    assert ip("10.0.0.5", "not-an-ip") == "10.0.0.5"
    assert ip("10.0.0.5") == "10.0.0.5"


def test_without_trusted_proxies_x_forwarded_for_is_ignored():
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4")

    assert client_ip(request) == "10.0.0.5"


def test_api_call_records_are_read_only_in_the_admin_and_in_the_database(pos, member, admin_client):
    purchase = {"type": "purchase", "member": "u-1001", "reference": "o-1", "amount": "10.00"}
    pos.post("events", purchase, HTTP_X_REQUEST_ID="find-me")
    record = ApiCallRecord.objects.get()

    listing = admin_client.get(
        reverse("admin:loyalty_site_apicallrecord_changelist"), {"q": "find-me"}
    )
    assert [r.pk for r in listing.context["cl"].result_list] == [record.pk]
    assert admin_client.get(reverse("admin:loyalty_site_apicallrecord_add")).status_code == 403
    delete_url = reverse("admin:loyalty_site_apicallrecord_delete", args=[record.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    for statement in (
        "UPDATE loyalty_site_apicallrecord SET status_code = 500",
        "DELETE FROM loyalty_site_apicallrecord",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert ApiCallRecord.objects.get().status_code == 201


def test_the_openapi_document_describes_the_request_id_header(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    events = schema["paths"]["/api/v1/events"]["post"]

    assert any(p["name"] == "X-Request-ID" for p in events["parameters"])
    assert "X-Request-ID" in events["responses"]["201"]["headers"]
    assert "X-Request-ID" in schema["components"]["responses"]["DomainError"]["headers"]


def test_the_record_costs_no_extra_round_trip_on_post_events(pos, member):
    # perf.md B2: the record is written by the statement that stores the idempotent response.
    purchase = {"type": "purchase", "member": "u-1001", "reference": "o-1", "amount": "10.00"}
    with CaptureQueriesContext(connection) as queries:
        assert pos.post("events", purchase).status_code == 201

    touching = [q["sql"] for q in queries.captured_queries if "apicallrecord" in (q["sql"] or "")]
    assert len(touching) == 1
    assert "UPDATE loyalty_site_idempotencyrecord" in touching[0]
