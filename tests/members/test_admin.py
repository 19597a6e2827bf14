"""The member and tier admin: search, filters, constant query counts, status actions."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from members.models import Member, MemberStatusChange
from tests.factories import MemberFactory, TierFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:members_member_changelist")


def listed(response) -> set[str]:
    return {member.external_id for member in response.context["cl"].result_list}


def test_the_member_list_uses_the_same_number_of_queries_for_3_or_30_members(admin_client):
    gold = TierFactory(code="gold")
    MemberFactory.create_batch(3, tier=gold)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(CHANGELIST).status_code == 200

    MemberFactory.create_batch(27, tier=gold)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(CHANGELIST)

    assert len(listed(response)) == 30
    assert len(many) == len(few)


def test_search_finds_by_exact_external_id_phone_and_name_prefix(admin_client):
    MemberFactory(external_id="u-100", name="Ann Lee", phone="13800000001")
    MemberFactory(external_id="u-1000", name="王小明", phone="13800000002")

    assert listed(admin_client.get(CHANGELIST, {"q": "u-100"})) == {"u-100"}
    assert listed(admin_client.get(CHANGELIST, {"q": "13800000002"})) == {"u-1000"}
    assert listed(admin_client.get(CHANGELIST, {"q": "ann"})) == {"u-100"}
    assert listed(admin_client.get(CHANGELIST, {"q": "王小"})) == {"u-1000"}


def test_filtered_pages_do_not_count_the_whole_table(admin_client):
    MemberFactory.create_batch(2)
    MemberFactory(status="frozen")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"status__exact": "frozen"})

    assert len(listed(response)) == 1
    counts = [q["sql"] for q in queries if "COUNT(*)" in q["sql"] and "members_member" in q["sql"]]
    assert len(counts) == 1  # the filtered count only, no "of N total"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "frozen"}, {"u-frozen"}),
        ({"marketing_consent__exact": "1"}, {"u-consent"}),
        ({"tier__id__exact": "TIER"}, {"u-gold"}),
        (
            {"joined_at__gte": "2000-01-01 00:00+08:00", "joined_at__lt": "2000-02-01 00:00+08:00"},
            {"u-old"},
        ),
    ],
)
def test_filters_by_status_tier_joined_date_and_consent(admin_client, params, expected):
    gold = TierFactory(code="gold")
    MemberFactory(external_id="u-frozen", status="frozen")
    MemberFactory(external_id="u-consent", marketing_consent=True)
    MemberFactory(external_id="u-gold", tier=gold)
    MemberFactory(external_id="u-old", joined_at="2000-01-15T10:00:00+08:00")
    params = {k: str(gold.pk) if v == "TIER" else v for k, v in params.items()}

    assert listed(admin_client.get(CHANGELIST, params)) == expected


def test_the_change_page_shows_points_and_status_history_without_editing_status(admin_client):
    member = MemberFactory(external_id="u-1", status="frozen")
    MemberStatusChange.objects.create(
        member=member, from_status="active", to_status="frozen", reason="chargeback"
    )

    response = admin_client.get(reverse("admin:members_member_change", args=[member.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "chargeback" in page
    assert 'name="status"' not in page  # status changes only through the actions


def run_action(admin_client, action: str, members, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [m.pk for m in members], **extra}
    return admin_client.post(CHANGELIST, data)


def test_freezing_asks_for_a_reason_then_freezes_and_confirms(admin_client, admin_user):
    members = MemberFactory.create_batch(2)

    confirmation = run_action(admin_client, "freeze_members", members)
    assert confirmation.status_code == 200
    assert 'name="reason"' in confirmation.content.decode()
    assert Member.objects.filter(status="frozen").count() == 0

    done = run_action(admin_client, "freeze_members", members, apply="1", reason="card fraud")

    assert done.status_code == 302
    assert Member.objects.filter(status="frozen").count() == 2
    changes = MemberStatusChange.objects.all()
    assert {(c.operator, c.reason, c.to_status) for c in changes} == {
        (admin_user, "card fraud", "frozen")
    }
    messages = [str(m) for m in get_messages(done.wsgi_request)]
    assert any("2" in m for m in messages), messages


def test_an_action_without_a_reason_changes_nothing(admin_client):
    member = MemberFactory()

    response = run_action(admin_client, "close_members", [member], apply="1", reason="")

    assert response.status_code == 200  # the confirmation page again, with the error
    assert Member.objects.get(pk=member.pk).status == "active"


def test_unfreezing_skips_members_that_are_not_frozen_and_says_so(admin_client):
    frozen = MemberFactory(status="frozen")
    active = MemberFactory(status="active")

    response = run_action(
        admin_client, "unfreeze_members", [frozen, active], apply="1", reason="cleared"
    )

    assert Member.objects.get(pk=frozen.pk).status == "active"
    assert MemberStatusChange.objects.filter(member=active).count() == 0
    messages = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert [tag for tag, _text in messages] == ["success", "warning"]
    assert active.external_id in messages[1][1]


def test_closing_is_final(admin_client):
    member = MemberFactory()
    run_action(admin_client, "close_members", [member], apply="1", reason="asked to leave")

    run_action(admin_client, "unfreeze_members", [member], apply="1", reason="oops")

    assert Member.objects.get(pk=member.pk).status == "closed"


def test_tiers_are_listed_by_rank(admin_client):
    TierFactory(code="gold", rank=3)
    TierFactory(code="silver", rank=2)

    response = admin_client.get(reverse("admin:members_tier_changelist"))

    ranks = [tier.rank for tier in response.context["cl"].result_list]
    assert ranks == sorted(ranks)
    assert len(ranks) == 3
