"""The ledger in the admin: read-only ledger pages, settings, partner keys, the adjust action."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.admin import helpers
from django.contrib.messages import get_messages
from django.urls import reverse

from points import services
from points.models import Account, Entry, Lot, PartnerAPIKey, ProgrammeSettings
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(member, partner):
    services.earn(member=member, points=100, partner=partner, reference="o-1")
    services.spend(member=member, points=30, partner=partner, reference="pay-1")
    return Account.objects.get(member=member)


@pytest.mark.parametrize(
    "model", ["entry", "lot", "account", "order", "outboxevent", "partner", "partnerapikey"]
)
def test_ledger_pages_open(admin_client, ledger, model):
    response = admin_client.get(reverse(f"admin:points_{model}_changelist"))

    assert response.status_code == 200


def test_entry_and_lot_pages_show_the_member_and_open_read_only(admin_client, ledger):
    entry = Entry.objects.filter(kind="spend").get()

    listing = admin_client.get(reverse("admin:points_entry_changelist"))
    detail = admin_client.get(reverse("admin:points_entry_change", args=[entry.pk]))

    assert "u-1001" in listing.content.decode()
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert admin_client.get(reverse("admin:points_entry_add")).status_code == 403
    assert admin_client.get(reverse("admin:points_lot_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:points_entry_delete", args=[entry.pk])).status_code == 403
    )


def test_entries_filter_by_kind_and_find_a_member_by_external_id(admin_client, ledger):
    MemberFactory(external_id="u-2002")
    services.earn(member=type(ledger.member).objects.get(external_id="u-2002"), points=5)
    url = reverse("admin:points_entry_changelist")

    spends = admin_client.get(url, {"kind": "spend"}).context["cl"].result_list
    found = admin_client.get(url, {"q": "u-2002"}).context["cl"].result_list

    assert [e.kind for e in spends] == ["spend"]
    assert [e.amount for e in found] == [5]


def test_the_entry_list_costs_the_same_queries_however_many_entries(
    admin_client, ledger, member, django_assert_max_num_queries
):
    url = reverse("admin:points_entry_changelist")
    admin_client.get(url)
    for _ in range(30):
        services.earn(member=member, points=1)

    with django_assert_max_num_queries(12):
        admin_client.get(url)


def test_settings_open_as_one_form_and_saving_syncs_credit_limits(admin_client, ledger):
    changelist = admin_client.get(reverse("admin:points_programmesettings_changelist"))
    assert changelist.status_code == 302
    url = reverse("admin:points_programmesettings_change", args=[1])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update({"negative_balance_limit": 250, "point_value": "0.02"})

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert ProgrammeSettings.get().point_value == Decimal("0.02")
    assert Account.objects.get(pk=ledger.pk).credit_limit == 250
    assert admin_client.get(reverse("admin:points_programmesettings_add")).status_code == 403


def test_settings_refuse_an_unknown_time_zone(admin_client, db):
    url = reverse("admin:points_programmesettings_change", args=[1])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data["time_zone"] = "Mars/Olympus"

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "time_zone" in response.context["adminform"].form.errors


def test_adjust_action_asks_for_points_and_a_reason_then_adjusts(admin_client, ledger, admin_user):
    url = reverse("admin:points_account_changelist")
    selection = {"action": "adjust_points", helpers.ACTION_CHECKBOX_NAME: [ledger.pk]}

    asked = admin_client.post(url, selection)
    assert asked.status_code == 200
    assert b'name="reason"' in asked.content

    done = admin_client.post(url, {**selection, "apply": "1", "points": "-20", "reason": "typo"})

    assert done.status_code == 302
    entry = Entry.objects.get(kind="adjust")
    assert (entry.amount, entry.reason, entry.operator_id) == (-20, "typo", admin_user.pk)
    assert Account.objects.get(pk=ledger.pk).available == 50


def test_adjust_action_reports_refusals_and_needs_a_reason(admin_client, ledger):
    url = reverse("admin:points_account_changelist")
    selection = {"action": "adjust_points", helpers.ACTION_CHECKBOX_NAME: [ledger.pk]}

    missing_reason = admin_client.post(url, {**selection, "apply": "1", "points": "5"})
    too_much = admin_client.post(
        url, {**selection, "apply": "1", "points": "-1000", "reason": "x"}, follow=True
    )

    assert missing_reason.status_code == 200
    assert "reason" in missing_reason.context["form"].errors
    assert any("u-1001" in str(m) for m in get_messages(too_much.wsgi_request))
    assert not Entry.objects.filter(kind="adjust").exists()


def test_creating_a_partner_key_shows_the_plain_key_once(admin_client, partner):
    url = reverse("admin:points_partner_changelist")
    selection = {"action": "create_api_key", helpers.ACTION_CHECKBOX_NAME: [partner.pk]}

    response = admin_client.post(
        url, {**selection, "apply": "1", "scopes": ["events:write", "members:read"]}, follow=True
    )

    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    plain_key = re.search(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{20,}", message).group(0)
    key = PartnerAPIKey.objects.get(partner=partner)
    assert key.scopes == ["members:read", "events:write"]
    assert key.is_valid(plain_key)
    assert (
        plain_key
        not in admin_client.get(
            reverse("admin:points_partner_change", args=[partner.pk])
        ).content.decode()
    )


def test_lots_filter_by_state(admin_client, member):
    services.earn(member=member, points=5, expires_at=None)
    services.earn(member=member, points=7, available_at=services.timezone.now().replace(year=2099))

    pending = admin_client.get(reverse("admin:points_lot_changelist"), {"state": "pending"})

    assert [lot.amount for lot in pending.context["cl"].result_list] == [7]
    assert Lot.objects.count() == 2
