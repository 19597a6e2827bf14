"""Two workers running one bulk grant, two operators deciding one request: each happens once.

Real threads against real PostgreSQL (`transaction=True`: threads see committed rows only).
"""

from __future__ import annotations

import pytest

from points import grants
from points.exceptions import AlreadyDecided
from points.models import Account, BulkGrant, Entry
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import MemberFactory, OperatorFactory
from tests.grants.conftest import upload_grant

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = 40


@pytest.fixture
def operators(entry_tier):
    return OperatorFactory(username="maker"), OperatorFactory(username="checker")


def test_two_runs_of_one_grant_at_once_grant_each_row_once(operators):
    maker, _checker = operators
    members = [MemberFactory(external_id=f"r-{n:03d}") for n in range(MEMBERS)]
    rows = [(member.external_id, n + 1, "race") for n, member in enumerate(members)]
    _result, grant = upload_grant(rows, user=maker)

    outcomes = run_concurrently(
        lambda: grants.run_bulk_grant(grant_id=grant.pk, chunk_size=7),
        lambda: grants.run_bulk_grant(grant_id=grant.pk, chunk_size=5),
    )

    assert unexpected(outcomes) == []
    assert sum(outcome.value.granted for outcome in outcomes) == MEMBERS
    assert Entry.objects.count() == MEMBERS
    grant = BulkGrant.objects.get(pk=grant.pk)
    assert (grant.state, grant.done_rows, grant.granted_rows) == ("done", MEMBERS, MEMBERS)
    assert grant.granted_points == sum(range(1, MEMBERS + 1))
    assert dict(Account.objects.values_list("member__external_id", "available")) == {
        external_id: points for external_id, points, _reason in rows
    }


def test_two_checkers_approving_one_request_at_once_write_one_entry(operators):
    maker, checker = operators
    other_checker = OperatorFactory(username="checker-2")
    member = MemberFactory(external_id="r-1")
    request = grants.adjust_or_request_approval(
        member=member, points=5000, reason="race", operator=maker
    ).request

    outcomes = run_concurrently(
        lambda: grants.approve_adjustment_request(request_id=request.pk, approver=checker),
        lambda: grants.approve_adjustment_request(request_id=request.pk, approver=other_checker),
    )

    assert unexpected(outcomes, AlreadyDecided) == []
    assert sorted(outcome.ok for outcome in outcomes) == [False, True]
    assert Entry.objects.count() == 1
    assert Account.objects.get(member=member).available == 5000
