"""Operators run the catalogue and the fulfilment in the admin."""

from __future__ import annotations

import io

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile

from points.selectors import member_points_summary
from rewards_mall.admin import CouponCodeResource, WarehouseExportResource
from rewards_mall.models import CouponCode, Redemption, Reward
from rewards_mall.services import redeem
from tests.factories import RewardFactory

pytestmark = pytest.mark.django_db

ADDRESS = {"recipient": "王小明", "phone": "13800138000", "address": "长安街 1 号", "city": "北京"}
CHANGELIST = "/admin/rewards_mall/redemption/"


@pytest.fixture
def orders(member, reward):
    return [
        redeem(member=member, reward_code="tea-set", shipping_address=ADDRESS) for _ in range(3)
    ]


def test_the_catalogue_and_fulfilment_pages_open(admin_client, orders):
    for url in [
        "/admin/rewards_mall/reward/",
        "/admin/rewards_mall/reward/add/",
        f"/admin/rewards_mall/reward/{orders[0].reward_id}/change/",
        "/admin/rewards_mall/category/",
        "/admin/rewards_mall/couponcode/",
        "/admin/rewards_mall/couponcode/import/",
        CHANGELIST,
        f"{CHANGELIST}{orders[0].pk}/change/",
        f"{CHANGELIST}import-tracking/",
        f"{CHANGELIST}export/",
    ]:
        assert admin_client.get(url).status_code == 200, url
    tools = admin_client.get(CHANGELIST).content.decode()
    assert f"{CHANGELIST}import-tracking/" in tools and f"{CHANGELIST}export/" in tools


def test_redemptions_filter_by_status(admin_client, orders):
    from rewards_mall.services import mark_shipped

    mark_shipped(redemption=orders[0], tracking_number="SF1")

    shipped = admin_client.get(CHANGELIST, {"status__exact": "shipped"}).context["cl"]

    assert [r.pk for r in shipped.result_list] == [orders[0].pk]


def test_coupon_codes_imported_from_a_file_become_the_rewards_stock(db):
    RewardFactory(code="coffee", kind="coupon", points_price=10, stock=0)
    dataset = tablib.Dataset(headers=["reward", "code"])
    for code in ["K-1", "K-2", "K-3", "K-2"]:
        dataset.append(["coffee", code])

    result = CouponCodeResource().import_data(dataset, dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    assert CouponCode.objects.filter(reward__code="coffee").count() == 3
    assert Reward.objects.get(code="coffee").stock == 3


def test_codes_for_a_reward_that_is_not_a_coupon_are_refused(db, reward):
    dataset = tablib.Dataset(["tea-set", "X-1"], headers=["reward", "code"])

    result = CouponCodeResource().import_data(dataset, dry_run=False)

    assert result.has_errors()
    assert not CouponCode.objects.exists()


def test_a_coupon_rewards_stock_stays_its_unused_codes_when_edited_in_admin(admin_client):
    coupon = RewardFactory(code="coffee", kind="coupon", points_price=10, stock=0)
    CouponCodeResource().import_data(
        tablib.Dataset(["coffee", "K-1"], headers=["reward", "code"]), dry_run=False
    )
    form = (
        admin_client.get(f"/admin/rewards_mall/reward/{coupon.pk}/change/")
        .context["adminform"]
        .form
    )
    data = {k: v for k, v in form.initial.items() if v is not None and k != "tiers"}
    data.update({"points_price": 20, "stock": 999, "tier_prices-TOTAL_FORMS": 0})
    data.update({"tier_prices-INITIAL_FORMS": 0, "image": ""})

    response = admin_client.post(f"/admin/rewards_mall/reward/{coupon.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    coupon.refresh_from_db()
    assert (coupon.points_price, coupon.stock) == (20, 1)


def test_tracking_numbers_from_a_csv_file_mark_orders_shipped(admin_client, orders):
    content = (
        "redemption,tracking_number,carrier\n"
        f"{orders[0].pk},SF1001,SF\n"
        f"{orders[1].pk},SF1002,SF\n"
        "999999,SF1003,SF\n"
    )
    upload = SimpleUploadedFile("tracking.csv", content.encode(), content_type="text/csv")

    response = admin_client.post(f"{CHANGELIST}import-tracking/", {"file": upload}, follow=True)

    statuses = dict(Redemption.objects.values_list("pk", "status"))
    assert statuses == {orders[0].pk: "shipped", orders[1].pk: "shipped", orders[2].pk: "placed"}
    assert Redemption.objects.get(pk=orders[1].pk).tracking_number == "SF1002"
    shown = [str(m) for m in response.context["messages"]]
    assert any("2" in m for m in shown) and any("4" in m for m in shown)  # 2 shipped; line 4 bad


def test_tracking_numbers_from_an_xlsx_file_mark_orders_shipped(admin_client, orders):
    book = tablib.Dataset(headers=["redemption", "tracking_number"])
    book.append([orders[2].pk, "YT9"])
    upload = SimpleUploadedFile("tracking.xlsx", book.export("xlsx"))

    admin_client.post(f"{CHANGELIST}import-tracking/", {"file": upload})

    assert Redemption.objects.get(pk=orders[2].pk).tracking_number == "YT9"


def test_the_warehouse_export_has_what_is_needed_to_ship(orders):
    dataset = WarehouseExportResource().export(Redemption.objects.all())

    assert dataset.headers[:4] == ["id", "placed_at", "status", "reward"]
    rows = list(tablib.Dataset().load(io.StringIO(dataset.export("csv")).read(), format="csv"))
    assert len(rows) == 3
    first = dict(zip(dataset.headers, rows[0], strict=True))
    assert (first["recipient"], first["address"], first["city"]) == (
        "王小明",
        "长安街 1 号",
        "北京",
    )
    assert first["member"] == "u-1001" and first["reward"] == "tea-set"


def test_the_cancel_action_gives_points_and_stock_back(admin_client, member, orders):
    admin_client.post(
        CHANGELIST,
        {"action": "cancel_action", "_selected_action": [orders[0].pk, orders[1].pk]},
    )

    assert Redemption.objects.filter(status="cancelled").count() == 2
    assert member_points_summary(member=member)["available"] == 1000 - 300
    assert Reward.objects.get(code="tea-set").stock == 9
