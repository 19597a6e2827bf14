"""POST /events stays as cheap as before risk control (perf.md B2): with the limits off and no
freeze, not one query more per event (docs/adr/0018)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

# Queries of a warm purchase POST /events (key claim, member, the one earn statement, growth,
# the event row, the stored response, ...): 8, counted by this very test body on the commit
# before risk control (5e8f56d). Risk control must not add to them.
QUERIES_BEFORE_RISK_CONTROL = 8


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _queries_of_a_purchase(pos, reference: str, amount: str = "10") -> int:
    counter = _Counter()
    with connection.execute_wrapper(counter):
        response = pos.purchase("u-1001", reference, amount)
    assert response.status_code == 201, response.content
    assert response.json()["held_for_review"] is False
    return counter.count


@pytest.fixture
def warm(pos, member, settings):
    """A process that has its programme, freeze and rulebook copies (production caching)."""
    settings.PROGRAMME_CACHE_SECONDS = 3600
    settings.RULEBOOK_CHECK_SECONDS = 3600
    pos.purchase("u-1001", "warm", "10")


def test_with_the_limits_off_an_event_costs_what_it_did_before(pos, warm):
    assert _queries_of_a_purchase(pos, "one") == QUERIES_BEFORE_RISK_CONTROL


def test_each_limit_set_costs_at_most_its_own_indexed_query(pos, warm, limits):
    limits(max_points_per_event=1000)  # reads the planned points: a dry plan, no count query
    pos.purchase("u-1001", "rebuild-1", "10")  # this process's change: rulebook rebuilt at once
    per_event = _queries_of_a_purchase(pos, "x")

    limits(max_events_per_member_hour=1000)
    pos.purchase("u-1001", "rebuild-2", "10")
    with_hourly = _queries_of_a_purchase(pos, "z")

    assert with_hourly == per_event + 1
