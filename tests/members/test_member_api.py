"""PUT / GET /api/v1/members/{external_id} as api.md's "Members" section says."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from members.models import Member
from members.services import member_set_status
from points.services import earn
from tests.api.assertions import assert_problem
from tests.factories import MemberFactory, TierFactory

pytestmark = pytest.mark.django_db

MEMBER_KEYS = {
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


@pytest.fixture
def api(partner_api):
    return partner_api("members:read", "members:write")


def put(client, external_id: str, body: dict):
    return client.put(f"/api/v1/members/{external_id}", body, format="json")


def test_put_creates_a_member_and_answers_201_with_the_member_object(api):
    before = timezone.now()

    response = put(
        api,
        "u-1001",
        {
            "name": "王小明",
            "phone": "13800138000",
            "email": "xm@example.com",
            "birthday": "1990-05-17",
            "marketing_consent": True,
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == MEMBER_KEYS
    assert body["external_id"] == "u-1001"
    assert body["name"] == "王小明"
    assert body["status"] == "active"
    assert body["tier"] == {"code": "member", "name": Member.objects.get().tier.name}
    assert body["growth"] == 0
    assert body["points"] == {"available": 0, "pending": 0, "expiring": []}
    assert len(body["referral_code"]) == 6
    assert parse_datetime(body["joined_at"]) >= before - timedelta(seconds=1)
    member = Member.objects.get(external_id="u-1001")
    assert (member.phone, member.email, member.birthday, member.marketing_consent) == (
        "13800138000",
        "xm@example.com",
        date(1990, 5, 17),
        True,
    )


def test_put_on_an_existing_member_updates_the_given_fields_and_answers_200(api):
    put(api, "u-1001", {"name": "Old", "phone": "1", "marketing_consent": True})

    response = put(api, "u-1001", {"name": "New", "marketing_consent": False})

    assert response.status_code == 200
    assert response.json()["name"] == "New"
    member = Member.objects.get(external_id="u-1001")
    assert (member.name, member.phone, member.marketing_consent) == ("New", "1", False)


def test_a_null_birthday_clears_it_and_a_missing_one_keeps_it(api):
    put(api, "u-1001", {"birthday": "1990-05-17"})
    put(api, "u-1001", {"name": "x"})
    assert Member.objects.get().birthday == date(1990, 5, 17)

    put(api, "u-1001", {"birthday": None})

    assert Member.objects.get().birthday is None


def test_a_birthday_in_the_future_is_a_validation_error(api):
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = put(api, "u-1", {"birthday": tomorrow.isoformat()})

    body = assert_problem(response, 400, "validation_error")

    assert list(body["errors"]) == ["birthday"]
    assert not Member.objects.exists()


def test_an_external_id_longer_than_128_characters_is_a_validation_error(api):
    body = assert_problem(put(api, "u" * 129, {"name": "x"}), 400, "validation_error")

    assert list(body["errors"]) == ["external_id"]


def test_get_answers_the_same_member_object_as_put(api):
    created = put(api, "u-1001", {"name": "Ann"}).json()

    response = api.get("/api/v1/members/u-1001")

    assert response.status_code == 200
    assert response.json() == created


def test_get_of_an_unknown_member_is_404_not_found(api):
    assert_problem(api.get("/api/v1/members/u-nobody"), 404, "not_found")


def test_the_member_object_shows_status_tier_and_growth(api):
    gold = TierFactory(code="gold", name="金卡 Gold")
    member = MemberFactory(external_id="u-7", tier=gold, growth=1520)
    member_set_status(member=member, status="frozen", operator=None, reason="risk review")

    body = api.get("/api/v1/members/u-7").json()

    assert body["status"] == "frozen"
    assert body["tier"] == {"code": "gold", "name": "金卡 Gold"}
    assert body["growth"] == 1520


def test_points_come_from_the_ledger(api):
    member = MemberFactory(external_id="u-7")
    soon = timezone.now() + timedelta(days=30)
    later = timezone.now() + timedelta(days=60)
    earn(member=member, points=200, expires_at=soon)
    earn(member=member, points=300, expires_at=later)

    points = api.get("/api/v1/members/u-7").json()["points"]

    assert points["available"] == 500
    assert points["pending"] == 0
    assert [(e["amount"], parse_datetime(e["expires_at"])) for e in points["expiring"]] == [
        (200, soon),
        (300, later),
    ]


def test_a_referral_code_at_creation_records_the_inviter(api):
    inviter = MemberFactory(external_id="u-inviter")

    response = put(api, "u-new", {"name": "Bob", "referral_code": inviter.referral_code.lower()})

    assert response.status_code == 201
    assert Member.objects.get(external_id="u-new").referred_by == inviter


def test_an_unknown_referral_code_is_422_validation_error_and_creates_nothing(api):
    response = put(api, "u-new", {"name": "Bob", "referral_code": "ZZZZZZ"})

    assert_problem(response, 422, "validation_error")
    assert not Member.objects.filter(external_id="u-new").exists()


def test_a_referral_code_on_update_is_ignored(api):
    inviter = MemberFactory(external_id="u-inviter")
    put(api, "u-1", {"name": "Ann"})

    response = put(api, "u-1", {"name": "Ann", "referral_code": inviter.referral_code})

    assert response.status_code == 200
    assert Member.objects.get(external_id="u-1").referred_by is None


def test_members_read_is_needed_for_get_and_members_write_for_put(partner_api):
    MemberFactory(external_id="u-1")
    reader, writer = partner_api("members:read"), partner_api("members:write")

    assert reader.get("/api/v1/members/u-1").status_code == 200
    assert_problem(put(reader, "u-1", {"name": "x"}), 403, "permission_denied")
    assert put(writer, "u-1", {"name": "x"}).status_code == 200
    assert_problem(writer.get("/api/v1/members/u-1"), 403, "permission_denied")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("entry_tier")
def test_concurrent_puts_creating_the_same_member_create_it_once_without_errors(partner_key):
    _api_key, plain_key = partner_key("members:write")
    count = 8
    barrier = threading.Barrier(count)
    statuses: list[int | None] = [None] * count

    def create(index: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
            barrier.wait(10)
            statuses[index] = put(client, "u-race", {"name": f"Racer {index}"}).status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(statuses) == [200] * (count - 1) + [201]
    assert Member.objects.filter(external_id="u-race").count() == 1
