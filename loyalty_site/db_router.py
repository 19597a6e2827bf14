"""Reports on a read replica (docs/adr/0017, docs/scaling.md).

With `DATABASE_REPLICA_URL` set, settings add a "replica" database alias. Nothing goes there
unless it is asked for, because a replica lags behind the primary and a balance shown right
after the write that changed it must come from the primary:

- a report or export marks its reads: `on_replica(queryset)`, or runs them inside
  `with reading_from_replica():` (every ORM read of the block, raw SQL through
  `replica_connection()`);
- everything else, every write, and every read inside a transaction (the ledger's locked
  reads: `select_for_update` only exists inside one) uses "default".

With the variable unset, every helper answers "default" and nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

REPLICA_DB_ALIAS = "replica"
QuerySetT = TypeVar("QuerySetT", bound=QuerySet)

_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


def replica_configured() -> bool:
    return bool(settings.DATABASE_REPLICA_URL) and REPLICA_DB_ALIAS in settings.DATABASES


def _in_transaction() -> bool:
    # Inside a transaction on the primary, a read must see that transaction's own writes.
    return connections[DEFAULT_DB_ALIAS].in_atomic_block


def replica_alias() -> str:
    """The alias a marked read should use now: "replica" when configured and not inside a
    transaction on the primary, else "default"."""
    if replica_configured() and not _in_transaction():
        return REPLICA_DB_ALIAS
    return DEFAULT_DB_ALIAS


def on_replica(queryset: QuerySetT) -> QuerySetT:
    """`queryset` read from the replica when there is one (a report's read)."""
    return queryset.using(replica_alias())


def replica_connection():
    """The connection for a report's raw SQL (`with replica_connection().cursor() as ...`)."""
    return connections[replica_alias()]


@contextmanager
def reading_from_replica() -> Iterator[None]:
    """Send the block's ORM reads to the replica (writes and transactions stay on default)."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


class ReplicaRouter:
    """Reads go to the replica only when marked (reading_from_replica) and outside a
    transaction; writes always go to the primary; only the primary is migrated."""

    def db_for_read(self, model, **hints) -> str | None:
        if _reading_from_replica.get():
            return replica_alias()
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        # The replica holds the same rows as the primary: objects from either may be related.
        databases = {DEFAULT_DB_ALIAS, REPLICA_DB_ALIAS}
        if obj1._state.db in databases and obj2._state.db in databases:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool | None:
        # The replica receives the schema by replication, never by `migrate`.
        return db != REPLICA_DB_ALIAS
