from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from campaigns.models import RiskLimits
from points import services
from tests.factories import MemberFactory, OperatorFactory
from tests.ledger_api.conftest import PartnerApi


@pytest.fixture
def pos(db) -> PartnerApi:
    return PartnerApi("POS")


@pytest.fixture
def member(db):
    return MemberFactory(external_id="u-1001")


@pytest.fixture
def operator(db):
    return OperatorFactory(username="ops")


@pytest.fixture
def reviewer(db):
    """A risk reviewer: staff with the custom `review_event` permission and the view permission
    of the review queue, nothing else."""
    user = OperatorFactory(username="reviewer")
    user.user_permissions.add(
        Permission.objects.get(codename="review_event"),
        Permission.objects.get(codename="view_heldevent"),
    )
    return user


@pytest.fixture
def limits(db):
    """limits(**fields): set the risk limits as an operator would in admin (the save
    invalidates the cached rulebook)."""

    def set_limits(**fields) -> RiskLimits:
        row = RiskLimits.get()
        for name, value in fields.items():
            setattr(row, name, value)
        row.save()
        return row

    return set_limits


@pytest.fixture
def freeze(operator):
    """freeze(reason=..., ends_at=...): freeze issuance through the service."""

    def make(reason: str = "suspected leak of POS keys", ends_at=None):
        return services.freeze_issuance(reason=reason, operator=operator, ends_at=ends_at)

    return make


@pytest.fixture(autouse=True)
def _no_freeze_cached_between_tests():
    yield
    services._freeze_cache = None
