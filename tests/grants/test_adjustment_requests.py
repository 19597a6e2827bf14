"""Maker-checker for manual adjustments: above the threshold a second operator decides."""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.contrib.messages import get_messages
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from points import grants, services
from points.exceptions import AlreadyDecided, InsufficientPoints, OwnRequestApproval
from points.models import Account, AdjustmentRequest, Entry

pytestmark = pytest.mark.django_db


def available(member) -> int:
    return Account.objects.filter(member=member).values_list("available", flat=True).first() or 0


def test_an_adjustment_within_the_threshold_is_written_at_once(member, maker, thresholds):
    thresholds(adjustment=1000)

    outcome = grants.adjust_or_request_approval(
        member=member, points=1000, reason="goodwill", operator=maker
    )

    assert outcome.request is None
    assert (outcome.entry.amount, outcome.entry.operator_id) == (1000, maker.pk)
    assert outcome.entry.approved_by_id is None
    assert available(member) == 1000
    assert not AdjustmentRequest.objects.exists()


@pytest.mark.parametrize("points", [1001, -1001])
def test_an_adjustment_above_the_threshold_waits_and_changes_nothing(
    member, maker, thresholds, points
):
    thresholds(adjustment=1000)

    outcome = grants.adjust_or_request_approval(
        member=member, points=points, reason="  big fix  ", operator=maker
    )

    request = outcome.request
    assert outcome.entry is None
    assert (request.state, request.points, request.reason) == ("pending", points, "big fix")
    assert request.requested_by_id == maker.pk
    assert not Entry.objects.exists()
    assert available(member) == 0


def test_the_threshold_is_a_setting(member, maker, thresholds):
    thresholds(adjustment=50)

    small = grants.adjust_or_request_approval(member=member, points=50, reason="r", operator=maker)
    large = grants.adjust_or_request_approval(member=member, points=51, reason="r", operator=maker)

    assert small.entry is not None and small.request is None
    assert large.entry is None and large.request is not None


def test_the_maker_cannot_approve_their_own_request(member, maker, thresholds):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=500, reason="r", operator=maker
    ).request

    with pytest.raises(OwnRequestApproval):
        grants.approve_adjustment_request(request_id=request.pk, approver=maker)
    with pytest.raises(OwnRequestApproval):
        grants.reject_adjustment_request(request_id=request.pk, decided_by=maker, reason="no")

    request.refresh_from_db()
    assert (request.state, request.decided_by_id, request.entry_id) == ("pending", None, None)
    assert not Entry.objects.exists()


def test_the_database_refuses_a_decision_by_the_maker(member, maker, thresholds):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=500, reason="r", operator=maker
    ).request

    # given a write that bypasses the service
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=request.pk).update(
            state="rejected", decided_by=maker, decided_at=timezone.now()
        )


def test_the_database_refuses_an_approved_request_without_its_entry(
    member, maker, checker, thresholds
):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=500, reason="r", operator=maker
    ).request

    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=request.pk).update(
            state="approved", decided_by=checker, decided_at=timezone.now()
        )


def test_the_approved_entry_names_the_maker_and_the_checker(member, maker, checker, thresholds):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=500, reason="compensation", operator=maker
    ).request

    approved = grants.approve_adjustment_request(request_id=request.pk, approver=checker)

    entry = Entry.objects.get()
    assert (entry.kind, entry.amount, entry.reason) == ("adjust", 500, "compensation")
    assert (entry.operator_id, entry.approved_by_id) == (maker.pk, checker.pk)
    assert (entry.source_type, entry.source_id) == ("adjustment_request", str(request.pk))
    assert (approved.state, approved.decided_by_id, approved.entry_id) == (
        "approved",
        checker.pk,
        entry.pk,
    )
    assert available(member) == 500


def test_an_approved_negative_adjustment_names_both_too(member, maker, checker, thresholds):
    services.earn(member=member, points=800)
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=-300, reason="fraud", operator=maker
    ).request

    grants.approve_adjustment_request(request_id=request.pk, approver=checker)

    entry = Entry.objects.get(kind="adjust")
    assert (entry.amount, entry.operator_id, entry.approved_by_id) == (-300, maker.pk, checker.pk)
    assert available(member) == 500


def test_a_request_is_decided_once(member, maker, checker, thresholds):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=500, reason="r", operator=maker
    ).request
    grants.approve_adjustment_request(request_id=request.pk, approver=checker)

    with pytest.raises(AlreadyDecided):
        grants.approve_adjustment_request(request_id=request.pk, approver=checker)
    with pytest.raises(AlreadyDecided):
        grants.reject_adjustment_request(request_id=request.pk, decided_by=checker, reason="x")

    assert Entry.objects.count() == 1
    assert available(member) == 500


def test_a_rejected_request_never_reaches_the_ledger(member, maker, checker, thresholds):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=500, reason="r", operator=maker
    ).request

    rejected = grants.reject_adjustment_request(
        request_id=request.pk, decided_by=checker, reason="no ticket"
    )

    assert (rejected.state, rejected.rejection_reason, rejected.decided_by_id) == (
        "rejected",
        "no ticket",
        checker.pk,
    )
    with pytest.raises(AlreadyDecided):
        grants.approve_adjustment_request(request_id=request.pk, approver=checker)
    assert not Entry.objects.exists()


