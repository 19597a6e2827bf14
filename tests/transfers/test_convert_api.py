"""POST /members/{external_id}/points/convert (api.md "Transfers and exchange")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from points import expiry
from points.models import Account, Conversion, Entry, ExchangePartner, Lot, ProgrammeSettings
from tests.factories import ExchangePartnerFactory
from tests.transfers.conftest import at

pytestmark = pytest.mark.django_db


def available(external_id: str = "u-alice") -> int:
    return Account.objects.get(member__external_id=external_id).available


def convert(pos, **body):
    return pos.post("members/u-alice/points/convert", {"programme": "airline-x", **body})


def test_out_buys_whole_units_and_takes_only_what_they_cost(pos, alice, airline):
    # given: 10 points per mile (base 8 x factor 1.25)
    # when: 995 points are offered
    response = convert(pos, direction="out", amount=995, reference="cv-7")

    # then: 99 miles, 990 points taken, the 5 left over stay with the member
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["rate"], body["points"], body["partner_units"]) == ("10", 990, 99)
    entry = body["entry"]
    assert (entry["kind"], entry["amount"], entry["balance_after"]) == ("convert", -990, 10)
    assert entry["reference"] == "cv-7"
    assert available() == 10
    conversion = Conversion.objects.get()
    assert (conversion.direction, conversion.points, conversion.partner_units) == ("out", 990, 99)
    assert conversion.entry_id == entry["id"]


def test_a_fractional_rate_rounds_against_the_member_both_ways(pos, alice):
    ExchangePartnerFactory(code="airline-x", base_rate=Decimal("3.3"), factor=Decimal("1"))

    out = convert(pos, direction="out", amount=100)
    into = convert(pos, direction="in", amount=7)

    # out: floor(100 / 3.3) = 30 miles cost ceil(99.0) = 99 points; in: floor(7 x 3.3) = 23
    assert (out.json()["partner_units"], out.json()["points"]) == (30, 99)
    assert (into.json()["partner_units"], into.json()["points"]) == (7, 23)
    assert out.json()["rate"] == into.json()["rate"] == "3.3"
    assert available() == 1000 - 99 + 23


def test_in_credits_a_new_lot_expiring_by_the_programme_policy(pos, alice, airline):
    response = convert(pos, direction="in", amount=30, reference="cv-8")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["points"], body["partner_units"], body["rate"]) == (300, 30, "10")
    assert (body["entry"]["kind"], body["entry"]["amount"]) == ("convert", 300)
    assert available() == 1300
    lot = Lot.objects.get(earn_entry_id=body["entry"]["id"])
    entry = Entry.objects.get(pk=body["entry"]["id"])
    assert lot.expires_at == expiry.lot_expiry(
        entry.created_at, programme=ProgrammeSettings.get(), tier=alice.tier
    )
    assert datetime.fromisoformat(body["entry"]["expires_at"]) == lot.expires_at


def test_the_adjustment_factor_moves_the_rate(pos, alice, airline):
    ExchangePartner.objects.filter(pk=airline.pk).update(factor=Decimal("0.85"))

    response = convert(pos, direction="in", amount=3)

    # 8 x 0.85 = 6.8 points per mile: floor(20.4) = 20
    assert (response.json()["rate"], response.json()["points"]) == ("6.8", 20)


def test_the_database_keeps_the_factor_within_its_bounds(airline):
    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangePartner.objects.filter(pk=airline.pk).update(factor=Decimal("1.6"))
    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangePartner.objects.filter(pk=airline.pk).update(min_factor=Decimal("2"))
    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangePartner.objects.filter(pk=airline.pk).update(base_rate=Decimal("0"))


@pytest.mark.parametrize("programme", ["airline-y", "inactive"])
def test_an_unknown_or_inactive_programme_is_a_validation_error(pos, alice, airline, programme):
    ExchangePartnerFactory(code="inactive", is_active=False)

    response = convert(pos, programme=programme, direction="out", amount=100)

    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert response.json()["programme"] == programme
    assert available() == 1000


def test_out_beyond_the_balance_takes_nothing(pos, alice, airline):
    response = convert(pos, direction="out", amount=1010)

    assert (response.status_code, response.json()["code"]) == (422, "insufficient_points")
    assert available() == 1000
    assert not Conversion.objects.exists()


def test_less_than_one_unit_or_one_point_is_a_validation_error(pos, alice, airline):
    response = convert(pos, direction="out", amount=9)

    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert available() == 1000


def test_a_bad_direction_or_amount_is_a_400(pos, alice, airline):
    direction = convert(pos, direction="sideways", amount=10)
    amount = convert(pos, direction="in", amount=-1)

    assert (direction.status_code, direction.json()["code"]) == (400, "validation_error")
    assert "direction" in direction.json()["errors"]
    assert "amount" in amount.json()["errors"]


def test_daily_limits_are_per_direction_in_our_points(pos, alice, airline):
    ExchangePartner.objects.filter(pk=airline.pk).update(daily_out_limit=500, daily_in_limit=200)

    out_ok = convert(pos, direction="out", amount=500)
    out_over = convert(pos, direction="out", amount=10)
    in_ok = convert(pos, direction="in", amount=20)
    in_over = convert(pos, direction="in", amount=1)

    assert (out_ok.status_code, in_ok.status_code) == (201, 201)
    assert (out_over.status_code, out_over.json()["code"]) == (422, "limit_exceeded")
    assert (in_over.status_code, in_over.json()["code"]) == (422, "limit_exceeded")
    assert available() == 1000 - 500 + 200


def test_the_daily_limit_restarts_at_midnight_in_the_programme_time_zone(alice, airline):
    from points.exceptions import DailyLimitExceeded
    from points.services import convert_points

    ExchangePartner.objects.filter(pk=airline.pk).update(daily_out_limit=100)
    convert = {"member": alice, "programme_code": "airline-x", "direction": "out", "amount": 100}

    convert_points(**convert, now=at("2025-03-01 23:59:59"))
    with pytest.raises(DailyLimitExceeded):
        convert_points(**convert, now=at("2025-03-01 12:00"))
    convert_points(**convert, now=at("2025-03-02 00:00"))

    assert available() == 800


def test_a_frozen_member_cannot_convert(pos, alice, airline):
    alice.status = alice.Status.FROZEN
    alice.save()

    response = convert(pos, direction="in", amount=10)

    assert (response.status_code, response.json()["code"]) == (422, "member_frozen")


def test_the_same_idempotency_key_replays_and_converts_once(pos, alice, airline):
    body = {"programme": "airline-x", "direction": "out", "amount": 300, "reference": "cv-9"}

    first = pos.post("members/u-alice/points/convert", body, key="k-1")
    second = pos.post("members/u-alice/points/convert", body, key="k-1")
    again = pos.post("members/u-alice/points/convert", body, key="k-2")

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    # Another key with the same reference is refused: a reference names one conversion.
    assert (again.status_code, again.json()["code"]) == (422, "validation_error")
    assert Conversion.objects.count() == 1
    assert available() == 700
