"""Idempotency-Key: one effect per (partner, key), whatever the timing (api.md, "Conventions").

The view under test (tests/api/plumbing_urls.py) creates one member per executed request, so
the number of members named after the request is the number of times the write happened.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty_site.api.idempotency import purge_expired_records
from loyalty_site.models import IdempotencyRecord
from members.models import Member
from tests.api import plumbing_urls
from tests.api.assertions import assert_problem

URL = "/api/v1/test/idempotent-members"

pytestmark = pytest.mark.urls("tests.api.plumbing_urls")


def post(client, body: dict, key: str | None = "key-1"):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(URL, body, format="json", **headers)


def effects(name: str) -> int:
    return Member.objects.filter(name=name).count()


@pytest.fixture
def writer(partner_api):
    return partner_api("members:write", partner_name="Idempotent partner")


@pytest.fixture
def hold_in_flight():
    """Makes the next executed write wait inside its transaction until released."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(10)

    plumbing_urls.in_flight_hooks.append(hold)
    yield entered, release
    release.set()
    plumbing_urls.in_flight_hooks.remove(hold)


def threaded_client(plain_key: str) -> APIClient:
    # A test client in a thread uses that thread's own database connection.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
    return client


@pytest.mark.django_db
def test_a_replay_returns_the_same_answer_and_does_nothing_twice(writer):
    first = post(writer, {"name": "Ann"})
    second = post(writer, {"name": "Ann"})

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert effects("Ann") == 1


@pytest.mark.django_db
def test_the_same_body_in_another_key_order_is_a_replay(writer):
    first = post(writer, {"name": "Ann", "note": "a"})
    second = writer.post(
        URL,
        data='{"note": "a", "name": "Ann"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="key-1",
    )

    assert second.json() == first.json()
    assert effects("Ann") == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_idempotency_key_reused(writer):
    post(writer, {"name": "Ann"})

    response = post(writer, {"name": "Bob"})

    assert_problem(response, 422, "idempotency_key_reused")
    assert effects("Bob") == 0


@pytest.mark.django_db
def test_keys_are_per_partner(writer, partner_api):
    other = partner_api("members:write", partner_name="Another partner")

    post(writer, {"name": "Ann"})
    response = post(other, {"name": "Ann"})

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert effects("Ann") == 2


@pytest.mark.django_db
def test_different_keys_are_different_requests(writer):
    post(writer, {"name": "Ann"}, key="key-1")
    post(writer, {"name": "Ann"}, key="key-2")

    assert effects("Ann") == 2


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "", "k" * 256])
def test_a_missing_or_too_long_key_is_400_and_nothing_happens(writer, key):
    response = post(writer, {"name": "Ann"}, key=key)

    body = assert_problem(response, 400, "validation_error")
    assert "Idempotency-Key" in body["errors"]
    assert effects("Ann") == 0


@pytest.mark.django_db
def test_a_key_of_255_characters_is_accepted(writer):
    assert post(writer, {"name": "Ann"}, key="k" * 255).status_code == 201


@pytest.mark.django_db
def test_a_domain_error_is_stored_and_replayed_and_its_partial_write_undone(writer):
    first = post(writer, {"name": "Ann", "fail": True})
    second = post(writer, {"name": "Ann", "fail": True})

    body = assert_problem(first, 422, "member_frozen")
    assert_problem(second, 422, "member_frozen")
    assert second.json() == body
    assert second["Idempotent-Replayed"] == "true"
    assert effects("Ann") == 0  # the member created before the error was rolled back


@pytest.mark.django_db
def test_a_request_validation_error_is_not_stored_so_a_corrected_retry_runs(writer):
    first = writer.post(
        URL, data="{broken", content_type="application/json", HTTP_IDEMPOTENCY_KEY="key-1"
    )
    second = post(writer, {"name": "Ann"})

    assert first.status_code == 400
    assert second.status_code == 201
    assert effects("Ann") == 1


