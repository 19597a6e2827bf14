"""Role groups from loyalty_site/roles.py: each role reaches what it needs and nothing else."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from loyalty_site.roles import ROLES, apply_roles_after_migrate
from points import services
from points.models import Account, Entry, ProgrammeSettings
from tests.audit.conftest import change_form_data
from tests.factories import MemberFactory, TierFactory

pytestmark = pytest.mark.django_db


def _codes(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


@pytest.fixture
def account(entry_tier) -> Account:
    member = MemberFactory(external_id="u-roles")
    services.earn(member=member, points=100)
    return Account.objects.get(member=member)


def _adjust(client, account: Account):
    selection = {"action": "adjust_points", helpers.ACTION_CHECKBOX_NAME: [account.pk]}
    return client.post(
        reverse("admin:points_account_changelist"),
        {**selection, "apply": "1", "points": "5", "reason": "goodwill"},
    )


def test_the_role_groups_hold_exactly_their_permissions():
    operator, finance = _codes("operator"), _codes("finance")

    assert {role.code for role in ROLES} <= set(Group.objects.values_list("name", flat=True))
    assert {"points.change_account", "members.change_tier", "rewards_mall.change_reward"} <= (
        operator
    )
    assert "points.change_programmesettings" not in operator
    assert "members.view_personal_data" not in operator
    assert finance and all(code.split(".")[1].startswith("view_") for code in finance)
    assert {"points.view_entry", "loyalty_site.view_auditevent"} <= finance
    assert len(_codes("administrator")) == Permission.objects.count()


def test_an_operator_without_the_permission_gets_403_on_settings_and_keys(user_in_role):
    operator = user_in_role("operator")
    programme = ProgrammeSettings.get()
    settings_url = reverse("admin:points_programmesettings_change", args=[programme.pk])

    assert operator.get(reverse("admin:points_partnerapikey_changelist")).status_code == 403
    assert operator.get(settings_url).status_code == 403
    assert operator.post(settings_url, {"pending_days": 30}).status_code == 403
    assert operator.get(reverse("admin:loyalty_site_auditevent_changelist")).status_code == 403
    assert ProgrammeSettings.get().pending_days == 0


def test_an_operator_adjusts_points_but_finance_cannot_run_the_action(user_in_role, account):
    operator, finance = user_in_role("operator"), user_in_role("finance")

    _adjust(finance, account)
    assert not Entry.objects.filter(kind="adjust").exists()

    _adjust(operator, account)
    assert Entry.objects.get(kind="adjust").amount == 5


def test_finance_reads_the_ledger_and_audit_trail_but_cannot_change_anything(user_in_role, account):
    finance = user_in_role("finance")
    tier = TierFactory(code="gold")
    tier_url = reverse("admin:members_tier_change", args=[tier.pk])
    programme_url = reverse(
        "admin:points_programmesettings_change", args=[ProgrammeSettings.get().pk]
    )

    for page in (
        "admin:points_entry_changelist",
        "admin:points_account_changelist",
        "admin:loyalty_site_auditevent_changelist",
        "admin:loyalty_site_apicallrecord_changelist",
    ):
        assert finance.get(reverse(page)).status_code == 200, page
    shown = finance.get(programme_url)
    assert shown.status_code == 200 and b'name="_save"' not in shown.content
    assert finance.post(tier_url, {"name": "changed"}).status_code == 403
    assert finance.post(programme_url, {"pending_days": 30}).status_code == 403
    assert Entry.objects.count() == 1


def test_an_operator_can_change_a_tier_the_finance_role_cannot(user_in_role):
    # The positive control of the 403s above: the same form post succeeds with the permission.
    operator = user_in_role("operator")
    tier = TierFactory(code="silver", name="银卡")
    url = reverse("admin:members_tier_change", args=[tier.pk])

    response = operator.post(url, change_form_data(operator, url, name="白银"))

    assert response.status_code == 302
    tier.refresh_from_db()
    assert tier.name == "白银"


def test_the_mapping_is_applied_again_after_every_migrate():
    operator = Group.objects.get(name="operator")
    change_account = Permission.objects.get(codename="change_account")
    delete_entry = Permission.objects.get(codename="delete_entry")
    operator.permissions.remove(change_account)
    operator.permissions.add(delete_entry)  # by hand, not in the mapping
    with_models = [config for config in apps.get_app_configs() if config.models_module]

    apply_roles_after_migrate(sender=with_models[0])
    assert "points.change_account" not in _codes("operator")  # not the last app yet

    apply_roles_after_migrate(sender=with_models[-1])
    assert "points.change_account" in _codes("operator")
    assert "points.delete_entry" not in _codes("operator")
