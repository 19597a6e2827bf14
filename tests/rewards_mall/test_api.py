"""The partner API of rewards and redemptions, exactly as api.md describes it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from members.models import Member
from points.selectors import member_points_summary
from rewards_mall.models import MallLoginLink, Redemption, Reward, TierPrice
from rewards_mall.services import import_coupon_codes
from tests.api.assertions import assert_problem
from tests.factories import RewardCategoryFactory, RewardFactory, TierFactory
from tests.ledger_api.conftest import PartnerApi

pytestmark = pytest.mark.django_db

ADDRESS = {"recipient": "王小明", "phone": "13800138000", "address": "长安街 1 号", "city": "北京"}


@pytest.fixture
def shop(db) -> PartnerApi:
    return PartnerApi("Shop")


@pytest.fixture
def app(db) -> PartnerApi:
    return PartnerApi("Member app")


def available(member: Member) -> int:
    return member_points_summary(member=member)["available"]


# --- GET /rewards -------------------------------------------------------------------------------
def test_the_reward_list_has_the_fields_of_api_md(shop, reward):
    body = shop.get("rewards").json()

    assert body["next"] is None
    assert len(body["results"]) == 1
    item = body["results"][0]
    assert set(item) >= {
        "code",
        "name",
        "category",
        "kind",
        "points_price",
        "cash_price",
        "stock_left",
        "per_member_limit",
        "available_from",
        "available_until",
        "tiers",
    }
    assert (item["code"], item["kind"], item["points_price"], item["stock_left"]) == (
        "tea-set",
        "physical",
        300,
        10,
    )
    assert item["tiers"] == [] and item["cash_price"] is None


def test_rewards_filter_by_category(shop):
    drinks = RewardCategoryFactory(code="drinks")
    RewardFactory(code="tea", category=drinks)
    RewardFactory(code="mug")

    codes = [r["code"] for r in shop.get("rewards", category="drinks").json()["results"]]

    assert codes == ["tea"]


def test_affordable_for_lists_what_the_member_may_redeem_at_their_price(shop, member):
    gold = TierFactory(code="gold", rank=3)
    cheap_for_gold = RewardFactory(code="cheap-for-gold", points_price=5000)
    TierPrice.objects.create(reward=cheap_for_gold, tier=gold, points_price=800)
    RewardFactory(code="affordable", points_price=1000)
    RewardFactory(code="too-dear", points_price=1001)
    RewardFactory(code="gold-only", points_price=10).tiers.add(gold)
    RewardFactory(code="inactive", points_price=10, is_active=False)

    before = [r["code"] for r in shop.get("rewards", affordable_for="u-1001").json()["results"]]
    member.tier = gold
    member.save()
    after = {
        r["code"]: r["points_price"]
        for r in shop.get("rewards", affordable_for="u-1001").json()["results"]
    }

    assert before == ["affordable"]
    assert after == {"cheap-for-gold": 800, "affordable": 1000, "gold-only": 10}


def test_affordable_for_an_unknown_member_is_not_found(shop):
    assert_problem(shop.get("rewards", affordable_for="nobody"), 404, "not_found")


def test_listing_rewards_needs_the_rewards_read_scope(db):
    assert_problem(
        PartnerApi("X", scopes=["members:read"]).get("rewards"), 403, "permission_denied"
    )


# --- PUT /rewards/{code} -------------------------------------------------------------------
def test_put_reward_creates_then_updates(shop):
    gold = TierFactory(code="gold", rank=3)
    body = {
        "name": "蓝牙耳机",
        "category": "electronics",
        "kind": "physical",
        "points_price": 5000,
        "cash_price": "99.00",
        "stock": 20,
        "per_member_limit": 1,
        "available_from": "2025-01-01T00:00:00+08:00",
        "available_until": "2099-01-01T00:00:00+08:00",
        "tiers": ["gold"],
        "active": True,
    }

    created = shop.client.put("/api/v1/rewards/earbuds", body, format="json")
    updated = shop.client.put("/api/v1/rewards/earbuds", {"stock": 15}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["cash_price"] == "99.00"
    assert created.json()["tiers"] == ["gold"]
    assert updated.status_code == 200
    assert (updated.json()["stock_left"], updated.json()["points_price"]) == (15, 5000)
    reward = Reward.objects.get(code="earbuds")
    assert list(reward.tiers.all()) == [gold]
    assert reward.partner == shop.partner


def test_put_reward_refuses_an_unknown_tier_and_a_new_reward_without_a_price(shop):
    unknown = shop.client.put(
        "/api/v1/rewards/x", {"name": "x", "points_price": 1, "tiers": ["?"]}, format="json"
    )
    no_price = shop.client.put("/api/v1/rewards/y", {"name": "y"}, format="json")

    assert_problem(unknown, 400, "validation_error")
    assert_problem(no_price, 422, "validation_error")
    assert not Reward.objects.exists()


def test_put_reward_cannot_set_a_coupon_rewards_stock(shop):
    coupon = RewardFactory(code="coffee", kind="coupon", stock=0)
    import_coupon_codes(reward=coupon, codes=["A", "B"])

    response = shop.client.put("/api/v1/rewards/coffee", {"stock": 100}, format="json")

    assert_problem(response, 422, "validation_error")


# --- POST /redemptions ---------------------------------------------------------------------
def test_post_redemption_answers_201_with_the_order(shop, member, reward):
    response = shop.post(
        "redemptions", {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "status", "points_spent", "cash_due", "coupon_codes"} <= set(body)
    assert (body["status"], body["points_spent"], body["cash_due"], body["coupon_codes"]) == (
        "placed",
        300,
        "0.00",
        [],
    )
    assert available(member) == 700


def test_a_coupon_redemption_answers_with_its_codes(shop, member):
    coupon = RewardFactory(code="coffee", kind="coupon", points_price=50, stock=0)
    import_coupon_codes(reward=coupon, codes=["C-1", "C-2", "C-3"])

    body = shop.post("redemptions", {"member": "u-1001", "reward": "coffee", "quantity": 2}).json()

    assert body["coupon_codes"] == ["C-1", "C-2"]
    assert shop.get("rewards").json()["results"][0]["stock_left"] == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"stock": 0}, "out_of_stock"),
        ({"points_price": 2000}, "insufficient_points"),
        ({"is_active": False}, "reward_unavailable"),
    ],
)
def test_a_refused_redemption_answers_422_with_its_code_and_takes_nothing(
    shop, member, reward, change, code
):
    Reward.objects.filter(pk=reward.pk).update(**change)

    response = shop.post(
        "redemptions", {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    )

    assert_problem(response, 422, code)
    assert available(member) == 1000
    assert not Redemption.objects.exists()


def test_over_the_per_member_limit_is_limit_exceeded(shop, member, reward):
    Reward.objects.filter(pk=reward.pk).update(per_member_limit=1)
    body = {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    shop.post("redemptions", body)

    assert_problem(shop.post("redemptions", body), 422, "limit_exceeded")
    assert available(member) == 700


def test_the_same_idempotency_key_redeems_once(shop, member, reward):
    body = {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}

    first = shop.post("redemptions", body, key="redeem-1")
    again = shop.post("redemptions", body, key="redeem-1")

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Redemption.objects.count() == 1
    assert available(member) == 700


def test_post_redemption_needs_an_idempotency_key(shop, member, reward):
    response = shop.client.post(
        "/api/v1/redemptions", {"member": "u-1001", "reward": "tea-set"}, format="json"
    )

    assert_problem(response, 400, "validation_error")


# --- GET /redemptions/{id}, cancel ---------------------------------------------------------
def test_a_partner_reads_and_cancels_its_own_redemption(shop, member, reward):
    placed = shop.post(
        "redemptions", {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    ).json()

    read = shop.get(f"redemptions/{placed['id']}")
    cancelled = shop.post(f"redemptions/{placed['id']}/cancel", {"reason": "customer asked"})

    assert read.status_code == 200 and read.json()["status"] == "placed"
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert available(member) == 1000
    assert shop.get("rewards").json()["results"][0]["stock_left"] == 10


def test_another_partner_can_neither_see_nor_cancel_a_redemption(shop, app, member, reward):
    placed = shop.post(
        "redemptions", {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    ).json()

    assert_problem(app.get(f"redemptions/{placed['id']}"), 404, "not_found")
    assert_problem(app.post(f"redemptions/{placed['id']}/cancel"), 404, "not_found")
    assert Redemption.objects.get().status == "placed"
    assert available(member) == 700


def test_a_shipped_redemption_cannot_be_cancelled(shop, member, reward):
    from rewards_mall.services import mark_shipped

    placed = shop.post(
        "redemptions", {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    ).json()
    mark_shipped(redemption=Redemption.objects.get(pk=placed["id"]), tracking_number="SF1")

    assert_problem(shop.post(f"redemptions/{placed['id']}/cancel"), 422, "validation_error")
    assert available(member) == 700


def test_an_unknown_redemption_is_not_found(shop):
    assert_problem(shop.get("redemptions/424242"), 404, "not_found")


# --- POST /members/{id}/mall-link --------------------------------------------------------
def test_a_mall_link_logs_the_member_in_once_within_five_minutes(shop, member, client):
    response = shop.post("members/u-1001/mall-link")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"url", "expires_at"}
    link = MallLoginLink.objects.get()
    assert (link.expires_at - link.created_at).total_seconds() == pytest.approx(300, abs=2)
    path = urlsplit(body["url"]).path
    assert path.startswith("/mall/enter/")
    first = client.get(path)
    assert (first.status_code, first["Location"]) == (302, "/mall/")
    assert client.get("/mall/").status_code == 200
    assert client.get(path).status_code == 400  # single use
    assert MallLoginLink.objects.get().used_at is not None


def test_a_mall_link_needs_members_write_and_a_known_member(db, member):
    reader = PartnerApi("Reader", scopes=["members:read"])
    writer = PartnerApi("Writer", scopes=["members:write"])

    assert_problem(reader.post("members/u-1001/mall-link"), 403, "permission_denied")
    assert_problem(writer.post("members/nobody/mall-link"), 404, "not_found")


# --- OpenAPI -----------------------------------------------------------------------------------
def test_the_openapi_document_describes_the_mall_endpoints(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    paths = schema["paths"]

    assert set(paths["/api/v1/rewards"]) == {"get"}
    assert set(paths["/api/v1/rewards/{code}"]) == {"put"}
    assert set(paths["/api/v1/redemptions"]) == {"post"}
    assert set(paths["/api/v1/redemptions/{redemption_id}"]) == {"get"}
    assert set(paths["/api/v1/redemptions/{redemption_id}/cancel"]) == {"post"}
    assert set(paths["/api/v1/members/{external_id}/mall-link"]) == {"post"}
    create = paths["/api/v1/redemptions"]["post"]
    assert set(create["responses"]) >= {"201", "400", "401", "403", "409", "422"}
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert set(paths["/api/v1/rewards/{code}"]["put"]["responses"]) >= {"200", "201", "422"}
    output = schema["components"]["schemas"]["RedemptionOutput"]["properties"]
    assert {"id", "status", "points_spent", "cash_due", "coupon_codes"} <= set(output)
    reward = schema["components"]["schemas"]["RewardOutput"]["properties"]
    assert {"code", "stock_left", "per_member_limit", "available_from", "tiers"} <= set(reward)


def test_a_mall_link_uses_the_public_address_when_one_is_set(shop, member, settings):
    settings.MALL_BASE_URL = "https://shop.example.com/"

    url = shop.post("members/u-1001/mall-link").json()["url"]

    assert url.startswith("https://shop.example.com/mall/enter/")
