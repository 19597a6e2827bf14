"""Tiers qualify on growth value over the rolling window: up at once, down only at period end."""

from __future__ import annotations

from datetime import timedelta

import pgtrigger
import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.utils import timezone

from members.models import GrowthEntry, Member, TierChange
from members.selectors import member_tier_status
from members.services import evaluate_tiers, growth_adjust
from members.tasks import evaluate_tiers as evaluate_tiers_task
from points.models import Lot, OutboxEvent
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def fresh(member: Member) -> Member:
    return Member.objects.select_related("tier").get(pk=member.pk)


def backdate(entry_id: int, counts_at) -> None:
    """Move a growth entry in time; the table is append-only, so the test lifts its trigger."""
    with pgtrigger.ignore("members.GrowthEntry:growthentry_append_only"):
        GrowthEntry.objects.filter(pk=entry_id).update(counts_at=counts_at)


@pytest.fixture
def member(tiers):
    return MemberFactory(external_id="u-1001", tier=tiers["member"])


# --- Boundaries and upgrades ---------------------------------------------------------------
def test_one_point_below_the_threshold_keeps_the_tier(pos, member):
    assert pos.purchase("u-1001", "o-1", "999.00").status_code == 201

    member = fresh(member)
    assert member.growth == 999
    assert member.tier.code == "member"
    assert not TierChange.objects.exists()


def test_exactly_the_threshold_upgrades_at_once_with_history_and_event(pos, member):
    pos.purchase("u-1001", "o-1", "999.00")

    assert pos.purchase("u-1001", "o-2", "1.00").status_code == 201

    member = fresh(member)
    assert (member.growth, member.tier.code) == (1000, "silver")
    change = TierChange.objects.get()
    assert (change.from_tier.code, change.to_tier.code, change.reason, change.growth) == (
        "member",
        "silver",
        "upgrade",
        1000,
    )
    assert member.tier_period_ends_at > timezone.now() + timedelta(days=360)
    event = OutboxEvent.objects.get(type="tier.changed")
    assert event.member_external_id == "u-1001"
    assert event.payload | {"changed_at": None} == {
        "member": "u-1001",
        "from": "member",
        "to": "silver",
        "reason": "upgrade",
        "growth": 1000,
        "changed_at": None,
    }


def test_a_large_purchase_jumps_straight_to_the_tier_it_reaches(pos, member):
    pos.purchase("u-1001", "o-1", "6500.00")

    assert fresh(member).tier.code == "diamond"
    assert TierChange.objects.get().to_tier.code == "diamond"


def test_growth_rate_is_configurable_and_rounds_down(pos, member, growth_settings):
    growth_settings(growth_per_unit="1.5")

    pos.purchase("u-1001", "o-1", "99.99")

    assert fresh(member).growth == 149  # 149.985 rounded down
    assert GrowthEntry.objects.get().amount == 149


def test_growth_that_left_the_window_no_longer_counts(member, tiers):
    now = timezone.now()
    growth_adjust(member=member, amount=500, reason="old bonus")
    backdate(GrowthEntry.objects.get().pk, now - timedelta(days=400))

    growth_adjust(member=member, amount=600, reason="new bonus")

    assert fresh(member).growth == 600
    assert fresh(member).tier.code == "member"


def test_growth_entries_are_append_only_in_the_database(member):
    growth_adjust(member=member, amount=10, reason="goodwill")
    with pytest.raises(DatabaseError), transaction.atomic():
        GrowthEntry.objects.update(amount=1000)
    with pytest.raises(DatabaseError), transaction.atomic():
        GrowthEntry.objects.all().delete()
    assert GrowthEntry.objects.get().amount == 10


# --- Downgrades at the end of the period only -----------------------------------------------
def test_a_refund_below_the_threshold_does_not_downgrade_before_the_period_ends(pos, member):
    pos.purchase("u-1001", "o-1", "1200.00")
    assert fresh(member).tier.code == "silver"

    assert pos.refund("o-1", "400.00").status_code == 201

    member = fresh(member)
    assert member.growth == 800
    assert member.tier.code == "silver"
    evaluate_tiers(as_of=timezone.now())
    assert fresh(member).tier.code == "silver"

    body = pos.get("members/u-1001").json()
    assert body["tier"]["code"] == "silver"
    assert body["growth"] == 800
    # Growth earned before the period began has left the window at its end: to keep silver,
    # 1,000 must be earned within the period.
    assert body["projected_tier"]["code"] == "member"
    assert body["growth_to_keep_tier"] == 1000
    assert body["next_tier"] == {"code": "gold", "growth_needed": 2200}


def test_refunds_take_back_growth_in_proportion_and_a_full_refund_takes_it_all(pos, member):
    pos.purchase("u-1001", "o-1", "300.00")

    pos.refund("o-1", "100.00")
    assert fresh(member).growth == 200
    pos.refund("o-1", "0.50")
    assert fresh(member).growth == 200  # floor of the cumulative share: 300 x 100.50 / 300
    pos.refund("o-1", "0.50")
    assert fresh(member).growth == 199  # 300 x 101.00 / 300
    pos.refund("o-1")

    assert fresh(member).growth == 0
    amounts = list(GrowthEntry.objects.order_by("id").values_list("kind", "amount"))
    assert amounts == [("purchase", 300), ("refund", -100), ("refund", -1), ("refund", -199)]


def test_a_replayed_refund_takes_growth_back_once(pos, member):
    pos.purchase("u-1001", "o-1", "300.00")
    body = {"amount": "100.00"}
    for _ in range(2):
        response = pos.client.post(
            "/api/v1/orders/o-1/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key"
        )
        assert response.status_code == 201

    assert fresh(member).growth == 200


