"""Anomaly review (issue 8, item 2): an event over a limit is stored and answered
`held_for_review: true` with no points; approval grants exactly its points, once; rejection
keeps the reason; nothing is wiped (docs/adr/0018)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.exceptions import HeldEventNotApprovable
from campaigns.models import EarningRule, Event, HeldEvent, MemberTask, RuleUsage
from members.models import CheckIn
from points import services
from points.exceptions import IssuanceFrozen
from points.models import Account, Entry, Order
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def available(external_id: str = "u-1001") -> int:
    account = Account.objects.filter(member__external_id=external_id).first()
    return account.available if account else 0


def assert_held(response) -> dict:
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["held_for_review"] is True
    assert (body["points_awarded"], body["points_pending"], body["entries"]) == (0, 0, [])
    return body


def assert_not_held(response, points: int) -> dict:
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["held_for_review"] is False
    assert body["points_awarded"] == points
    return body


def hold_of(body: dict) -> HeldEvent:
    return HeldEvent.objects.get(event_id=body["event_id"])


def local_noon_yesterday():
    programme = services.programme_settings()
    yesterday = timezone.now().astimezone(programme.zone) - timedelta(days=1)
    return yesterday.replace(hour=12, minute=0, second=0, microsecond=0)


# --- Each limit, one unit either side ------------------------------------------------------------
def test_points_in_one_event_above_the_limit_are_held(pos, member, limits):
    limits(max_points_per_event=100)

    assert_not_held(pos.purchase("u-1001", "at-limit", "100"), 100)
    body = assert_held(pos.purchase("u-1001", "over", "101"))

    hold = hold_of(body)
    assert hold.reasons == ["points_per_event"]
    assert hold.details["points_per_event"] == {"value": 101, "limit": 100}
    assert hold.points == 101
    assert [(a["rule"], a["points"]) for a in hold.awards] == [("default-purchase", 101)]
    assert Event.objects.get(pk=body["event_id"]).outcome == Event.Outcome.HELD
    assert available() == 100


def test_points_to_one_member_in_a_day_above_the_limit_are_held(pos, member, limits):
    limits(max_points_per_member_day=100)
    noon = local_noon_yesterday()
    when = noon.isoformat()

    assert_not_held(pos.purchase("u-1001", "a", "60", occurred_at=when), 60)
    assert_not_held(pos.purchase("u-1001", "b", "40", occurred_at=when), 40)
    body = assert_held(pos.purchase("u-1001", "c", "1", occurred_at=when))
    assert hold_of(body).details["points_per_member_day"] == {"value": 101, "limit": 100}
    # The next day starts again; another member has a day of their own.
    next_day = (noon + timedelta(hours=13)).isoformat()
    assert_not_held(pos.purchase("u-1001", "d", "100", occurred_at=next_day), 100)
    MemberFactory(external_id="u-2")
    assert_not_held(pos.purchase("u-2", "e", "100", occurred_at=when), 100)


def test_events_from_one_member_in_an_hour_above_the_limit_are_held(pos, member, limits):
    limits(max_events_per_member_hour=3)
    start = timezone.now() - timedelta(hours=3)

    for minutes in (0, 10, 20):
        at = (start + timedelta(minutes=minutes)).isoformat()
        assert_not_held(pos.purchase("u-1001", f"m{minutes}", "1", occurred_at=at), 1)
    body = assert_held(
        pos.purchase("u-1001", "m30", "1", occurred_at=(start + timedelta(minutes=30)).isoformat())
    )
    assert hold_of(body).reasons == ["events_per_member_hour"]
    # An hour on, only the held event is in the window: 2 events, below the limit.
    later = (start + timedelta(minutes=85)).isoformat()
    assert_not_held(pos.purchase("u-1001", "m85", "1", occurred_at=later), 1)


@pytest.fixture
def share_task(db):
    return MemberTask.objects.create(
        code="share-1",
        name="分享",
        kind="daily",
        event_type="share",
        required_count=1,
        reward_points=10,
    )


def share(pos, member: str, **attributes):
    return pos.post("events", {"type": "share", "member": member, "attributes": attributes})


def test_task_rewards_from_one_device_or_ip_above_the_limit_are_held(pos, limits, share_task):
    limits(max_rewards_per_device_day=2)
    for name in ("a", "b", "c", "d", "e", "f", "g", "h"):
        MemberFactory(external_id=name)

    assert_not_held(share(pos, "a", device_id="phone-1", ip="10.0.0.1"), 10)
    assert_not_held(share(pos, "b", device_id="phone-1", ip="10.0.0.2"), 10)
    body = assert_held(share(pos, "c", device_id="phone-1", ip="10.0.0.3"))
    assert hold_of(body).reasons == ["rewards_per_device_day"]
    # The same IP counts across devices.
    assert_not_held(share(pos, "d", device_id="phone-7", ip="10.0.0.7"), 10)
    assert_not_held(share(pos, "e", device_id="phone-8", ip="10.0.0.7"), 10)
    assert_held(share(pos, "f", device_id="phone-9", ip="10.0.0.7"))
    # Another device and IP is not affected.
    assert_not_held(share(pos, "g", device_id="phone-2", ip="10.0.0.9"), 10)
    # An event without a referral or task reward is not counted against the device.
    assert_not_held(pos.purchase("h", "o-1", "5", attributes={"device_id": "phone-1"}), 5)


def test_a_held_event_uses_no_budget_and_no_cap(pos, member, limits, default_rule):
    default_rule.budget_points = 1000
    default_rule.cap_per_day = 500
    default_rule.save()
    limits(max_points_per_event=100)

    hold = hold_of(assert_held(pos.purchase("u-1001", "big", "300")))

    default_rule.refresh_from_db()
    assert default_rule.budget_used == 0
    assert not RuleUsage.objects.exists()
    assert hold.points == 300
    # The whole cap is still there for the member's next events.
    limits(max_points_per_event=None)
    assert_not_held(pos.purchase("u-1001", "next", "500"), 500)


@pytest.fixture
def default_rule(db) -> EarningRule:
    return EarningRule.objects.get(code="default-purchase")


def test_the_dry_run_says_held_and_writes_nothing(pos, member, limits):
    limits(max_points_per_event=100)
    body = {"type": "purchase", "member": "u-1001", "reference": "o", "amount": "101"}

    response = pos.post("events?dry_run=true", body)

    assert_held(response)
    assert not Event.objects.exists() and not HeldEvent.objects.exists()
    assert not Order.objects.exists()


def test_a_held_purchase_keeps_its_reference_taken(pos, member, limits):
    limits(max_points_per_event=100)
    assert_held(pos.purchase("u-1001", "order-1", "101"))

    again = pos.purchase("u-1001", "order-1", "50")

    assert again.status_code == 422
    assert again.json()["code"] == "validation_error"


def test_an_idempotent_replay_of_a_held_event_holds_nothing_twice(pos, member, limits):
    limits(max_points_per_event=100)
    body = {"type": "purchase", "member": "u-1001", "reference": "o", "amount": "101"}
    first = pos.post("events", body, key="k-1")
    second = pos.post("events", body, key="k-1")

    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert HeldEvent.objects.count() == 1


# --- Approval and rejection ----------------------------------------------------------------------
@pytest.fixture
def held_purchase(pos, member, limits):
    limits(max_points_per_event=100)
    return hold_of(assert_held(pos.purchase("u-1001", "order-1", "150")))


def test_a_held_event_grants_nothing_until_approved_and_exactly_its_points_after(
    held_purchase, reviewer
):
    assert available() == 0
    assert not Entry.objects.exists()

    assert campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)

    assert available() == 150
    entry = Entry.objects.get()
    assert (entry.kind, entry.amount, entry.reference) == ("earn", 150, "order-1")
    held_purchase.refresh_from_db()
    assert held_purchase.status == HeldEvent.Status.APPROVED
    assert held_purchase.reviewer == reviewer and held_purchase.decided_at is not None
    event = held_purchase.event
    event.refresh_from_db()
    assert (event.outcome, event.points_awarded) == (Event.Outcome.AWARDED, 150)
    assert event.rules_applied == [{"rule": "default-purchase", "points": 150}]


def test_approving_twice_grants_once(held_purchase, reviewer):
    assert campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)
    assert not campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)

    assert available() == 150
    assert Entry.objects.count() == 1


def test_an_approved_purchase_is_refunded_like_any_other(pos, held_purchase, reviewer):
    campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)

    response = pos.post("orders/order-1/refunds", {})

    assert response.status_code == 201, response.content
    assert response.json()["points_reversed"] == 150
    assert available() == 0


def test_a_purchase_refunded_while_held_cannot_be_approved(pos, held_purchase, reviewer):
    assert pos.post("orders/order-1/refunds", {}).status_code == 201

    with pytest.raises(HeldEventNotApprovable):
        campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)

    held_purchase.refresh_from_db()
    assert held_purchase.status == HeldEvent.Status.PENDING
    assert available() == 0


def test_rejection_grants_nothing_and_records_the_reason(held_purchase, reviewer):
    assert campaign_services.reject_held_event(
        hold_id=held_purchase.pk, reviewer=reviewer, reason="card testing pattern"
    )

    assert available() == 0
    held_purchase.refresh_from_db()
    assert held_purchase.status == HeldEvent.Status.REJECTED
    assert held_purchase.decision_reason == "card testing pattern"
    assert held_purchase.reviewer == reviewer
    # Nothing is wiped: the event stays, held (replays skip it), with no points.
    event = Event.objects.get(pk=held_purchase.event_id)
    assert (event.outcome, event.points_awarded) == (Event.Outcome.HELD, 0)
    # A rejected event stays rejected.
    assert not campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)
    assert available() == 0


def test_a_rejection_needs_a_reason(held_purchase, reviewer):
    with pytest.raises(HeldEventNotApprovable):
        campaign_services.reject_held_event(hold_id=held_purchase.pk, reviewer=reviewer, reason=" ")
    held_purchase.refresh_from_db()
    assert held_purchase.status == HeldEvent.Status.PENDING


def test_approval_is_issuance_and_waits_for_the_freeze_to_end(held_purchase, reviewer, freeze):
    freeze()

    with pytest.raises(IssuanceFrozen):
        campaign_services.approve_held_event(hold_id=held_purchase.pk, reviewer=reviewer)

    held_purchase.refresh_from_db()
    assert held_purchase.status == HeldEvent.Status.PENDING
    assert available() == 0


def test_a_held_check_in_counts_for_the_streak_and_its_points_come_with_approval(
    pos, member, limits, reviewer
):
    EarningRule.objects.create(
        code="check-in", name="签到", event_type="check_in", status="active", fixed_points=5
    )
    limits(max_points_per_event=4)

    hold = hold_of(assert_held(pos.post("events", {"type": "check_in", "member": "u-1001"})))

    assert CheckIn.objects.filter(member=member).count() == 1
    assert available() == 0
    campaign_services.approve_held_event(hold_id=hold.pk, reviewer=reviewer)
    assert available() == 5


def test_a_held_referral_pays_the_inviter_only_when_approved(pos, limits, reviewer):
    from campaigns.models import ReferralSettings

    referral = ReferralSettings.get()
    referral.inviter_points = 50
    referral.invitee_points = 10
    referral.reward_on = "registration"
    referral.save()
    inviter = MemberFactory(external_id="inviter")
    MemberFactory(external_id="friend", referred_by=inviter)
    limits(max_points_per_event=59)

    body = assert_held(pos.post("events", {"type": "registration", "member": "friend"}))

    assert available("inviter") == 0
    campaign_services.approve_held_event(hold_id=hold_of(body).pk, reviewer=reviewer)
    assert (available("inviter"), available("friend")) == (50, 10)
