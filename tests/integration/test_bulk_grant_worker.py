"""A real Celery worker runs a bulk grant sent through the real broker (points.run_bulk_grant)."""

from __future__ import annotations

import pytest

from points.models import Account, BulkGrant, Entry
from tests.factories import MemberFactory, OperatorFactory, TierFactory
from tests.grants.conftest import upload_grant
from tests.integration.test_celery_worker import worker  # noqa: F401 (the fixture)

# The worker sees only committed rows, so the test commits (and the tables are emptied after).
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_worker_grants_a_file_once_however_often_the_task_is_sent(worker):  # noqa: F811
    TierFactory(code="member", name="会员 Member", rank=0, growth_threshold=0)
    maker = OperatorFactory(username="maker")
    rows = [(MemberFactory(external_id=f"w-{n}").external_id, 10 * n, "worker") for n in (1, 2)]
    # The upload queues a run itself once committed; two more are sent on top of it.
    _result, grant = upload_grant(rows, user=maker)

    first = worker.send_task("points.run_bulk_grant", args=[grant.pk, 1]).get(timeout=60)
    again = worker.send_task("points.run_bulk_grant", args=[grant.pk]).get(timeout=60)

    assert first["state"] == again["state"] == "done"
    assert again["granted"] == 0
    grant = BulkGrant.objects.get(pk=grant.pk)
    assert (grant.state, grant.done_rows, grant.granted_rows) == ("done", 2, 2)
    assert Entry.objects.count() == 2
    assert dict(Account.objects.values_list("member__external_id", "available")) == {
        "w-1": 10,
        "w-2": 20,
    }
