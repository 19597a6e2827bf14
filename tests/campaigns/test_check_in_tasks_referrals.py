"""Check-in once a day with streak rewards, tasks, referrals with their limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import (
    CheckInReward,
    EarningRule,
    MemberTask,
    ReferralReward,
    ReferralSettings,
    TaskProgress,
)
from members.models import CheckIn
from points.models import Account
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args) -> str:
    return datetime(*args, tzinfo=SHANGHAI).isoformat()


def event(pos, type_, member, when=None, **fields):
    body = {"type": type_, "member": member, **fields}
    if when:
        body["occurred_at"] = when
    return pos.post("events", body)


@pytest.fixture
def check_in_rule(db):
    return EarningRule.objects.create(
        code="check-in", name="签到", event_type="check_in", status="active", fixed_points=5
    )


def test_check_in_once_a_day_in_the_programme_time_zone(pos, member, check_in_rule):
    assert event(pos, "check_in", "u-1001", at(2026, 11, 24, 0, 1)).json()["points_awarded"] == 5
    again = event(pos, "check_in", "u-1001", at(2026, 11, 24, 23, 59))
    assert again.status_code == 422
    assert again.json()["code"] == "validation_error"
    assert event(pos, "check_in", "u-1001", at(2026, 11, 25, 0, 0)).status_code == 201
    assert Account.objects.get(member=member).available == 10


def test_streak_rewards_on_day_seven_and_a_missed_day_restarts(pos, member, check_in_rule):
    CheckInReward.objects.create(streak_day=7, points=50)
    start = datetime(2026, 11, 1, 9, tzinfo=SHANGHAI)
    awards = [
        event(pos, "check_in", "u-1001", (start + timedelta(days=d)).isoformat()).json()
        for d in range(7)
    ]
    assert [a["points_awarded"] for a in awards] == [5] * 6 + [55]
    assert {"rule": "check_in:day-7", "points": 50} in awards[6]["rules_applied"]
    # Day 9 after a gap: streak 1 again.
    event(pos, "check_in", "u-1001", (start + timedelta(days=8)).isoformat())
    assert CheckIn.objects.get(member=member, day=(start + timedelta(days=8)).date()).streak == 1


def test_dry_run_of_a_check_in_writes_nothing(pos, member, check_in_rule):
    body = {"type": "check_in", "member": "u-1001"}
    assert pos.post("events?dry_run=true", body).json()["points_awarded"] == 5
    assert not CheckIn.objects.exists()
    assert pos.post("events", body).json()["points_awarded"] == 5


def test_daily_task_three_shares_a_day(pos, member):
    MemberTask.objects.create(
        code="share-3",
        name="分享3次",
        kind="daily",
        event_type="share",
        required_count=3,
        reward_points=30,
    )
    day1 = [event(pos, "share", "u-1001", at(2026, 11, 24, h)).json() for h in (9, 10, 11, 12)]
    assert [e["points_awarded"] for e in day1] == [0, 0, 30, 0]
    assert day1[2]["rules_applied"] == [{"rule": "task:share-3", "points": 30}]
    day2 = [event(pos, "share", "u-1001", at(2026, 11, 25, h)).json() for h in (9, 10, 11)]
    assert [e["points_awarded"] for e in day2] == [0, 0, 30]
    assert TaskProgress.objects.filter(member=member, completed_at__isnull=False).count() == 2


def test_newcomer_task_only_within_days_of_joining(pos):
    MemberTask.objects.create(
        code="first-review",
        name="首评",
        kind="newcomer",
        event_type="review",
        required_count=1,
        within_days=7,
        reward_points=20,
    )
    MemberFactory(external_id="new", joined_at=datetime(2026, 11, 20, tzinfo=SHANGHAI))
    MemberFactory(external_id="old", joined_at=datetime(2026, 1, 1, tzinfo=SHANGHAI))
    assert event(pos, "review", "new", at(2026, 11, 24)).json()["points_awarded"] == 20
    assert event(pos, "review", "new", at(2026, 11, 25)).json()["points_awarded"] == 0
    assert event(pos, "review", "old", at(2026, 11, 24)).json()["points_awarded"] == 0


def test_achievement_task_once_in_a_lifetime(pos, member):
    MemberTask.objects.create(
        code="ten-buys",
        name="10 buys",
        kind="achievement",
        event_type="purchase",
        required_count=2,
        reward_points=100,
    )
    first = pos.purchase("u-1001", "a", "1").json()
    second = pos.purchase("u-1001", "b", "1").json()
    third = pos.purchase("u-1001", "c", "1").json()
    assert [first["points_awarded"], second["points_awarded"], third["points_awarded"]] == [
        1,
        101,
        1,
    ]


@pytest.fixture
def referral(db):
    settings = ReferralSettings.get()
    settings.inviter_points = 50
    settings.invitee_points = 10
    settings.per_inviter_per_day = 2
    settings.reward_on = "registration"
    settings.save()
    return settings


def test_inviter_rewarded_when_the_invitee_registers_within_the_daily_limit(pos, referral):
    inviter = MemberFactory(external_id="inviter")
    for i in range(3):
        MemberFactory(external_id=f"friend-{i}", referred_by=inviter)
    bodies = [
        event(
            pos,
            "registration",
            f"friend-{i}",
            at(2026, 11, 24, 10 + i),
            attributes={"device_id": f"d-{i}", "ip": f"10.0.0.{i}"},
        ).json()
        for i in range(3)
    ]
    assert [b["points_awarded"] for b in bodies] == [10, 10, 0]
    assert Account.objects.get(member=inviter).available == 100  # two rewarded, third over limit
    assert list(
        ReferralReward.objects.order_by("invitee__external_id").values_list("outcome", flat=True)
    ) == ["rewarded", "rewarded", "daily_limit"]
    # A second registration event of the same invitee never pays twice.
    event(pos, "registration", "friend-0", at(2026, 11, 25, 10))
    assert Account.objects.get(member=inviter).available == 100


def test_same_device_or_ip_is_not_rewarded(pos, referral):
    inviter = MemberFactory(external_id="inviter")
    MemberFactory(external_id="a", referred_by=inviter)
    MemberFactory(external_id="b", referred_by=inviter)
    event(pos, "registration", "a", attributes={"device_id": "phone-1", "ip": "1.1.1.1"})
    body = event(pos, "registration", "b", attributes={"device_id": "phone-1", "ip": "2.2.2.2"})
    assert body.json()["points_awarded"] == 0
    assert ReferralReward.objects.get(invitee__external_id="b").outcome == "same_device"
    assert Account.objects.get(member=inviter).available == 50


def test_reward_on_first_purchase(pos, referral):
    referral.reward_on = "purchase"
    referral.save()
    inviter = MemberFactory(external_id="inviter")
    MemberFactory(external_id="f", referred_by=inviter)
    event(pos, "registration", "f")
    assert not Account.objects.filter(member=inviter).exists()
    pos.purchase("f", "o-1", "10")
    pos.purchase("f", "o-2", "10")
    assert Account.objects.get(member=inviter).available == 50
