"""The hot path's statements are parsed by psycopg once per process, not once per call."""

from __future__ import annotations

from decimal import Decimal

import pytest
from psycopg import _queries

from campaigns.services import _EVENT_INSERT_SQL
from points import services
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mode", sorted(services._CREDIT_SQL))
def test_every_ledger_statement_fits_psycopgs_query_cache(mode):
    # Longer statements have their placeholders parsed again on every call (docs/adr/0019).
    sql, _renamed = services._CREDIT_SQL[mode]
    assert len(sql) <= _queries.MAX_CACHED_STATEMENT_LENGTH


def test_the_event_insert_fits_psycopgs_query_cache():
    assert len(_EVENT_INSERT_SQL) <= _queries.MAX_CACHED_STATEMENT_LENGTH


def test_a_second_purchase_reuses_the_parsed_statement(partner):
    member = MemberFactory()

    def purchase(reference: str) -> None:
        services.record_purchase(
            member=member,
            partner=partner,
            reference=reference,
            amount=Decimal("100.00"),
            currency="CNY",
            points=100,
        )

    purchase("o-1")
    before = _queries._query2pg.cache_info()
    purchase("o-2")
    after = _queries._query2pg.cache_info()

    assert after.hits > before.hits
    assert after.misses == before.misses
