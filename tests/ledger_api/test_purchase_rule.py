"""The default purchase rule (campaigns.rules) and the return window (points.services)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.rules import EventFacts, evaluate
from points.models import ProgrammeSettings
from points.services import purchase_available_at


def points(amount: str, paid_with_points: str = "0", rate: str = "1", items=()) -> int:
    facts = EventFacts(
        type="purchase",
        amount=Decimal(amount),
        paid_with_points=Decimal(paid_with_points),
        items=tuple(items),
    )
    return sum(a.points for a in evaluate(facts, points_per_unit=Decimal(rate)))


def test_purchase_points_are_rounded_down_after_the_part_paid_with_points():
    assert points("256.99") == 256
    assert points("100.00", paid_with_points="5") == 95
    assert points("3.99", rate="2.5") == 9
    assert points("300.00", items=[{"amount": "100.00", "excluded": True}]) == 200


def test_other_event_types_earn_nothing_from_the_purchase_rule():
    assert evaluate(EventFacts(type="review"), points_per_unit=Decimal("1")) == []


@pytest.mark.django_db
def test_the_return_window_runs_from_the_purchase_and_lapses():
    programme = ProgrammeSettings.get()
    now = timezone.now()
    assert purchase_available_at(occurred_at=now, programme=programme, now=now) is None

    programme.pending_days = 14
    assert purchase_available_at(occurred_at=now, programme=programme, now=now) == now + timedelta(
        days=14
    )
    old = now - timedelta(days=15)
    assert purchase_available_at(occurred_at=old, programme=programme, now=now) is None
