"""Simulation replays stored events exactly; A/B arms are stable; the rulebook is cached."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import engine, experiments, simulation
from campaigns.models import Campaign, EarningRule, Event, Experiment, ExperimentArm
from tests.factories import MemberFactory, TierFactory

pytestmark = pytest.mark.django_db


def test_replay_through_the_active_rules_gives_exactly_what_was_issued(pos, only_rule):
    gold = TierFactory(code="gold", rank=3, growth_threshold=1000, earn_multiplier=Decimal("2"))
    only_rule(cap_per_day=40, channels=["pos", "app"])
    Campaign.objects.create(
        code="bonus",
        name="b",
        status="active",
        starts_at=timezone.now() - timedelta(days=30),
        bonus_points=3,
        budget_points=10,
    )
    members = [
        MemberFactory(external_id=f"m{i}", **({"tier": gold} if i % 2 else {})) for i in range(4)
    ]
    now = timezone.now()
    for i in range(20):
        pos.purchase(
            members[i % 4].external_id,
            f"o-{i}",
            f"{7 + i}.50",
            channel="app" if i % 3 else "online",
            occurred_at=(now - timedelta(hours=30 - i)).isoformat(),
        )
    issued = sum(line["points"] for e in Event.objects.all() for line in e.rules_applied)
    # Tiers change afterwards: the replay uses the tier each event was evaluated with.
    members[1].tier = members[0].tier
    members[1].save()
    result = simulation.replay(days=3)
    assert result.events == 20
    assert result.mismatched_events == []
    assert result.simulated == result.actual == issued > 0


def test_simulating_a_draft_rule_writes_nothing_and_reports_its_cost(pos, member, admin_client):
    now = timezone.now()
    for i in range(3):
        pos.purchase("u-1001", f"o-{i}", "100", occurred_at=(now - timedelta(days=i)).isoformat())
    draft = EarningRule.objects.create(
        code="weekend", name="draft", status="draft", points_per_unit=Decimal("0.5")
    )
    result = simulation.replay(days=7, draft_rules=[draft])
    assert (result.draft_points, result.members_reached) == (150, 1)
    assert result.draft_cost == Decimal("1.50")  # 150 points x 0.01
    assert result.actual == 300 and result.simulated == 450
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.budget_used == 0
    page = admin_client.get(f"/admin/campaigns/earningrule/{draft.pk}/simulate/?days=7")
    assert page.status_code == 200
    assert b"<svg" in page.content and b"150" in page.content


def test_arms_are_stable_and_the_sql_bucket_matches_the_engine():
    members = [MemberFactory(external_id=f"x{i}") for i in range(50)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.external_id, "
            + experiments._BUCKET_SQL
            + " FROM members_member m WHERE m.external_id LIKE 'x%%'",
            {"code": "exp-1"},
        )
        in_sql = dict(cursor.fetchall())
    assert in_sql == {
        m.external_id: engine.arm_bucket(experiment_code="exp-1", member_key=m.external_id)
        for m in members
    }


def test_experiment_report_says_when_the_sample_is_too_small_and_promotes(pos, admin_client):
    experiment = Experiment.objects.create(code="exp", name="x3 for B")
    ExperimentArm.objects.create(experiment=experiment, code="A", weight=50, is_control=True)
    arm_b = ExperimentArm.objects.create(experiment=experiment, code="B", weight=50, position=1)
    rule = EarningRule.objects.create(
        code="b-only", name="B", status="active", points_per_unit=2, experiment_arm=arm_b
    )
    for i in range(10):
        MemberFactory(external_id=f"e{i}")
        pos.purchase(f"e{i}", f"o-{i}", "10")
    report = experiments.experiment_report(experiment=experiment)
    assert sum(a.members for a in report.arms) >= 10
    assert {d.verdict for d in report.differences} == {"too_small"}
    page = admin_client.get(f"/admin/campaigns/experiment/{experiment.pk}/report/")
    assert page.status_code == 200
    # Promote B by hand through the report's form: B's rule now applies to everyone.
    response = admin_client.post(
        f"/admin/campaigns/experiment/{experiment.pk}/report/", {"arm": arm_b.pk}
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.experiment_arm is None


def test_the_interval_is_welchs_and_a_clear_difference_is_called():
    diff, low, high = experiments.difference_interval(10.0, 4.0, 100, 12.0, 4.0, 100)
    assert diff == 2.0
    assert low == pytest.approx(2.0 - 1.959964 * (0.08**0.5))
    assert low > 0 and high > low


def test_rule_evaluation_adds_no_query_per_rule(pos, member, settings):
    settings.RULEBOOK_CHECK_SECONDS = 3600
    pos.purchase("u-1001", "warm", "10")  # builds the rulebook
    counter = _Counter()
    with connection.execute_wrapper(counter):
        pos.purchase("u-1001", "one-rule", "10")
    for i in range(10):
        EarningRule.objects.create(
            code=f"extra-{i}", name="x", status="active", points_per_unit=1, channels=["app"]
        )
    Campaign.objects.create(
        code="c1",
        name="c",
        status="active",
        starts_at=timezone.now(),
        multiplier=2,
        event_types=["review"],
    )
    Campaign.objects.create(
        code="c2",
        name="c",
        status="active",
        starts_at=timezone.now(),
        bonus_points=1,
        event_types=["share"],
    )
    pos.purchase("u-1001", "rebuild", "10")  # this process's own change: rebuilt at once
    eleven = _Counter()
    with connection.execute_wrapper(eleven):
        pos.purchase("u-1001", "eleven-rules", "10")
    assert eleven.count == counter.count


def test_a_rule_saved_in_admin_invalidates_the_cache(pos, member, admin_client, settings):
    settings.RULEBOOK_CHECK_SECONDS = 3600
    rule = EarningRule.objects.get(code="default-purchase")
    assert pos.purchase("u-1001", "a", "10").json()["points_awarded"] == 10
    EarningRule.objects.filter(pk=rule.pk).update(points_per_unit=3)  # bypasses the signals
    assert pos.purchase("u-1001", "b", "10").json()["points_awarded"] == 10  # cached
    rule.refresh_from_db()
    rule.save()  # as the admin form does
    assert pos.purchase("u-1001", "c", "10").json()["points_awarded"] == 30


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def test_rule_and_campaign_admin_pages(admin_client):
    assert admin_client.get("/admin/campaigns/earningrule/").status_code == 200
    assert admin_client.get("/admin/campaigns/earningrule/add/").status_code == 200
    assert admin_client.get("/admin/campaigns/campaign/add/").status_code == 200
    assert admin_client.get("/admin/campaigns/event/").status_code == 200
