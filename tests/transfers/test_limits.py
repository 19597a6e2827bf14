"""Daily limits of transfers, per calendar day in the programme's time zone (Asia/Shanghai)."""

from __future__ import annotations

import pytest

from points import services
from points.exceptions import DailyLimitExceeded
from points.models import Account, Transfer
from tests.factories import MemberFactory
from tests.transfers.conftest import at

pytestmark = pytest.mark.django_db


def test_a_member_may_give_up_to_the_daily_limit_and_not_one_point_more(pos, alice, bob, limits):
    limits(out=500, into=None)

    exactly = pos.post("members/u-alice/points/transfer", {"to": "u-bob", "points": 500})
    one_more = pos.post("members/u-alice/points/transfer", {"to": "u-bob", "points": 1})

    assert exactly.status_code == 201
    assert one_more.status_code == 422
    body = one_more.json()
    assert body["code"] == "limit_exceeded"
    assert (body["limit"], body["used_today"], body["requested"]) == (500, 500, 1)
    assert Account.objects.get(member=alice).available == 500
    assert Transfer.objects.count() == 1


def test_a_member_may_receive_up_to_the_daily_limit_from_everyone_together(pos, alice, bob, limits):
    limits(out=None, into=300)
    carol = MemberFactory(external_id="u-carol")
    services.earn(member=carol, points=1000)

    from_alice = pos.post("members/u-alice/points/transfer", {"to": "u-carol", "points": 200})
    from_bob = pos.post("members/u-bob/points/transfer", {"to": "u-carol", "points": 101})

    assert from_alice.status_code == 201
    assert (from_bob.status_code, from_bob.json()["code"]) == (422, "limit_exceeded")
    assert Account.objects.get(member=carol).available == 1200


def test_a_limit_of_zero_switches_transfers_off(pos, alice, bob, limits):
    limits(out=0, into=None)

    response = pos.post("members/u-alice/points/transfer", {"to": "u-bob", "points": 1})

    assert (response.status_code, response.json()["code"]) == (422, "limit_exceeded")


def test_the_day_ends_at_midnight_in_the_programme_time_zone(alice, bob, limits):
    limits(out=500, into=None)
    services.earn(member=alice, points=1000)
    services.transfer_points(sender=alice, recipient=bob, points=500, now=at("2025-03-01 23:59"))

    # 07:59 on 2 March in Shanghai is still 1 March in UTC: a new day all the same.
    services.transfer_points(sender=alice, recipient=bob, points=500, now=at("2025-03-02 07:59"))

    # 08:01 in Shanghai is 2 March in UTC too, yet the same Shanghai day as 07:59.
    with pytest.raises(DailyLimitExceeded):
        services.transfer_points(sender=alice, recipient=bob, points=1, now=at("2025-03-02 08:01"))
    assert Account.objects.get(member=alice).available == 1000


def test_the_last_instant_of_a_day_still_counts_for_that_day(alice, bob, limits):
    limits(out=300, into=None)
    services.transfer_points(sender=alice, recipient=bob, points=300, now=at("2025-03-01 00:00"))

    with pytest.raises(DailyLimitExceeded):
        services.transfer_points(
            sender=alice, recipient=bob, points=1, now=at("2025-03-01 23:59:59.999999")
        )
    services.transfer_points(sender=alice, recipient=bob, points=300, now=at("2025-03-02 00:00"))

    assert Account.objects.get(member=alice).available == 400


def test_limits_can_be_lifted(alice, bob, limits):
    limits(out=None, into=None)

    services.transfer_points(sender=alice, recipient=bob, points=1000)

    assert Account.objects.get(member=bob).available == 2000
