from __future__ import annotations

import itertools

import pytest
from rest_framework.test import APIClient

from loyalty_site.api.keys import create_partner_key
from points.models import ApiScope
from tests.factories import MemberFactory

_keys = itertools.count(1)


class PartnerApi:
    """A partner's API client: JSON in and out, a fresh Idempotency-Key on every write."""

    def __init__(self, partner_name: str = "POS", scopes=None) -> None:
        self.api_key, self.plain_key = create_partner_key(
            partner_name=partner_name, scopes=scopes or ApiScope.values
        )
        self.partner = self.api_key.partner
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Api-Key {self.plain_key}")

    def post(self, path: str, body: dict | None = None, *, key: str | None = None, **extra):
        headers = {"HTTP_IDEMPOTENCY_KEY": key or f"key-{next(_keys)}"}
        return self.client.post(f"/api/v1/{path}", body or {}, format="json", **headers, **extra)

    def get(self, path: str, **params):
        return self.client.get(f"/api/v1/{path}", params)

    def purchase(self, member: str, reference: str, amount: str, **fields):
        body = {"type": "purchase", "member": member, "reference": reference, "amount": amount}
        body.update(fields)
        return self.post("events", body)


@pytest.fixture
def pos(db) -> PartnerApi:
    return PartnerApi("POS")


@pytest.fixture
def member(db):
    return MemberFactory(external_id="u-1001")
