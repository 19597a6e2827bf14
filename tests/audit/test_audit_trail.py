"""The audit trail of admin changes: who, when, before and after; readable, never editable."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from loyalty_site.audit import audit_context
from loyalty_site.models import AuditEvent
from members.models import Member, Tier
from points import services
from points.models import Account, ProgrammeSettings
from rewards_mall.models import Reward
from rewards_mall.services import redeem
from tests.audit.conftest import change_form_data
from tests.factories import MemberFactory, RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

AUDIT_PAGE = reverse("admin:loyalty_site_auditevent_changelist")
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _events(model_label: str, **filters):
    return list(
        AuditEvent.objects.filter(
            pgh_obj_model=model_label, pgh_label__in=["update"], **filters
        ).order_by("pgh_created_at", "pgh_id")
    )


def test_a_tier_changed_in_the_admin_shows_who_and_before_after_on_the_audit_page(
    admin_client, admin_user
):
    # given
    tier = TierFactory(code="gold", name="金卡", earn_multiplier=Decimal("1.00"))
    url = reverse("admin:members_tier_change", args=[tier.pk])

    # when
    response = admin_client.post(url, change_form_data(admin_client, url, earn_multiplier="1.50"))

    # then
    assert response.status_code == 302
    [event] = _events("members.Tier", pgh_obj_id=str(tier.pk))
    assert event.pgh_diff == {"earn_multiplier": [1, 1.5]}
    assert event.pgh_context["user"] == admin_user.pk
    assert event.pgh_context["url"] == url
    page = admin_client.get(AUDIT_PAGE, {"model": "members.Tier", "object": tier.pk}, **ENGLISH)
    html = page.content.decode()
    assert page.status_code == 200
    assert "earn multiplier" in html and "<td>1.00</td><td>→ 1.50</td>" in html
    assert admin_user.username in html


def test_programme_settings_created_before_tracking_still_show_their_before_value(admin_client):
    # The row comes from a migration that ran before the triggers existed: the before-image
    # is taken at the update itself, not from an earlier event.
    programme = ProgrammeSettings.get()
    url = reverse("admin:points_programmesettings_change", args=[programme.pk])

    admin_client.post(url, change_form_data(admin_client, url, pending_days=7))

    [event] = _events("points.ProgrammeSettings")
    assert event.pgh_diff == {"pending_days": [0, 7]}
    page = admin_client.get(AUDIT_PAGE, {"model": "points.ProgrammeSettings"}, **ENGLISH)
    page = page.content.decode()
    assert "pending days" in page and "→ 7" in page


def test_the_audit_page_filters_by_user_and_record_type(admin_client, admin_user, user_in_role):
    operator = user_in_role("operator")
    tier = TierFactory(code="silver")
    for client, threshold in ((admin_client, 1111), (operator, 2222)):
        url = reverse("admin:members_tier_change", args=[tier.pk])
        client.post(url, change_form_data(client, url, growth_threshold=threshold))

    by_operator = admin_client.get(AUDIT_PAGE, {"user": operator.user.pk}).context["cl"]
    tiers_only = admin_client.get(AUDIT_PAGE, {"model": "members.Tier"}).context["cl"]

    assert [e.pgh_diff["growth_threshold"][1] for e in by_operator.result_list] == [2222]
    assert {e.pgh_obj_model for e in tiers_only.result_list} == {"members.Tier"}
    assert len(tiers_only.result_list) == 3  # created, then two changes


def test_a_members_personal_data_never_enters_the_trail(admin_client):
    member = MemberFactory(external_id="u-pii", phone="13812345678", email="pii@example.com")
    with audit_context(user=None, username="script"):
        Member.objects.filter(pk=member.pk).update(phone="13900000000", status="frozen")

    rows = AuditEvent.objects.filter(pgh_obj_model="members.Member", pgh_obj_id=str(member.pk))
    labels = sorted(e.pgh_label for e in rows)
    html = admin_client.get(AUDIT_PAGE, {"model": "members.Member"}, **ENGLISH).content.decode()

    assert labels == ["before_update", "personal_data", "update"]
    assert all("phone" not in e.pgh_data and "email" not in e.pgh_data for e in rows)
    assert "13812345678" not in html and "13900000000" not in html
    assert "the values are not kept" in html and "frozen" in html


def test_stock_moved_by_redemptions_is_not_recorded_but_an_operators_change_is(
    admin_client, entry_tier
):
    reward = RewardFactory(code="spa", kind="service", stock=5, points_price=10)
    member = MemberFactory()
    services.earn(member=member, points=100)

    redeem(member=member, reward_code=reward.code, quantity=1)
    url = reverse("admin:rewards_mall_reward_change", args=[reward.pk])
    admin_client.post(url, change_form_data(admin_client, url, stock=50))

    diffs = [e.pgh_diff for e in _events("rewards_mall.Reward", pgh_obj_id=str(reward.pk))]
    assert diffs == [{"stock": [4, 50]}]
    assert Reward.objects.get(pk=reward.pk).stock == 50


def test_changes_outside_any_context_are_recorded_as_made_by_the_system():
    tier = TierFactory(code="bronze")
    Tier.objects.filter(pk=tier.pk).update(name="铜卡")

    [event] = _events("members.Tier", pgh_obj_id=str(tier.pk))
    assert event.pgh_context is None
    assert event.pgh_diff == {"name": ["Bronze", "铜卡"]}


def test_the_ledgers_prepared_statement_runs_inside_an_audit_context(entry_tier):
    # The earn statement is a server-side prepared statement: two commands would break it.
    member = MemberFactory()

    with audit_context(user=None, username="script"):
        services.earn(member=member, points=10)
        with transaction.atomic():
            services.earn(member=member, points=5)

    assert Account.objects.get(member=member).available == 15


def test_the_audit_trail_is_read_only_in_the_admin_and_in_the_database(admin_client):
    tier = TierFactory(code="platinum")
    Tier.objects.filter(pk=tier.pk).update(rank=99)
    rank_before = tier.rank
    [event] = _events("members.Tier", pgh_obj_id=str(tier.pk))
    delete_url = reverse("admin:loyalty_site_auditevent_delete", args=[quote(event.pgh_slug)])

    assert admin_client.get(reverse("admin:loyalty_site_auditevent_add")).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert 'name="action"' not in admin_client.get(AUDIT_PAGE).content.decode()
    for statement in (
        "UPDATE members_tierauditevent SET pgh_label = 'forged'",
        "DELETE FROM members_tierauditevent",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    [unchanged] = _events("members.Tier", pgh_obj_id=str(tier.pk))
    assert unchanged.pgh_diff == {"rank": [rank_before, 99]}


def test_an_earning_rule_changed_in_the_admin_shows_before_after_on_the_audit_page(
    admin_client, admin_user
):
    from campaigns.models import EarningRule

    # given: the default programme's purchase rule (1 point per 1.00)
    rule = EarningRule.objects.get(code="default-purchase")
    url = reverse("admin:campaigns_earningrule_change", args=[rule.pk])

    # when
    response = admin_client.post(
        url,
        change_form_data(admin_client, url, points_per_unit="2.0000", cap_per_day="500"),
    )

    # then
    assert response.status_code == 302, response.content[:2000]
    [event] = _events("campaigns.EarningRule", pgh_obj_id=str(rule.pk))
    assert event.pgh_diff["points_per_unit"] == [1, 2]
    assert event.pgh_diff["cap_per_day"] == [None, 500]
    assert event.pgh_context["user"] == admin_user.pk
    page = admin_client.get(
        AUDIT_PAGE, {"model": "campaigns.EarningRule", "object": rule.pk}, **ENGLISH
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "→ 2.0000" in html and "→ 500" in html
