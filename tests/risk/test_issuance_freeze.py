"""Issuance freeze (issue 8, item 1): while on, every earning path answers `issuance_frozen`
and writes nothing; spending, redemptions and transfers go on (docs/adr/0018)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from campaigns.models import EarningRule, Event
from members.models import CheckIn
from points import services
from points.exceptions import IssuanceFrozen
from points.models import Account, Entry, IssuanceFreeze, Lot, Order, OutboxEvent
from tests.factories import ExchangePartnerFactory, MemberFactory, RewardFactory

pytestmark = pytest.mark.django_db
ADDRESS = {"recipient": "王小明", "phone": "13800138000", "address": "长安街 1 号", "city": "北京"}


def ledger_rows() -> dict[str, int]:
    return {
        "entries": Entry.objects.count(),
        "lots": Lot.objects.count(),
        "orders": Order.objects.count(),
        "events": Event.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "check_ins": CheckIn.objects.count(),
    }


def assert_issuance_frozen(response) -> None:
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "issuance_frozen"
    assert response["Content-Type"].startswith("application/problem+json")


@pytest.fixture
def check_in_rule(db):
    return EarningRule.objects.create(
        code="check-in", name="签到", event_type="check_in", status="active", fixed_points=5
    )


def test_a_purchase_during_a_freeze_is_refused_and_the_ledger_is_unchanged(pos, member, freeze):
    pos.purchase("u-1001", "before", "100")
    before = ledger_rows()
    freeze()

    response = pos.purchase("u-1001", "order-1", "256.00")

    assert_issuance_frozen(response)
    assert ledger_rows() == before
    assert Account.objects.get(member=member).available == 100


def test_a_check_in_during_a_freeze_is_refused_and_not_recorded(pos, member, freeze, check_in_rule):
    freeze()
    before = ledger_rows()

    response = pos.post("events", {"type": "check_in", "member": "u-1001"})

    assert_issuance_frozen(response)
    assert ledger_rows() == before


def test_a_dry_run_during_a_freeze_answers_the_same(pos, member, freeze):
    freeze()
    response = pos.post(
        "events?dry_run=true",
        {"type": "purchase", "member": "u-1001", "reference": "o", "amount": "10"},
    )
    assert_issuance_frozen(response)


def test_partners_learn_when_issuance_resumes_but_not_the_internal_reason(pos, member, freeze):
    ends_at = timezone.now() + timedelta(hours=2)
    freeze(reason="audit of store 12", ends_at=ends_at)

    body = pos.purchase("u-1001", "o", "10").json()

    assert body["code"] == "issuance_frozen"
    assert datetime.fromisoformat(body["ends_at"]) == ends_at
    assert "store 12" not in str(body)


def test_issuance_resumes_by_itself_at_the_automatic_end(pos, member, freeze):
    frozen = freeze(ends_at=timezone.now() + timedelta(minutes=5))
    assert_issuance_frozen(pos.purchase("u-1001", "during", "10"))

    # Five minutes later (the guard compares the database's now() with ends_at).
    IssuanceFreeze.objects.filter(pk=frozen.pk).update(
        ends_at=timezone.now() - timedelta(seconds=1)
    )

    response = pos.purchase("u-1001", "after", "10")
    assert response.status_code == 201, response.content
    assert response.json()["points_awarded"] == 10
    assert IssuanceFreeze.objects.get(pk=frozen.pk).lifted_at is None  # kept as it was


def test_lifting_the_freeze_resumes_issuance_and_keeps_the_record(pos, member, freeze, operator):
    freeze()
    assert_issuance_frozen(pos.purchase("u-1001", "during", "10"))

    assert services.lift_issuance_freeze(operator=operator) == 1

    assert pos.purchase("u-1001", "after", "10").status_code == 201
    record = IssuanceFreeze.objects.get()
    assert record.lifted_by == operator and record.lifted_at is not None
    assert record.started_by == operator and record.reason


def test_a_freeze_set_in_another_process_applies_at_once_through_the_guard(pos, member, operator):
    # This process's copy says "open" for an hour; the freeze is written behind its back.
    with override_settings(PROGRAMME_CACHE_SECONDS=3600):
        services.issuance_freeze(fresh=True)
        pos.purchase("u-1001", "warm", "10")
        IssuanceFreeze.objects.create(reason="set elsewhere", started_by=operator)
        before = ledger_rows()

        response = pos.purchase("u-1001", "o-2", "10")

        assert_issuance_frozen(response)
        assert ledger_rows() == before


def test_the_earn_service_itself_refuses_during_a_freeze(member, freeze):
    freeze()
    with pytest.raises(IssuanceFrozen):
        services.earn(member=member, points=10)
    with pytest.raises(IssuanceFrozen):
        services.ensure_issuance_open()
    assert not Entry.objects.exists()


def test_a_new_freeze_replaces_the_one_in_force(freeze):
    first = freeze(reason="first")
    second = freeze(reason="second")
    first.refresh_from_db()
    assert first.lifted_at is not None
    assert services.issuance_freeze(fresh=True).pk == second.pk


def test_a_freeze_needs_a_reason_and_a_future_end(operator):
    from points.exceptions import InvalidLedgerRequest

    with pytest.raises(InvalidLedgerRequest):
        services.freeze_issuance(reason="  ", operator=operator)
    with pytest.raises(InvalidLedgerRequest):
        services.freeze_issuance(
            reason="x", operator=operator, ends_at=timezone.now() - timedelta(minutes=1)
        )
    assert not IssuanceFreeze.objects.exists()


# --- What goes on during a freeze -------------------------------------------------------------
def test_spending_points_goes_on_during_a_freeze(pos, member, freeze):
    services.earn(member=member, points=1000)
    freeze()

    response = pos.post("members/u-1001/points/spend", {"points": 500, "reference": "order-779"})

    assert response.status_code == 201, response.content
    assert Account.objects.get(member=member).available == 500


def test_a_refund_goes_on_during_a_freeze(pos, member, freeze):
    pos.purchase("u-1001", "order-1", "100")
    freeze()

    response = pos.post("orders/order-1/refunds", {})

    assert response.status_code == 201, response.content
    assert Account.objects.get(member=member).available == 0


def test_redemptions_go_on_during_a_freeze(pos, member, freeze):
    services.earn(member=member, points=1000)
    RewardFactory(code="tea-set", points_price=300)
    freeze()

    response = pos.post(
        "redemptions", {"member": "u-1001", "reward": "tea-set", "shipping_address": ADDRESS}
    )

    assert response.status_code == 201, response.content
    assert Account.objects.get(member=member).available == 700


def test_a_transfer_moves_existing_points_during_a_freeze(pos, member, freeze):
    services.earn(member=member, points=1000)
    friend = MemberFactory(external_id="u-1002")
    freeze()

    response = pos.post(
        "members/u-1001/points/transfer", {"to": "u-1002", "points": 300, "reference": "gift-1"}
    )

    assert response.status_code == 201, response.content
    assert Account.objects.get(member=friend).available == 300


def test_converting_in_is_issuance_and_converting_out_is_not(pos, member, freeze):
    services.earn(member=member, points=1000)
    ExchangePartnerFactory(
        code="airline-x",
        name="Airline X",
        base_rate=Decimal("8"),
        factor=Decimal("1.25"),
        min_factor=Decimal("0.5"),
        max_factor=Decimal("1.5"),
    )
    freeze()
    before = ledger_rows()

    refused = pos.post(
        "members/u-1001/points/convert",
        {"programme": "airline-x", "direction": "in", "amount": 30, "reference": "cv-1"},
    )
    assert_issuance_frozen(refused)
    assert ledger_rows() == before

    out = pos.post(
        "members/u-1001/points/convert",
        {"programme": "airline-x", "direction": "out", "amount": 100, "reference": "cv-2"},
    )
    assert out.status_code == 201, out.content


def test_a_positive_adjustment_is_refused_and_a_negative_one_goes_on(member, freeze, operator):
    services.earn(member=member, points=100)
    freeze()

    with pytest.raises(IssuanceFrozen):
        services.adjust(member=member, points=50, reason="goodwill", operator=operator)
    services.adjust(member=member, points=-30, reason="correction", operator=operator)

    assert Account.objects.get(member=member).available == 70
