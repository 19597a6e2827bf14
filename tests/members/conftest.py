"""Fixtures of the tier, growth, segment and personal-data tests."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from loyalty_site.api.keys import create_partner_key
from members.models import GrowthSettings, Tier
from points.models import ApiScope
from tests.factories import TierFactory

_keys = itertools.count(1)


class Partner:
    """A partner system over the real API: JSON, a fresh Idempotency-Key on every write."""

    def __init__(self, name: str = "POS") -> None:
        self.api_key, plain_key = create_partner_key(partner_name=name, scopes=ApiScope.values)
        self.partner = self.api_key.partner
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")

    def post(self, path: str, body: dict | None = None):
        return self.client.post(
            f"/api/v1/{path}",
            body or {},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"members-test-{next(_keys)}",
        )

    def get(self, path: str, **params):
        return self.client.get(f"/api/v1/{path}", params)

    def purchase(
        self, member: str, reference: str, amount: str, occurred_at: datetime | None = None
    ):
        body = {"type": "purchase", "member": member, "reference": reference, "amount": amount}
        if occurred_at is not None:
            body["occurred_at"] = occurred_at.isoformat()
        return self.post("events", body)

    def refund(self, reference: str, amount: str | None = None):
        return self.post(f"orders/{reference}/refunds", {"amount": amount} if amount else {})


@pytest.fixture
def pos(db) -> Partner:
    return Partner("POS")


@pytest.fixture
def tiers(db) -> dict[str, Tier]:
    """member (entry, 0) < silver (1,000) < gold (3,000) < diamond (6,000)."""
    return {
        "member": TierFactory(code="member", name="会员 Member", rank=0, growth_threshold=0),
        "silver": TierFactory(
            code="silver", name="银卡", name_en="Silver", rank=1, growth_threshold=1000
        ),
        "gold": TierFactory(
            code="gold", name="金卡", name_en="Gold", rank=2, growth_threshold=3000
        ),
        "diamond": TierFactory(
            code="diamond", name="钻石", name_en="Diamond", rank=3, growth_threshold=6000
        ),
    }


@pytest.fixture
def growth_settings(db):
    """The growth settings; change them with `growth_settings(field=value, ...)`."""

    def apply(**fields) -> GrowthSettings:
        row = GrowthSettings.get()
        for name, value in fields.items():
            setattr(row, name, Decimal(value) if name == "growth_per_unit" else value)
        row.save()
        return row

    return apply
