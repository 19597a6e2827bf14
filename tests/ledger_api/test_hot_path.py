"""The earn hot path (docs/adr/0019, issue 6): rules cost no query per rule per event."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.common import create_rulebook

pytestmark = pytest.mark.django_db

PURCHASE = {
    "channel": "pos",
    "store": "store-12",
    "items": [{"sku": "A1", "category": "drinks", "quantity": 2, "amount": "128.50"}],
}


def queries_of_a_purchase(pos, member, reference: str) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = pos.purchase(member.external_id, reference, "128.50", **PURCHASE)
    assert response.status_code == 201, response.json()
    return len(captured.captured_queries), response.json()


def test_ten_rules_and_two_campaigns_add_no_query_per_event(pos, member, settings):
    settings.RULEBOOK_CHECK_SECONDS = 3600  # no version check falls into a measured request
    pos.purchase(member.external_id, "warm-1", "10.00", **PURCHASE)  # rulebook, key cache
    one_rule, alone = queries_of_a_purchase(pos, member, "o-1")

    create_rulebook()  # the bench's: ten active rules, two active campaigns
    pos.purchase(member.external_id, "warm-2", "10.00", **PURCHASE)  # rebuilds the rulebook
    ten_rules, together = queries_of_a_purchase(pos, member, "o-2")

    assert alone["points_awarded"] == 128
    # The "drinks" category rate matched too (0.5 x 128.50): the ten rules were evaluated.
    assert together["points_awarded"] == 128 + 64
    assert ten_rules == one_rule