def test_downgrade_happens_at_period_end_by_at_most_the_configured_tiers(
    pos, member, growth_settings
):
    pos.purchase("u-1001", "o-1", "6000.00")
    member = fresh(member)
    assert member.tier.code == "diamond"
    period_end = member.tier_period_ends_at

    evaluate_tiers(as_of=period_end - timedelta(seconds=1))
    assert fresh(member).tier.code == "diamond"

    # At the period's end the purchase has left the 12-month window: growth 0 holds nothing.
    run = evaluate_tiers(as_of=period_end + timedelta(seconds=1))
    member = fresh(member)
    assert (member.tier.code, member.growth) == ("gold", 0)  # one tier down at most
    assert run.downgraded == 1
    assert member.tier_period_ends_at > period_end + timedelta(days=360)
    change = TierChange.objects.latest("id")
    assert (change.from_tier.code, change.to_tier.code, change.reason) == (
        "diamond",
        "gold",
        "period_end",
    )

    growth_settings(max_tiers_down=2)
    evaluate_tiers(as_of=member.tier_period_ends_at + timedelta(seconds=1))
    member = fresh(member)
    assert member.tier.code == "member"
    assert member.tier_period_ends_at is None  # the entry tier has no period


def test_a_member_whose_growth_still_holds_the_tier_keeps_it_for_a_new_period(pos, member):
    pos.purchase("u-1001", "o-1", "1500.00")
    first_end = fresh(member).tier_period_ends_at
    # Growth earned late in the period still counts at its end.
    growth_adjust(member=member, amount=1200, reason="kept active")
    backdate(GrowthEntry.objects.latest("id").pk, first_end - timedelta(days=30))

    evaluate_tiers(as_of=first_end + timedelta(seconds=1))

    member = fresh(member)
    assert member.tier.code == "silver"
    assert member.tier_period_ends_at > first_end
    assert TierChange.objects.count() == 1  # only the upgrade


def test_evaluate_tiers_is_idempotent_and_runs_as_command_and_task(pos, member):
    pos.purchase("u-1001", "o-1", "3000.00")
    end = fresh(member).tier_period_ends_at
    as_of = end + timedelta(hours=1)

    call_command("evaluate_tiers", "--as-of", as_of.isoformat())
    after_first = fresh(member)
    result = evaluate_tiers_task(as_of=as_of.isoformat())

    assert result["downgraded"] == 0
    assert fresh(member).tier == after_first.tier
    assert after_first.tier.code == "silver"
    assert TierChange.objects.filter(reason="period_end").count() == 1


def test_evaluate_tiers_upgrades_when_an_operator_lowers_a_threshold(member, tiers):
    growth_adjust(member=member, amount=900, reason="goodwill")
    tiers["silver"].growth_threshold = 900
    tiers["silver"].save()

    run = evaluate_tiers()

    assert run.upgraded == 1
    assert fresh(member).tier.code == "silver"


# --- The projection and progress --------------------------------------------------------------
def test_tier_status_names_the_next_tier_and_the_projection(pos, member):
    pos.purchase("u-1001", "o-1", "3200.00")

    status = member_tier_status(member=fresh(member))

    assert status.tier.code == "gold"
    assert (status.next_tier.code, status.growth_needed) == ("diamond", 2800)
    assert status.projected_tier.code == "silver"  # all of it leaves the window by then
    assert status.growth_to_keep == 3000


def test_the_top_tier_has_no_next_tier(pos, member):
    pos.purchase("u-1001", "o-1", "7000.00")

    body = pos.get("members/u-1001").json()

    assert body["tier"]["code"] == "diamond"
    assert body["next_tier"] is None


def test_the_entry_tier_projects_itself_and_has_no_period(pos, member):
    body = pos.get("members/u-1001").json()

    assert body["tier"]["code"] == "member"
    assert body["projected_tier"]["code"] == "member"
    assert body["tier_period_ends_at"] is None
    assert body["next_tier"] == {"code": "silver", "growth_needed": 1000}


def test_the_tier_name_follows_the_request_language(pos, member):
    pos.purchase("u-1001", "o-1", "1000.00")

    english = pos.client.get("/api/v1/members/u-1001", HTTP_ACCEPT_LANGUAGE="en").json()
    chinese = pos.client.get("/api/v1/members/u-1001", HTTP_ACCEPT_LANGUAGE="zh-hans").json()

    assert english["tier"] == {"code": "silver", "name": "Silver"}
    assert chinese["tier"] == {"code": "silver", "name": "银卡"}


# --- Expiry policy of the tier on new lots -------------------------------------------------------
def test_lots_earned_after_an_upgrade_get_the_tiers_expiry_and_old_lots_keep_theirs(
    pos, member, tiers
):
    tiers["silver"].expiry_policy = "never"
    tiers["silver"].save()
    tiers["gold"].expiry_policy = "rolling_months"
    tiers["gold"].expiry_period = 24
    tiers["gold"].save()

    pos.purchase("u-1001", "o-1", "1000.00")  # earned in the entry tier, then upgraded
    first = Lot.objects.get(earn_entry__reference="o-1")
    first_expiry = first.expires_at
    assert first_expiry is not None
    assert timedelta(days=360) < first_expiry - timezone.now() < timedelta(days=370)

    pos.purchase("u-1001", "o-2", "100.00")  # silver: never expires
    assert Lot.objects.get(earn_entry__reference="o-2").expires_at is None

    pos.purchase("u-1001", "o-3", "2000.00")  # still silver while earning, then gold
    pos.purchase("u-1001", "o-4", "10.00")  # gold: 24 months
    fourth = Lot.objects.get(earn_entry__reference="o-4")
    assert timedelta(days=725) < fourth.expires_at - timezone.now() < timedelta(days=735)

    first.refresh_from_db()
    assert first.expires_at == first_expiry
