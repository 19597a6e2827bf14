"""Points as payment and order refunds over the API (api.md)."""

from __future__ import annotations

import pytest

from points.models import Entry, Lot
from points.services import check_ledger_invariants

pytestmark = pytest.mark.django_db


def balance(pos, external_id="u-1001") -> int:
    return pos.get(f"members/{external_id}").json()["points"]["available"]


def test_spend_takes_points_and_answers_their_cash_value(pos, member):
    pos.purchase("u-1001", "o-1", "800.00")

    response = pos.post("members/u-1001/points/spend", {"points": 500, "reference": "order-779"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cash_value"] == "5.00"
    assert body["currency"] == "CNY"
    assert body["entry"]["kind"] == "spend"
    assert body["entry"]["amount"] == -500
    assert body["entry"]["balance_after"] == 300
    assert balance(pos) == 300
    assert check_ledger_invariants() == []


def test_spend_beyond_the_balance_takes_nothing(pos, member):
    pos.purchase("u-1001", "o-1", "100.00")

    response = pos.post("members/u-1001/points/spend", {"points": 101})

    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_points"
    assert balance(pos) == 100
    assert not Entry.objects.filter(kind="spend").exists()


def test_spend_by_a_frozen_member_is_refused(pos, member):
    pos.purchase("u-1001", "o-1", "100.00")
    member.status = member.Status.FROZEN
    member.save()

    response = pos.post("members/u-1001/points/spend", {"points": 10})

    assert response.status_code == 422
    assert response.json()["code"] == "member_frozen"


def test_refund_of_a_spend_gives_the_points_back_to_the_lots_they_came_from(pos, member):
    pos.purchase("u-1001", "o-1", "100.00")
    pos.purchase("u-1001", "o-2", "100.00")
    pos.post("members/u-1001/points/spend", {"points": 150, "reference": "pay-1"})
    remaining_before = dict(Lot.objects.values_list("id", "remaining"))

    response = pos.post("orders/pay-1/refunds", {})

    assert response.status_code == 201, response.content
    assert balance(pos) == 200
    assert set(Lot.objects.values_list("remaining", flat=True)) == {100}
    assert remaining_before != dict(Lot.objects.values_list("id", "remaining"))
    assert check_ledger_invariants() == []


def test_full_refund_reverses_every_point_the_order_earned(pos, member):
    pos.purchase("u-1001", "o-1", "256.00")

    response = pos.post("orders/o-1/refunds", {})

    assert response.status_code == 201
    assert response.json()["points_reversed"] == 256
    assert [e["kind"] for e in response.json()["entries"]] == ["reverse"]
    assert balance(pos) == 0


def test_partial_refunds_reverse_in_proportion_and_add_up_to_the_whole(pos, member):
    pos.purchase("u-1001", "o-1", "256.00")

    first = pos.post("orders/o-1/refunds", {"amount": "100.00"})
    second = pos.post("orders/o-1/refunds", {"amount": "156.00"})

    assert first.json()["points_reversed"] == 100
    assert second.json()["points_reversed"] == 156
    assert balance(pos) == 0


def test_refunding_more_than_was_bought_is_refused(pos, member):
    pos.purchase("u-1001", "o-1", "50.00")
    pos.post("orders/o-1/refunds", {"amount": "30.00"})

    response = pos.post("orders/o-1/refunds", {"amount": "30.00"})

    assert response.status_code == 422
    assert response.json()["code"] == "already_refunded"
    assert balance(pos) == 20


def test_refund_of_an_unknown_order_is_not_found(pos, member):
    response = pos.post("orders/nope/refunds", {})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_partner_cannot_refund_another_partners_order(pos, member):
    from tests.ledger_api.conftest import PartnerApi

    pos.purchase("u-1001", "o-1", "50.00")
    other = PartnerApi("Other shop")

    response = other.post("orders/o-1/refunds", {})

    assert response.status_code == 404
    assert balance(pos) == 50


def test_ledger_lists_entries_newest_first_with_filters_and_pages(pos, member):
    for index in range(5):
        pos.purchase("u-1001", f"o-{index}", "10.00")
    pos.post("members/u-1001/points/spend", {"points": 5, "reference": "pay"})

    everything = pos.get("members/u-1001/ledger").json()
    spends = pos.get("members/u-1001/ledger", kind="spend").json()
    first_page = pos.get("members/u-1001/ledger", page_size=2).json()

    assert [e["kind"] for e in everything["results"]] == ["spend"] + ["earn"] * 5
    assert [e["balance_after"] for e in everything["results"]] == [45, 50, 40, 30, 20, 10]
    assert everything["next"] is None
    assert [e["amount"] for e in spends["results"]] == [-5]
    assert len(first_page["results"]) == 2
    assert first_page["next"]
    assert set(everything) == {"results", "next"}


def test_ledger_of_an_unknown_member_is_not_found(pos, db):
    response = pos.get("members/nobody/ledger")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
