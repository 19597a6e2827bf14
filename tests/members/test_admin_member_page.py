"""The member change page: points, tier progress, segments, history; personal data masked for
operators without the `view_personal_data` permission."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from members.admin import mask_email, mask_phone
from members.models import Member
from members.services import compute_segments
from tests.factories import MemberFactory, OperatorFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:members_member_changelist")
PHONE, EMAIL = "13812345678", "xiaoming.wang@example.com"


def operator_client(*codenames: str) -> Client:
    user = OperatorFactory(username="-".join(("ops", *codenames)))
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="members", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(pos, tiers):
    member = MemberFactory(external_id="u-1001", name="王小明", phone=PHONE, email=EMAIL)
    pos.purchase("u-1001", "o-1", "1200.00")
    pos.post("members/u-1001/points/spend", {"points": 100, "reference": "pay-1"})
    compute_segments()
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def without_permission():
    return operator_client("view_member", "change_member")


@pytest.fixture
def with_permission():
    return operator_client("view_member", "change_member", "view_personal_data")


def change_page(client: Client, member: Member) -> str:
    url = reverse("admin:members_member_change", args=[member.pk])
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response.content.decode()


def test_masks_keep_enough_to_confirm_with_a_caller():
    assert mask_phone(PHONE) == "138****5678"
    assert mask_email(EMAIL) == "x***@example.com"


def test_without_the_permission_phone_and_email_are_masked_everywhere(without_permission, member):
    page = change_page(without_permission, member)
    listing = without_permission.get(CHANGELIST).content.decode()
    found = without_permission.get(CHANGELIST, {"q": PHONE}).content.decode()
    # The operator's own search term is echoed in the search box and links: not a leak.
    for echo in (f'value="{PHONE}"', f"q={PHONE}", f"q%3D{PHONE}"):
        found = found.replace(echo, "")

    for html in (page, listing, found):
        assert PHONE not in html
        assert EMAIL not in html
    assert "138****5678" in page and "x***@example.com" in page
    assert "138****5678" in listing
    assert "138****5678" in found and "u-1001" in found
    assert 'name="phone"' not in page and 'name="email"' not in page


def test_with_the_permission_phone_and_email_are_shown_in_full(with_permission, member):
    page = change_page(with_permission, member)
    listing = with_permission.get(CHANGELIST, {"q": PHONE}).content.decode()

    assert f'value="{PHONE}"' in page
    assert f'value="{EMAIL}"' in page
    assert PHONE in listing


def test_the_member_page_shows_points_tier_progress_segments_and_recent_entries(
    with_permission, member
):
    page = change_page(with_permission, member)

    assert "1100 available, 0 pending" in page  # 1,200 earned, 100 spent
    assert "Silver" in page  # the tier reached by the purchase
    assert "1800" in page  # growth still needed for gold (3,000 - 1,200)
    assert "pay-1" in page and "o-1" in page  # recent ledger entries
    assert "+1200" in page  # the growth entry
    # The only buyer is the whole population: the lowest quintile of each score.
    assert "Dormant (R1 F1 M1)" in page
    assert 'name="tier"' not in page  # tiers move by growth, not by editing


def test_masked_operators_cannot_export_or_erase(without_permission, member):
    response = without_permission.get(CHANGELIST)

    actions = [choice[0] for choice in response.context["action_form"].fields["action"].choices]
    assert "export_personal_data" not in actions
    assert "erase_personal_data" not in actions


def test_the_export_action_downloads_the_members_data_as_json(with_permission, member):
    response = with_permission.post(
        CHANGELIST, {"action": "export_personal_data", ACTION_CHECKBOX_NAME: [member.pk]}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    data = json.loads(response.content)
    assert data["member"]["phone"] == PHONE
    assert [row["reference"] for row in data["orders"]] == ["o-1", "pay-1"]
    assert data["points"]["available"] == 1100


def test_the_erase_action_asks_for_a_reason_then_erases(with_permission, member):
    data = {"action": "erase_personal_data", ACTION_CHECKBOX_NAME: [member.pk]}
    confirmation = with_permission.post(CHANGELIST, data)
    assert 'name="reason"' in confirmation.content.decode()
    assert Member.objects.get(pk=member.pk).phone == PHONE

    done = with_permission.post(CHANGELIST, {**data, "apply": "1", "reason": "PIPL request 42"})

    assert done.status_code == 302
    erased = Member.objects.get(pk=member.pk)
    assert (erased.phone, erased.email, erased.name, erased.status) == ("", "", "", "closed")
