"""POST /members/{external_id}/points/transfer (api.md "Transfers and exchange")."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from points import expiry, services
from points.models import Account, Entry, Lot, ProgrammeSettings, Transfer
from tests.factories import MemberFactory, OperatorFactory
from tests.transfers.conftest import SHANGHAI, at

pytestmark = pytest.mark.django_db


def available(external_id: str) -> int:
    return Account.objects.get(member__external_id=external_id).available


def transfer(pos, sender="u-alice", **body):
    return pos.post(f"members/{sender}/points/transfer", {"to": "u-bob", **body})


def test_a_transfer_writes_one_entry_on_each_side_and_moves_the_points(pos, alice, bob):
    response = transfer(pos, points=300, reference="gift-12")

    assert response.status_code == 201, response.content
    out, into = response.json()["entries"]
    assert (out["member"], out["kind"], out["amount"], out["balance_after"]) == (
        "u-alice",
        "transfer",
        -300,
        700,
    )
    assert (into["member"], into["kind"], into["amount"], into["balance_after"]) == (
        "u-bob",
        "transfer",
        300,
        1300,
    )
    assert out["reference"] == into["reference"] == "gift-12"
    assert out["merchant"] == into["merchant"] == "POS"
    assert (available("u-alice"), available("u-bob")) == (700, 1300)
    # The receiver's points are a new lot of their own.
    lot = Lot.objects.get(earn_entry_id=into["id"])
    assert (lot.amount, lot.remaining, lot.state) == (300, 300, "active")
    assert datetime.fromisoformat(into["expires_at"]) == lot.expires_at
    assert "expires_at" not in out
    transfer_row = Transfer.objects.get()
    assert (transfer_row.out_entry_id, transfer_row.in_entry_id) == (out["id"], into["id"])
    # Both members see it in their ledger.
    assert pos.get("members/u-bob/ledger", kind="transfer").json()["results"][0]["amount"] == 300
    assert pos.get("members/u-alice/ledger", kind="transfer").json()["results"][0]["amount"] == (
        -300
    )


def test_the_received_lot_expires_at_the_weighted_average_of_the_days_given(alice, bob):
    # given: besides alice's 1000 points (12 months), two lots expiring sooner
    soon = at("2025-06-10 23:59:59.999999")
    later = at("2025-06-20 23:59:59.999999")
    services.earn(member=alice, points=100, expires_at=soon)
    services.earn(member=alice, points=300, expires_at=later)

    # when: 200 are given: FIFO takes 100 expiring on the 10th and 100 on the 20th
    result = services.transfer_points(sender=alice, recipient=bob, points=200)

    # then: the new lot expires at the end of the 15th, no later than the points it carries
    assert result.lot.expires_at == expiry.end_of_day(at("2025-06-15 00:00").date(), SHANGHAI)
    assert result.lot.amount == 200


def test_the_average_is_rounded_down_to_a_whole_day(alice, bob):
    services.earn(member=alice, points=1, expires_at=at("2025-06-10 23:59:59.999999"))
    services.earn(member=alice, points=1, expires_at=at("2025-06-11 23:59:59.999999"))

    result = services.transfer_points(sender=alice, recipient=bob, points=2)

    assert result.lot.expires_at == expiry.end_of_day(at("2025-06-10 00:00").date(), SHANGHAI)


def test_giving_points_back_and_forth_never_extends_their_life(alice, bob):
    expires = at("2025-06-10 23:59:59.999999")
    carol = MemberFactory(external_id="u-carol")
    dave = MemberFactory(external_id="u-dave")
    services.earn(member=carol, points=50, expires_at=expires)

    services.transfer_points(sender=carol, recipient=dave, points=50)
    result = services.transfer_points(sender=dave, recipient=carol, points=50)

    assert result.lot.expires_at == expires


def test_points_that_never_expire_stay_so_when_given(alice, bob):
    carol = MemberFactory(external_id="u-carol")
    services.earn(member=carol, points=80, expires_at=None)
    lot = Lot.objects.get(account__member=carol)
    assert lot.expires_at is not None  # earn without a date takes the policy ...
    Lot.objects.filter(pk=lot.pk).update(expires_at=None)  # ... a "never" tier would not

    result = services.transfer_points(sender=carol, recipient=bob, points=80)

    assert result.lot.expires_at is None


def test_never_expiring_points_in_a_mix_count_as_received_today(alice, bob):
    carol = MemberFactory(external_id="u-carol")
    services.earn(member=carol, points=50, expires_at=at("2025-06-10 23:59:59.999999"))
    services.earn(member=carol, points=50)
    never = Lot.objects.filter(account__member=carol).order_by("-id").first()
    Lot.objects.filter(pk=never.pk).update(expires_at=None)
    now = at("2025-06-01 12:00")

    result = services.transfer_points(sender=carol, recipient=bob, points=100, now=now)

    fresh = expiry.lot_expiry(now, programme=ProgrammeSettings.get(), tier=bob.tier)
    middle = (at("2025-06-10 00:00").date().toordinal() + fresh.date().toordinal()) // 2
    assert result.lot.expires_at.astimezone(SHANGHAI).date().toordinal() == middle


def test_a_transfer_beyond_the_balance_moves_nothing(pos, alice, bob):
    response = transfer(pos, points=1001)

    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_points"
    assert (available("u-alice"), available("u-bob")) == (1000, 1000)
    assert not Entry.objects.filter(kind="transfer").exists()
    assert not Transfer.objects.exists()


def test_a_member_without_an_account_has_nothing_to_give(pos, bob):
    MemberFactory(external_id="u-new")

    response = transfer(pos, sender="u-new", points=1)

    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_points"


@pytest.mark.parametrize("frozen", ["u-alice", "u-bob"])
def test_a_frozen_member_on_either_side_is_refused(pos, alice, bob, frozen):
    member = alice if frozen == "u-alice" else bob
    member.status = member.Status.FROZEN
    member.save()

    response = transfer(pos, points=10)

    assert response.status_code == 422
    assert response.json()["code"] == "member_frozen"
    assert (available("u-alice"), available("u-bob")) == (1000, 1000)


def test_unknown_or_same_receiver_is_a_validation_error(pos, alice, bob):
    unknown = pos.post("members/u-alice/points/transfer", {"to": "u-nobody", "points": 10})
    same = pos.post("members/u-alice/points/transfer", {"to": "u-alice", "points": 10})
    sender_unknown = pos.post("members/u-nobody/points/transfer", {"to": "u-bob", "points": 10})
    bad_points = transfer(pos, points=0)

    assert (unknown.status_code, unknown.json()["code"]) == (422, "validation_error")
    assert (same.status_code, same.json()["code"]) == (422, "validation_error")
    assert (sender_unknown.status_code, sender_unknown.json()["code"]) == (404, "not_found")
    assert (bad_points.status_code, bad_points.json()["code"]) == (400, "validation_error")
    assert "points" in bad_points.json()["errors"]
    assert not Transfer.objects.exists()


def test_a_reference_names_one_transfer(pos, alice, bob):
    first = transfer(pos, points=10, reference="gift-1")
    again = transfer(pos, points=10, reference="gift-1")

    assert first.status_code == 201
    assert (again.status_code, again.json()["code"]) == (422, "validation_error")
    assert available("u-alice") == 990


def test_the_same_idempotency_key_replays_and_moves_the_points_once(pos, alice, bob):
    body = {"to": "u-bob", "points": 250, "reference": "gift-7"}

    first = pos.post("members/u-alice/points/transfer", body, key="k-1")
    second = pos.post("members/u-alice/points/transfer", body, key="k-1")
    other = pos.post("members/u-alice/points/transfer", {**body, "points": 1}, key="k-1")
    missing = pos.client.post("/api/v1/members/u-alice/points/transfer", body, format="json")

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert (missing.status_code, missing.json()["code"]) == (400, "validation_error")
    assert Transfer.objects.count() == 1
    assert (available("u-alice"), available("u-bob")) == (750, 1250)


def test_a_refusal_is_replayed_too(pos, alice, bob):
    body = {"to": "u-bob", "points": 5000}

    first = pos.post("members/u-alice/points/transfer", body, key="k-2")
    services.earn(member=alice, points=5000)
    second = pos.post("members/u-alice/points/transfer", body, key="k-2")

    assert first.json()["code"] == second.json()["code"] == "insufficient_points"
    assert second.headers["Idempotent-Replayed"] == "true"


def test_a_key_without_the_points_spend_scope_is_forbidden(partner_api, alice, bob):
    client = partner_api("members:read")

    response = client.post(
        "/api/v1/members/u-alice/points/transfer",
        {"to": "u-bob", "points": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_received_points_pay_a_debt_first(alice, bob):
    carol = MemberFactory(external_id="u-carol")
    Account.objects.filter(pk=services.account_for_member(member=carol).pk).update(credit_limit=100)
    services.adjust(member=carol, points=-60, reason="correction", operator=OperatorFactory())

    result = services.transfer_points(sender=alice, recipient=carol, points=100)

    assert result.in_entry.balance_after == 40
    assert Lot.objects.get(pk=result.lot.pk).remaining == 40


def test_the_ledger_entries_expire_like_any_other_points(alice, bob):
    expires = at("2025-06-10 23:59:59.999999")
    services.earn(member=alice, points=100, expires_at=expires)
    services.transfer_points(sender=alice, recipient=bob, points=100)

    lots = services.expire_lots(as_of=expires + timedelta(seconds=1))

    assert lots == 1
    assert available("u-bob") == 1000


def test_the_database_refuses_a_second_transfer_with_the_same_reference(alice, bob):
    first = services.transfer_points(sender=alice, recipient=bob, points=1, reference="gift-1")
    services.transfer_points(sender=alice, recipient=bob, points=1)  # no reference: no claim
    services.transfer_points(sender=alice, recipient=bob, points=1)

    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(
            reference="gift-1",
            from_account_id=first.transfer.from_account_id,
            to_account_id=first.transfer.to_account_id,
            points=1,
            created_at=first.transfer.created_at,
        )
    assert Transfer.objects.count() == 3
