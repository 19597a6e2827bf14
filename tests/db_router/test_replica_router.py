"""DATABASE_REPLICA_URL: reports read from the replica when they ask for it; writes,
transactions (the ledger's locked reads) and unmarked reads stay on the primary."""

from __future__ import annotations

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from loyalty_site.db_router import (
    REPLICA_DB_ALIAS,
    ReplicaRouter,
    on_replica,
    reading_from_replica,
    replica_alias,
    replica_connection,
)
from members.models import Member
from points import services
from points.models import Account, Entry
from tests.factories import MemberFactory

# What settings.py adds when DATABASE_REPLICA_URL is set, pointed at the test database through
# TEST MIRROR (a connection of its own, as a real replica would be). Registered at collection,
# before the test databases are set up; unused unless a test sets DATABASE_REPLICA_URL.
if REPLICA_DB_ALIAS not in connections.settings:
    connections.settings[REPLICA_DB_ALIAS] = {
        **connections.settings["default"],
        "TEST": {"MIRROR": "default"},
    }

BOTH = ["default", REPLICA_DB_ALIAS]


@pytest.fixture
def replica_on(settings):
    settings.DATABASE_REPLICA_URL = "postgres://replica.internal/loyalty"


def test_without_a_replica_every_read_uses_the_primary(db, settings):
    settings.DATABASE_REPLICA_URL = ""
    router = ReplicaRouter()

    assert replica_alias() == "default"
    assert on_replica(Member.objects.all()).db == "default"
    assert replica_connection().alias == "default"
    with reading_from_replica():
        assert router.db_for_read(Member) == "default"
        assert Member.objects.all().db == "default"


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_marked_reads_go_to_the_replica_and_everything_else_to_the_primary(replica_on):
    router = ReplicaRouter()

    assert on_replica(Entry.objects.all()).db == REPLICA_DB_ALIAS
    assert replica_connection().alias == REPLICA_DB_ALIAS
    assert Entry.objects.all().db == "default"  # unmarked
    assert router.db_for_read(Entry) == "default"
    with reading_from_replica():
        assert router.db_for_read(Entry) == REPLICA_DB_ALIAS
        assert Member.objects.all().db == REPLICA_DB_ALIAS
        assert router.db_for_write(Account) == "default"
    assert router.db_for_read(Entry) == "default"  # the mark ends with the block


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_inside_a_transaction_reads_stay_on_the_primary(replica_on):
    with transaction.atomic():
        assert replica_alias() == "default"
        assert on_replica(Account.objects.all()).db == "default"
        with reading_from_replica():
            assert Account.objects.select_for_update().db == "default"


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_only_the_primary_is_migrated_and_rows_of_both_relate(replica_on):
    router = ReplicaRouter()
    member, account = Member(), Account()
    member._state.db, account._state.db = REPLICA_DB_ALIAS, "default"

    assert router.allow_migrate("default", "points") is True
    assert router.allow_migrate(REPLICA_DB_ALIAS, "points") is False
    assert router.allow_relation(member, account) is True


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_a_report_reads_committed_rows_through_the_replica_connection(replica_on, entry_tier):
    member = MemberFactory(external_id="u-replica")
    services.earn(member=member, points=40)

    with (
        CaptureQueriesContext(connections[REPLICA_DB_ALIAS]) as on_the_replica,
        CaptureQueriesContext(connections["default"]) as on_the_primary,
    ):
        entries = on_replica(Entry.objects.filter(account__member=member))
        amounts = list(entries.values_list("amount", flat=True))
        with reading_from_replica():
            found = Member.objects.get(external_id="u-replica")

    assert amounts == [40]
    assert found.pk == member.pk and found._state.db == REPLICA_DB_ALIAS
    assert len(on_the_replica) == 2
    assert len(on_the_primary) == 0


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_a_row_read_on_the_replica_is_saved_to_the_primary(replica_on, entry_tier):
    member = MemberFactory(external_id="u-saved")
    member._state.db = REPLICA_DB_ALIAS  # as if read with on_replica()
    member.name = "renamed"

    with CaptureQueriesContext(connections["default"]) as on_the_primary:
        member.save(update_fields=["name"])

    assert any("UPDATE" in q["sql"] for q in on_the_primary)
    assert Member.objects.get(pk=member.pk).name == "renamed"
