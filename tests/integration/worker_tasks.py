"""A task the integration tests send through the real broker to a real worker.

It wraps a real service, as every project task does, so its effect (a member row in the test
database) shows that the worker took the task from the broker and wrote through the ORM.
Loaded only into the test's worker, with `celery worker --include tests.integration.worker_tasks`.
"""

from __future__ import annotations

from loyalty_site.celery import app


@app.task(name="tests.integration.upsert_member")
def upsert_member(external_id: str, name: str) -> int:
    from members.services import member_upsert

    return member_upsert(external_id=external_id, name=name).member.pk
