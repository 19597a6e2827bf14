"""Concurrent duplicates of one Idempotency-Key over the real API: exactly one effect."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

from rest_framework.test import APIClient

from campaigns.models import Event
from loyalty_site.api.keys import create_partner_key
from points import services
from points.models import Account, Entry, Order, PartnerAPIKey
from points.services import check_ledger_invariants
from tests.concurrency.conftest import TRANSACTIONAL
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import MemberFactory

pytestmark = TRANSACTIONAL

THREADS = 10
ROUNDS = 3
# Round 0 sends every duplicate at once (they meet the first in flight); later rounds spread
# them over ~90 ms so that some arrive as the first commits and after it (replays).
STAGGER = [0.0, 0.01, 0.01]


def new_key() -> tuple[PartnerAPIKey, str]:
    return create_partner_key(
        partner_name="POS", scopes=["members:read", "events:write", "points:spend"]
    )


def post_at_once(
    plain_key: str, path: str, bodies: list[dict], key: str, stagger: float = 0.0
) -> list[tuple]:
    """POST each body from its own thread and client, all with the same Idempotency-Key, the
    n-th `n * stagger` seconds after the start; returns [(status, Idempotent-Replayed, JSON)]."""

    def post(body: dict, delay: float):
        time.sleep(delay)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
        response = client.post(f"/api/v1/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        return response.status_code, response.headers.get("Idempotent-Replayed"), response.json()

    outcomes = run_concurrently(
        *[(lambda body=body, delay=n * stagger: post(body, delay)) for n, body in enumerate(bodies)]
    )
    assert unexpected(outcomes) == []
    return [outcome.value for outcome in outcomes]


def the_original(answers: list[tuple], *, reused_allowed: bool = False) -> dict:
    """Check that exactly one answer ran the write and every other one is a replay of it, a
    409 in flight (or, for different bodies, a 422 reused); returns the original body."""
    originals = [body for status, replayed, body in answers if status == 201 and not replayed]
    assert len(originals) == 1, answers
    for status, replayed, body in answers:
        if status == 201 and replayed:
            assert replayed == "true"
            assert body == originals[0]
        elif status == 409:
            assert body["code"] == "idempotency_key_in_flight"
        elif status == 422 and reused_allowed:
            assert body["code"] == "idempotency_key_reused"
        else:
            assert (status, replayed) == (201, None), answers
    return originals[0]


def test_duplicate_purchase_events_at_once_earn_once():
    _key, plain = new_key()
    member = MemberFactory()
    seen = Counter()

    for round_number in range(ROUNDS):
        body = {
            "type": "purchase",
            "member": member.external_id,
            "reference": f"order-{round_number}",
            "amount": "128.50",
        }
        answers = post_at_once(
            plain,
            "events",
            [body] * THREADS,
            key=f"evt-{round_number}",
            stagger=STAGGER[round_number],
        )

        original = the_original(answers)
        assert original["points_awarded"] == 128
        seen.update((status, replayed) for status, replayed, _body in answers)

    account = Account.objects.get(member=member)
    assert account.available == 128 * ROUNDS
    assert Order.objects.count() == ROUNDS
    assert Entry.objects.filter(kind="earn").count() == ROUNDS
    assert Event.objects.count() == ROUNDS
    assert seen[(201, "true")] + seen[(409, None)] == ROUNDS * (THREADS - 1)
    assert check_ledger_invariants() == []


def test_duplicate_purchases_with_different_bodies_under_one_key_earn_once():
    _key, plain = new_key()
    member = MemberFactory()
    bodies = [
        {"type": "purchase", "member": member.external_id, "reference": f"o-{n}", "amount": "10"}
        for n in range(THREADS)
    ]

    answers = post_at_once(plain, "events", bodies, key="one-key")

    original = the_original(answers, reused_allowed=True)
    assert original["points_awarded"] == 10
    assert Order.objects.count() == 1
    assert Account.objects.get(member=member).available == 10
    assert check_ledger_invariants() == []


def test_duplicate_point_payments_at_once_take_the_points_once():
    _key, plain = new_key()
    member = MemberFactory()
    services.earn(member=member, points=1000)

    for round_number in range(ROUNDS):
        body = {"points": 100, "reference": f"pay-{round_number}"}
        answers = post_at_once(
            plain,
            f"members/{member.external_id}/points/spend",
            [body] * THREADS,
            key=f"spend-{round_number}",
            stagger=STAGGER[round_number],
        )

        original = the_original(answers)
        assert (original["entry"]["amount"], original["cash_value"]) == (-100, "1.00")

    assert Account.objects.get(member=member).available == 1000 - 100 * ROUNDS
    assert Entry.objects.filter(kind="spend").count() == ROUNDS
    assert check_ledger_invariants() == []


def test_duplicate_partial_refunds_at_once_reverse_once():
    api_key, plain = new_key()
    member = MemberFactory()
    services.record_purchase(
        member=member,
        partner=api_key.partner,
        reference="o-1",
        amount=Decimal("100.00"),
        currency="CNY",
        points=100,
    )

    answers = post_at_once(plain, "orders/o-1/refunds", [{"amount": "40.00"}] * THREADS, key="r")

    assert the_original(answers)["points_reversed"] == 40
    assert Order.objects.get().refunded_amount == Decimal("40.00")
    assert Account.objects.get(member=member).available == 60
    assert check_ledger_invariants() == []