def test_a_ledger_refusal_on_approval_leaves_the_request_pending(
    member, maker, checker, thresholds
):
    thresholds(adjustment=10)
    request = grants.adjust_or_request_approval(
        member=member, points=-500, reason="r", operator=maker
    ).request

    with pytest.raises(InsufficientPoints):
        grants.approve_adjustment_request(request_id=request.pk, approver=checker)

    request.refresh_from_db()
    assert (request.state, request.entry_id) == ("pending", None)
    assert not Entry.objects.exists()


# --- In the admin ---------------------------------------------------------------------------------
ADJUST_PERMISSIONS = ("view_account", "change_account")
DECIDE_PERMISSIONS = ("view_adjustmentrequest", "approve_adjustmentrequest")


def _adjust_in_admin(client, member, points: int):
    account = services.account_for_member(member=member)
    return client.post(
        reverse("admin:points_account_changelist"),
        {
            "action": "adjust_points",
            helpers.ACTION_CHECKBOX_NAME: [account.pk],
            "apply": "1",
            "points": str(points),
            "reason": "call centre ticket 42",
        },
    )


def _decide_in_admin(client, request_id: int, action: str, **extra):
    return client.post(
        reverse("admin:points_adjustmentrequest_changelist"),
        {"action": action, helpers.ACTION_CHECKBOX_NAME: [request_id], **extra},
    )


def test_the_adjust_action_stores_a_request_above_the_threshold(
    member, maker, thresholds, staff_client
):
    thresholds(adjustment=100)
    client = staff_client(maker, *ADJUST_PERMISSIONS)

    small = _adjust_in_admin(client, member, 100)
    large = _adjust_in_admin(client, member, 5000)

    assert small.status_code == large.status_code == 302
    assert Entry.objects.get().amount == 100
    request = AdjustmentRequest.objects.get()
    assert (request.points, request.state, request.requested_by_id) == (5000, "pending", maker.pk)
    texts = [str(message) for message in get_messages(large.wsgi_request)]
    assert any("approval" in text for text in texts)


def test_an_operator_cannot_approve_their_own_request_in_the_admin(
    member, maker, thresholds, staff_client
):
    thresholds(adjustment=100)
    client = staff_client(maker, *ADJUST_PERMISSIONS, *DECIDE_PERMISSIONS)
    _adjust_in_admin(client, member, 5000)
    request = AdjustmentRequest.objects.get()

    response = _decide_in_admin(client, request.pk, "approve_requests")

    assert response.status_code == 302
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("Another operator must decide" in text for text in texts), texts
    request.refresh_from_db()
    assert request.state == "pending"
    assert Entry.objects.count() == 0


def test_another_operator_approves_in_the_admin(member, maker, checker, thresholds, staff_client):
    thresholds(adjustment=100)
    _adjust_in_admin(staff_client(maker, *ADJUST_PERMISSIONS), member, 5000)
    request = AdjustmentRequest.objects.get()

    response = _decide_in_admin(
        staff_client(checker, *DECIDE_PERMISSIONS), request.pk, "approve_requests"
    )

    assert response.status_code == 302
    entry = Entry.objects.get()
    assert (entry.amount, entry.operator_id, entry.approved_by_id) == (5000, maker.pk, checker.pk)
    assert available(member) == 5000


def test_another_operator_rejects_with_a_reason_in_the_admin(
    member, maker, checker, thresholds, staff_client
):
    thresholds(adjustment=100)
    _adjust_in_admin(staff_client(maker, *ADJUST_PERMISSIONS), member, 5000)
    request = AdjustmentRequest.objects.get()
    client = staff_client(checker, *DECIDE_PERMISSIONS)

    asked = _decide_in_admin(client, request.pk, "reject_requests")
    done = _decide_in_admin(
        client, request.pk, "reject_requests", apply="1", rejection_reason="no ticket"
    )

    assert asked.status_code == 200 and b'name="rejection_reason"' in asked.content
    assert done.status_code == 302
    request.refresh_from_db()
    assert (request.state, request.rejection_reason) == ("rejected", "no ticket")
    assert not Entry.objects.exists()


def test_without_the_approve_permission_there_is_no_approve_action(
    member, maker, checker, thresholds, staff_client
):
    thresholds(adjustment=100)
    grants.adjust_or_request_approval(member=member, points=5000, reason="r", operator=maker)
    client = staff_client(checker, "view_adjustmentrequest")

    page = client.get(reverse("admin:points_adjustmentrequest_changelist"))
    tried = _decide_in_admin(client, AdjustmentRequest.objects.get().pk, "approve_requests")

    assert page.status_code == 200
    assert b"approve_requests" not in page.content
    assert tried.status_code in (200, 302)
    assert AdjustmentRequest.objects.get().state == "pending"
    assert not Entry.objects.exists()
