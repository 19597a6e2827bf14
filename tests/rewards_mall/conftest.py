"""Fixtures of the rewards mall tests. After every database test the ledger invariant holds."""

from __future__ import annotations

import pytest

from members.models import Tier
from points.services import check_ledger_invariants, earn
from tests.factories import MemberFactory, RewardFactory


def entry_tier() -> Tier:
    """The entry tier of the default programme (a transactional test flushes the migrated one)."""
    tier, _created = Tier.objects.get_or_create(
        code="member", defaults={"name": "会员 Member", "rank": 0, "growth_threshold": 0}
    )
    return tier


def member_with_points(external_id: str, points: int = 0, **fields):
    member = MemberFactory(external_id=external_id, tier=fields.pop("tier", None) or entry_tier())
    for name, value in fields.items():
        setattr(member, name, value)
    if fields:
        member.save()
    if points:
        earn(member=member, points=points)
    return member


@pytest.fixture(autouse=True)
def _ledger_invariant_holds(request):
    yield
    if request.node.get_closest_marker("django_db") is None:
        return
    assert check_ledger_invariants() == []


@pytest.fixture
def member(db):
    return member_with_points("u-1001", 1000, name="王小明")


@pytest.fixture
def other_member(db):
    return member_with_points("u-1002", 1000, name="Li Lei")


@pytest.fixture
def reward(db):
    return RewardFactory(code="tea-set", name_zh="茶具套装", name_en="Tea set", points_price=300)
