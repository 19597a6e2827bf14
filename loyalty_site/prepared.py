"""Prepared statements for the hot path (POST /events, the ledger): planned once per connection.

Django turns psycopg's automatic preparing off (prepare_threshold=None) for the sake of
transaction-pooling pgbouncers, and binds parameters on the client, so PostgreSQL parses and
plans every statement again. The few statements run on every earn are long CTEs whose planning
costs more than running them; they go through `statement_cursor()`, which binds on the server
and prepares each statement on its connection (docs/adr/0019, 0020). Set
LEDGER_PREPARED_STATEMENTS = False behind a pooler that cannot keep prepared statements.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.base import ServerBindingCursor


class _PreparedStatementCursor(ServerBindingCursor):
    """Server-side binding, and every statement prepared on its connection (planned once).

    One per connection, kept open: closing it (the end of a `with` block) only drops its
    results. Kept, it keeps psycopg's adaptation state (the dumpers and loaders it looked up)
    for as long as it runs the same statement again, which B1's earn loop and a worker's
    stream of events do."""

    # True while Django logs queries (DEBUG, CaptureQueriesContext): see `execute`.
    logged = False

    def execute(self, query, params=None, *, prepare=None, binary=None):
        result = super().execute(query, params, prepare=True, binary=binary)
        if self.logged:
            # psycopg records the query it ran only when it does not prepare it, and Django's
            # query log reads it from there: give the log the statement's text.
            self._query = SimpleNamespace(query=str(query).encode(), params=None, types=())
        return result

    def close(self) -> None:
        self._reset()


# psycopg only allows an explicit prepare with a threshold set: one so high that nothing else
# is ever prepared by count.
NEVER_BY_COUNT = 2**62


def statement_cursor():
    """A Django cursor whose statements run as prepared statements of the connection."""
    # What connection.cursor() does, on the connection object itself: every attribute read
    # through the `connection` proxy is a context-local lookup, a cost paid per earn.
    db = connections[DEFAULT_DB_ALIAS]
    if not getattr(settings, "LEDGER_PREPARED_STATEMENTS", True):
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = NEVER_BY_COUNT
    # Kept on Django's connection object (one per thread), for its current psycopg connection.
    cursor = getattr(db, "_statement_cursor", None)
    if cursor is None or cursor.connection is not raw:
        cursor = db._statement_cursor = _PreparedStatementCursor(raw)
    cursor.logged = db.queries_logged
    if cursor.logged:
        return db.make_debug_cursor(cursor)
    return db.make_cursor(cursor)
