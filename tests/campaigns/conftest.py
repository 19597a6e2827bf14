from __future__ import annotations

from decimal import Decimal

import pytest

from campaigns.models import EarningRule
from tests.ledger_api.conftest import PartnerApi


@pytest.fixture
def pos(db) -> PartnerApi:
    return PartnerApi("POS")


@pytest.fixture
def default_rule(db) -> EarningRule:
    return EarningRule.objects.get(code="default-purchase")


@pytest.fixture
def only_rule(default_rule):
    """only_rule(**fields): pause the default rule and make one active purchase rule."""

    def make(**fields) -> EarningRule:
        default_rule.status = EarningRule.Status.PAUSED
        default_rule.save()
        m2m = {k: fields.pop(k) for k in ("tiers", "segments", "partners") if k in fields}
        fields.setdefault("points_per_unit", Decimal("1"))
        rule = EarningRule.objects.create(
            code=fields.pop("code", "r1"), name="rule", status="active", **fields
        )
        for name, values in m2m.items():
            getattr(rule, name).set(values)
        return rule

    return make


def awarded(response) -> int:
    assert response.status_code == 201, response.json()
    return response.json()["points_awarded"]


@pytest.fixture
def member(db):
    from tests.factories import MemberFactory

    return MemberFactory(external_id="u-1001")
