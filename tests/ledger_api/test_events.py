"""POST /api/v1/events for purchases under the default programme (api.md, "Events")."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import Event
from points.models import Entry, ProgrammeSettings

pytestmark = pytest.mark.django_db


def test_purchase_earns_one_point_per_unit_rounded_down(pos, member):
    # when
    response = pos.purchase("u-1001", "order-778", "256.99", channel="pos", store="store-12")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["points_awarded"] == 256
    assert body["points_pending"] == 0
    assert body["held_for_review"] is False
    assert body["rules_applied"] == [{"rule": "default-purchase", "points": 256}]
    assert isinstance(body["event_id"], int)
    [entry] = body["entries"]
    assert entry["kind"] == "earn"
    assert entry["amount"] == 256
    assert entry["balance_after"] == 256
    assert entry["reference"] == "order-778"
    assert entry["merchant"] == "POS"


def test_points_expire_twelve_months_later_at_the_end_of_the_local_day(pos, member):
    response = pos.purchase("u-1001", "order-1", "10.00")

    expires_at = datetime.fromisoformat(response.json()["entries"][0]["expires_at"])
    local = expires_at.astimezone(ZoneInfo("Asia/Shanghai"))
    created = datetime.fromisoformat(response.json()["entries"][0]["created_at"]).astimezone(
        ZoneInfo("Asia/Shanghai")
    )
    assert (local.hour, local.minute, local.second) == (23, 59, 59)
    months = (local.year - created.year) * 12 + (local.month - created.month)
    assert months == 12


def test_member_object_shows_the_points_and_what_expires(pos, member):
    pos.purchase("u-1001", "order-1", "120.00")
    pos.purchase("u-1001", "order-2", "80.00")

    body = pos.get("members/u-1001").json()

    assert body["points"]["available"] == 200
    assert body["points"]["pending"] == 0
    assert sum(item["amount"] for item in body["points"]["expiring"]) == 200
    assert 1 <= len(body["points"]["expiring"]) <= 3


def test_the_part_paid_with_points_and_excluded_items_earn_nothing(pos, member):
    response = pos.purchase(
        "u-1001",
        "order-9",
        "300.00",
        paid_with_points="50.00",
        items=[
            {
                "sku": "GC-100",
                "category": "gift_card",
                "quantity": 1,
                "amount": "100.00",
                "excluded": True,
            },
            {"sku": "A1", "category": "drinks", "quantity": 2, "amount": "200.00"},
        ],
    )

    assert response.json()["points_awarded"] == 150


def test_a_purchase_that_earns_nothing_is_still_recorded(pos, member):
    response = pos.purchase("u-1001", "order-0", "0.50")

    assert response.status_code == 201
    assert response.json()["points_awarded"] == 0
    assert response.json()["entries"] == []
    assert Event.objects.get(reference="order-0").outcome == Event.Outcome.NO_POINTS


def test_the_same_purchase_reference_twice_is_refused(pos, member):
    pos.purchase("u-1001", "order-5", "10.00")

    response = pos.purchase("u-1001", "order-5", "10.00")

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert Entry.objects.filter(reference="order-5").count() == 1


def test_a_replayed_request_takes_effect_once(pos, member):
    body = {"type": "purchase", "member": "u-1001", "reference": "o-7", "amount": "70.00"}

    first = pos.post("events", body, key="same-key")
    second = pos.post("events", body, key="same-key")

    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Entry.objects.filter(reference="o-7").count() == 1


def test_a_dry_run_answers_what_the_real_event_then_awards_and_writes_nothing(pos, member):
    body = {"type": "purchase", "member": "u-1001", "reference": "o-8", "amount": "88.80"}

    dry = pos.client.post("/api/v1/events?dry_run=true", body, format="json")

    assert dry.status_code == 201
    assert dry.json()["points_awarded"] == 88
    assert dry.json()["event_id"] is None
    assert not Entry.objects.exists()
    assert not Event.objects.exists()
    real = pos.post("events", body)
    assert real.json()["points_awarded"] == dry.json()["points_awarded"]
    assert real.json()["rules_applied"] == dry.json()["rules_applied"]


def test_pending_window_holds_the_points_until_it_ends(pos, member):
    ProgrammeSettings.objects.filter(pk=1).update(pending_days=14)

    response = pos.purchase("u-1001", "o-p", "40.00")

    body = response.json()
    assert body["points_awarded"] == 40
    assert body["points_pending"] == 40
    available_at = datetime.fromisoformat(body["entries"][0]["available_at"])
    created_at = datetime.fromisoformat(body["entries"][0]["created_at"])
    assert available_at - created_at >= timedelta(days=13, hours=23)
    points = pos.get("members/u-1001").json()["points"]
    assert points["available"] == 0
    assert points["pending"] == 40


def test_unknown_member_is_not_found(pos, db):
    response = pos.purchase("nobody", "o-1", "10.00")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_frozen_member_earns_nothing(pos, member):
    member.status = member.Status.FROZEN
    member.save()

    response = pos.purchase("u-1001", "o-1", "10.00")

    assert response.status_code == 422
    assert response.json()["code"] == "member_frozen"
    assert not Entry.objects.exists()
    assert not Event.objects.exists()


def test_a_purchase_needs_amount_and_reference(pos, member):
    response = pos.post("events", {"type": "purchase", "member": "u-1001"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert set(response.json()["errors"]) == {"amount", "reference"}


def test_an_unconfigured_event_type_is_refused(pos, member):
    response = pos.post("events", {"type": "teleport", "member": "u-1001"})

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_writes_need_an_idempotency_key(pos, member):
    response = pos.client.post(
        "/api/v1/events",
        {"type": "purchase", "member": "u-1001", "reference": "o", "amount": "1.00"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_events_need_the_events_write_scope(member):
    from tests.ledger_api.conftest import PartnerApi

    reader = PartnerApi("Reader", scopes=["members:read"])

    response = reader.purchase("u-1001", "o-1", "10.00")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
