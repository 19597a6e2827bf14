"""Two reviewers approving (or one approving, one rejecting) the same held event at once: one
decision wins, the points are granted at most once (the held event's row lock)."""

from __future__ import annotations

import pytest

from campaigns import services
from campaigns.models import HeldEvent, RiskLimits
from points.models import Account, Entry, ProgrammeSettings
from tests.concurrency.threads import run_concurrently
from tests.factories import MemberFactory, OperatorFactory
from tests.ledger_api.conftest import PartnerApi

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hold(request):
    request.getfixturevalue("entry_tier")
    ProgrammeSettings.get()
    MemberFactory(external_id="u-1001")
    limits = RiskLimits.get()
    limits.max_points_per_event = 100
    limits.save()
    body = PartnerApi("POS").purchase("u-1001", "order-1", "150").json()
    assert body["held_for_review"] is True
    return HeldEvent.objects.get(event_id=body["event_id"])


def test_two_approvals_at_once_grant_the_points_once(hold):
    alice, bob = OperatorFactory(username="alice"), OperatorFactory(username="bob")

    outcomes = run_concurrently(
        lambda: services.approve_held_event(hold_id=hold.pk, reviewer=alice),
        lambda: services.approve_held_event(hold_id=hold.pk, reviewer=bob),
    )

    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert sorted(o.value for o in outcomes) == [False, True]
    assert Account.objects.get(member__external_id="u-1001").available == 150
    assert Entry.objects.count() == 1


def test_approve_and_reject_at_once_one_decision_wins(hold):
    alice, bob = OperatorFactory(username="alice"), OperatorFactory(username="bob")

    outcomes = run_concurrently(
        lambda: services.approve_held_event(hold_id=hold.pk, reviewer=alice),
        lambda: services.reject_held_event(hold_id=hold.pk, reviewer=bob, reason="fraud"),
    )

    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert sorted(o.value for o in outcomes) == [False, True]
    hold.refresh_from_db()
    granted = Account.objects.filter(member__external_id="u-1001").first()
    if hold.status == HeldEvent.Status.APPROVED:
        assert granted.available == 150
    else:
        assert hold.status == HeldEvent.Status.REJECTED
        assert granted is None or granted.available == 0
