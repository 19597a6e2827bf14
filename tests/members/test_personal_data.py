"""PIPL: export one member's data, erase a member keeping the ledger's numbers."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from members.exceptions import MemberErased
from members.models import GrowthEntry, Member, MemberStatusChange
from members.selectors import member_search
from members.services import erase_member
from points.models import Account, Entry, OutboxEvent
from points.services import check_ledger_invariants
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(pos, tiers):
    member = MemberFactory(
        external_id="u-1001", name="王小明", phone="13812345678", email="xm@example.com"
    )
    pos.purchase("u-1001", "o-1", "1200.00")
    pos.post("members/u-1001/points/spend", {"points": 200, "reference": "pay-1"})
    return Member.objects.get(pk=member.pk)


def test_export_command_prints_everything_held_about_the_member(member, capsys):
    call_command("export_member_data", "u-1001")

    data = json.loads(capsys.readouterr().out)
    assert data["member"]["external_id"] == "u-1001"
    assert data["member"]["phone"] == "13812345678"
    assert data["tier"]["code"] == "silver"
    assert [row["amount"] for row in data["growth_entries"]] == [1200]
    assert [row["to_tier__code"] for row in data["tier_history"]] == ["silver"]
    assert [row["kind"] for row in data["ledger"]] == ["earn", "spend"]
    assert data["points"]["available"] == 1000


def test_export_of_an_unknown_member_is_an_error():
    with pytest.raises(CommandError):
        call_command("export_member_data", "nobody")


def test_erasure_anonymises_and_closes_but_keeps_every_ledger_number(member):
    account = Account.objects.get(member=member)
    entries = list(Entry.objects.values_list("id", "amount", "balance_after"))

    erase_member(member=member, operator=None, reason="PIPL request 42")

    erased = Member.objects.get(pk=member.pk)
    assert erased.external_id == f"erased-{member.pk}"
    assert (erased.name, erased.phone, erased.email, erased.birthday) == ("", "", "", None)
    assert erased.status == "closed" and not erased.marketing_consent
    assert MemberStatusChange.objects.get(member=erased).reason == "PIPL request 42"
    account.refresh_from_db()
    assert (account.available, account.lifetime_earned) == (1000, 1200)
    assert list(Entry.objects.values_list("id", "amount", "balance_after")) == entries
    assert GrowthEntry.objects.filter(member=erased).count() == 1
    assert not OutboxEvent.objects.filter(member_external_id="u-1001").exists()
    assert check_ledger_invariants() == []


def test_an_erased_member_can_no_longer_be_found(pos, member):
    erase_member(member=member, operator=None, reason="PIPL request 42")

    for term in ("13812345678", "xm@example.com", "u-1001", "王小明"):
        assert not member_search(queryset=Member.objects.all(), term=term).exists(), term
    assert pos.get("members/u-1001").status_code == 404


def test_erasing_twice_is_refused(member):
    erase_member(member=member, operator=None, reason="first")

    with pytest.raises(MemberErased):
        erase_member(member=Member.objects.get(pk=member.pk), operator=None, reason="again")


def test_the_erase_command_needs_a_reason_and_erases(member):
    with pytest.raises(CommandError):
        call_command("erase_member", "u-1001")

    call_command("erase_member", "u-1001", "--reason", "PIPL request 42")

    assert Member.objects.get(pk=member.pk).phone == ""


def test_erasure_also_clears_what_the_mall_and_the_event_log_hold(member):
    # given: an address on a redemption, a mall password and login link, an event with attributes
    from campaigns.models import Event
    from rewards_mall.models import MallCredential, MallLoginLink, Redemption
    from rewards_mall.services import create_mall_link, redeem, set_mall_password
    from tests.factories import RewardFactory

    RewardFactory(code="tea-set", points_price=100)
    address = {"name": "王小明", "phone": "13812345678", "line1": "上海市 南京西路 1 号"}
    redemption = redeem(member=member, reward_code="tea-set", shipping_address=address)
    set_mall_password(member=member, raw="correct horse battery")
    create_mall_link(member=member)
    Event.objects.filter(member=member).update(
        payload={"member": "u-1001", "amount": "1200.00", "attributes": {"ip": "10.1.2.3"}}
    )

    # when
    erase_member(member=member, operator=None, reason="PIPL request 43")

    # then
    redemption.refresh_from_db()
    assert redemption.shipping_address == {"erased": True}
    assert redemption.points_spent == 100
    assert not MallCredential.objects.filter(member=member).exists()
    assert not MallLoginLink.objects.filter(member=member).exists()
    payload = Event.objects.get(member=member).payload
    assert payload == {"member": f"erased-{member.pk}", "amount": "1200.00"}
    assert Redemption.objects.filter(member=member).count() == 1
