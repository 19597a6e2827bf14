"""A frozen member can neither earn nor spend: `member_frozen`, and nothing changes."""

from __future__ import annotations

import pytest

from campaigns.models import Event
from members.models import GrowthEntry, Member
from members.services import member_set_status
from points.models import Account, Entry, Lot, Order, OutboxEvent
from tests.api.assertions import assert_problem
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen(pos, tiers):
    member = MemberFactory(external_id="u-1001", tier=tiers["member"])
    assert pos.purchase("u-1001", "o-1", "500.00").status_code == 201
    member_set_status(member=member, status=Member.Status.FROZEN, operator=None, reason="fraud")
    return member


def snapshot(member: Member) -> dict:
    account = Account.objects.get(member=member)
    return {
        "balance": (account.available, account.pending, account.lifetime_earned),
        "entries": Entry.objects.count(),
        "lots": list(Lot.objects.values_list("id", "remaining")),
        "orders": Order.objects.count(),
        "events": Event.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "growth": (Member.objects.get(pk=member.pk).growth, GrowthEntry.objects.count()),
    }


def test_a_frozen_members_purchase_is_refused_and_changes_nothing(pos, frozen):
    before = snapshot(frozen)

    response = pos.purchase("u-1001", "o-2", "800.00")

    assert_problem(response, 422, "member_frozen")
    assert snapshot(frozen) == before


def test_a_frozen_members_point_payment_is_refused_and_changes_nothing(pos, frozen):
    before = snapshot(frozen)

    response = pos.post("members/u-1001/points/spend", {"points": 100, "reference": "pay-1"})

    assert_problem(response, 422, "member_frozen")
    assert snapshot(frozen) == before


def test_after_unfreezing_the_member_earns_and_spends_again(pos, frozen):
    member_set_status(member=frozen, status=Member.Status.ACTIVE, operator=None, reason="cleared")

    assert pos.purchase("u-1001", "o-2", "10.00").status_code == 201
    assert pos.post("members/u-1001/points/spend", {"points": 100}).status_code == 201
    assert Account.objects.get(member=frozen).available == 410
