"""The member checks in on the mall's home page, through the programme's rule engine."""

from __future__ import annotations

import pytest

from campaigns.models import CheckInReward, EarningRule, Event
from members.models import CheckIn
from points.models import Account
from tests.rewards_mall.test_pages import enter, page

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_member(client, member):
    client.cookies["django_language"] = "en"
    return enter(client, member)


@pytest.fixture
def check_in_rule(db):
    EarningRule.objects.create(
        code="check-in", name="签到", event_type="check_in", status="active", fixed_points=5
    )
    CheckInReward.objects.create(streak_day=1, points=2)


def test_checking_in_on_the_home_page_earns_once_a_day(as_member, member, check_in_rule):
    before = Account.objects.get(member=member).available
    home = page(as_member.get("/mall/"))
    assert 'data-testid="check-in-button"' in home

    response = as_member.post("/mall/check-in/", follow=True)

    html = page(response)
    assert "Checked in: 7 points, 1 days in a row." in html
    assert 'data-testid="checked-in"' in html
    assert Account.objects.get(member=member).available == before + 7
    event = Event.objects.get(member=member, type="check_in")
    assert event.partner.name == "Rewards mall"
    again = page(as_member.post("/mall/check-in/", follow=True))
    assert "already checked in today" in again
    assert CheckIn.objects.filter(member=member).count() == 1
    assert Account.objects.get(member=member).available == before + 7
