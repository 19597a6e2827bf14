"""Risk control in admin: the freeze switch and its banner, the limits, the review queue with
its approve and reject actions, one by one and in bulk (docs/adr/0018)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Event, HeldEvent, RiskLimits
from points.models import Account, IssuanceFreeze

pytestmark = pytest.mark.django_db

QUEUE = "admin:campaigns_heldevent_changelist"


def available(external_id: str = "u-1001") -> int:
    account = Account.objects.filter(member__external_id=external_id).first()
    return account.available if account else 0


# --- The freeze switch ---------------------------------------------------------------------------
def test_an_operator_freezes_issuance_with_a_reason_and_every_page_says_so(
    admin_client, admin_user, pos, member
):
    index = admin_client.get(reverse("admin:index"))
    assert b"issuance-frozen" not in index.content
    ends_at = timezone.localtime() + timedelta(days=1)

    response = admin_client.post(
        reverse("admin:points_issuancefreeze_add"),
        {
            "reason": "POS keys leaked at store 12",
            "ends_at_0": ends_at.strftime("%Y-%m-%d"),
            "ends_at_1": ends_at.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302, response.content
    freeze = IssuanceFreeze.objects.get()
    assert (freeze.reason, freeze.started_by) == ("POS keys leaked at store 12", admin_user)
    assert freeze.ends_at is not None
    assert pos.purchase("u-1001", "o", "10").json()["code"] == "issuance_frozen"
    page = admin_client.get(reverse("admin:campaigns_event_changelist")).content.decode()
    assert 'id="issuance-frozen"' in page
    assert "POS keys leaked at store 12" in page


def test_a_freeze_without_a_reason_is_refused_in_the_form(admin_client):
    response = admin_client.post(reverse("admin:points_issuancefreeze_add"), {"reason": " "})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not IssuanceFreeze.objects.exists()


def test_the_lift_action_resumes_issuance(admin_client, admin_user, pos, member, freeze):
    frozen = freeze()

    response = admin_client.post(
        reverse("admin:points_issuancefreeze_changelist"),
        {"action": "lift_freeze", ACTION_CHECKBOX_NAME: [frozen.pk]},
    )

    assert response.status_code == 302
    frozen.refresh_from_db()
    assert frozen.lifted_by == admin_user
    assert pos.purchase("u-1001", "o", "10").status_code == 201
    assert b"issuance-frozen" not in admin_client.get(reverse("admin:index")).content


def test_a_freeze_is_never_edited_or_deleted_in_admin(admin_client, freeze):
    frozen = freeze()
    change = reverse("admin:points_issuancefreeze_change", args=[frozen.pk])
    admin_client.post(change, {"reason": "changed"})
    delete = admin_client.post(reverse("admin:points_issuancefreeze_delete", args=[frozen.pk]))

    assert delete.status_code == 403
    frozen.refresh_from_db()
    assert frozen.reason != "changed"


# --- Limits and the review queue -----------------------------------------------------------------
def test_limits_saved_in_admin_apply_to_the_next_event(admin_client, pos, member):
    url = reverse("admin:campaigns_risklimits_change", args=[1])
    RiskLimits.get()
    response = admin_client.post(
        url,
        {
            "max_points_per_event": "100",
            "max_points_per_member_day": "",
            "max_events_per_member_hour": "",
            "max_rewards_per_device_day": "",
        },
    )
    assert response.status_code == 302, response.content

    assert pos.purchase("u-1001", "o", "101").json()["held_for_review"] is True


@pytest.fixture
def held(pos, member, limits):
    """Three held purchases of 150, 160 and 170 points."""
    limits(max_points_per_event=100)
    bodies = [pos.purchase("u-1001", f"o-{p}", str(p)).json() for p in (150, 160, 170)]
    assert all(b["held_for_review"] for b in bodies)
    return list(HeldEvent.objects.order_by("points"))


@pytest.fixture
def reviewer_client(reviewer) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def test_the_queue_shows_why_each_event_was_held_and_filters_by_reason(reviewer_client, held):
    response = reviewer_client.get(reverse(QUEUE), HTTP_ACCEPT_LANGUAGE="en")
    page = response.content.decode()

    assert response.status_code == 200
    assert "points in one event: 150 &gt; 100" in page
    by_reason = reviewer_client.get(reverse(QUEUE), {"reason": "points_per_event"})
    other = reviewer_client.get(reverse(QUEUE), {"reason": "events_per_member_hour"})
    assert len(by_reason.context["cl"].result_list) == 3
    assert len(other.context["cl"].result_list) == 0
    detail = reviewer_client.get(reverse("admin:campaigns_heldevent_change", args=[held[0].pk]))
    assert detail.status_code == 200
    assert "default-purchase" in detail.content.decode()


def test_a_reviewer_approves_one_event(reviewer_client, reviewer, held):
    response = reviewer_client.post(
        reverse(QUEUE), {"action": "approve_selected", ACTION_CHECKBOX_NAME: [held[0].pk]}
    )

    assert response.status_code == 302
    assert available() == 150
    held[0].refresh_from_db()
    assert (held[0].status, held[0].reviewer) == (HeldEvent.Status.APPROVED, reviewer)


def test_bulk_approval_grants_each_event_its_points_once(reviewer_client, held):
    ids = [h.pk for h in held]
    for _click in range(2):  # a double click: the second finds them decided
        reviewer_client.post(
            reverse(QUEUE), {"action": "approve_selected", ACTION_CHECKBOX_NAME: ids}
        )

    assert available() == 150 + 160 + 170
    assert set(Event.objects.values_list("outcome", flat=True)) == {Event.Outcome.AWARDED}


def test_bulk_rejection_asks_for_a_reason_and_records_it(reviewer_client, held):
    ids = [h.pk for h in held[:2]]
    form = reviewer_client.post(
        reverse(QUEUE), {"action": "reject_selected", ACTION_CHECKBOX_NAME: ids}
    )
    assert form.status_code == 200  # the reason form
    assert HeldEvent.objects.filter(status="pending").count() == 3

    reviewer_client.post(
        reverse(QUEUE),
        {
            "action": "reject_selected",
            ACTION_CHECKBOX_NAME: ids,
            "apply": "1",
            "reason": "same card, 3 accounts",
        },
    )

    rejected = HeldEvent.objects.filter(status="rejected")
    assert set(rejected.values_list("pk", flat=True)) == set(ids)
    assert set(rejected.values_list("decision_reason", flat=True)) == {"same card, 3 accounts"}
    assert available() == 0


def test_staff_without_the_review_permission_cannot_decide(held):
    from django.contrib.auth.models import Permission

    from tests.factories import OperatorFactory

    viewer = OperatorFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_heldevent"))
    client = Client()
    client.force_login(viewer)

    listing = client.get(reverse(QUEUE))
    client.post(reverse(QUEUE), {"action": "approve_selected", ACTION_CHECKBOX_NAME: [held[0].pk]})

    assert listing.status_code == 200
    assert "approve_selected" not in listing.content.decode()
    assert available() == 0