@pytest.mark.django_db
def test_a_key_purged_after_its_ttl_runs_again(writer):
    post(writer, {"name": "Ann"})
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(days=3))
    purge_expired_records()

    response = post(writer, {"name": "Ann"})

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert effects("Ann") == 2


@pytest.mark.django_db
def test_records_keep_the_answer_as_the_client_received_it(writer):
    response = post(writer, {"name": "Ann"})

    record = IdempotencyRecord.objects.get(key="key-1")
    assert record.response_status == 201
    assert record.response_body == response.json()
    assert record.method == "POST"
    assert record.path == URL


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("entry_tier")
def test_a_duplicate_while_the_first_is_in_flight_gets_409(writer, hold_in_flight):
    entered, release = hold_in_flight
    plain_key = writer.plain_key
    outcome = {}

    def first_request() -> None:
        try:
            outcome["first"] = post(threaded_client(plain_key), {"name": "Ann"})
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert entered.wait(10), "the first request never started its write"
        duplicate = post(threaded_client(plain_key), {"name": "Ann"})
        other_body = post(threaded_client(plain_key), {"name": "Bob"})
    finally:
        release.set()
        thread.join(10)

    assert_problem(duplicate, 409, "idempotency_key_in_flight")
    assert_problem(other_body, 409, "idempotency_key_in_flight")
    assert outcome["first"].status_code == 201
    replay = post(threaded_client(plain_key), {"name": "Ann"})
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert effects("Ann") == 1
    assert effects("Bob") == 0


def run_concurrently(plain_key: str, body: dict, key: str, count: int = 8) -> list:
    barrier = threading.Barrier(count)
    responses: list = [None] * count

    def send(index: int) -> None:
        try:
            client = threaded_client(plain_key)
            barrier.wait(10)
            responses[index] = post(client, body, key=key)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return responses


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("entry_tier")
def test_eight_concurrent_requests_with_one_key_have_exactly_one_effect(writer):
    # A slow write keeps the first request in flight while the others arrive.
    plumbing_urls.in_flight_hooks.append(lambda: threading.Event().wait(0.3))
    try:
        responses = run_concurrently(writer.plain_key, {"name": "Ann"}, key="burst")
    finally:
        plumbing_urls.in_flight_hooks.clear()

    assert effects("Ann") == 1
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    originals = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r]
    assert len(originals) == 1
    for response in responses:
        if response.status_code == 201:
            assert response.json() == originals[0].json()
        else:
            assert_problem(response, 409, "idempotency_key_in_flight")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("entry_tier")
def test_concurrent_bursts_at_full_speed_never_run_a_write_twice(writer):
    # No delay: duplicates arrive around the first one's commit, the hardest moment.
    for round_number in range(10):
        name = f"Burst {round_number}"
        responses = run_concurrently(writer.plain_key, {"name": name}, key=f"burst-{round_number}")

        assert effects(name) == 1
        assert {r.status_code for r in responses} <= {201, 409}
        bodies = [r.json() for r in responses if r.status_code == 201]
        assert all(body == bodies[0] for body in bodies)  # replays say what the original said
        assert sum("Idempotent-Replayed" not in r for r in responses if r.status_code == 201) == 1


@pytest.mark.django_db
def test_no_index_on_the_partner_alone_competes_with_the_unique_one():
    """With an index on partner_id alone the planner was seen (B2, stale statistics) to find a
    key by reading every record of the partner; the unique (partner, key) index serves both."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, array_agg(a.attname ORDER BY k.ord)
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid
              CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             WHERE x.indrelid = %s::regclass
             GROUP BY i.relname
            """,
            [IdempotencyRecord._meta.db_table],
        )
        indexes = dict(cursor.fetchall())
    assert indexes["idempotency_partner_key_uniq"] == ["partner_id", "key"]
    assert ["partner_id"] not in indexes.values(), indexes
