"""Caps, budgets, the stacking of multipliers, recurrence boundaries, dry run = real."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import PeriodicTask

from campaigns import scheduling
from campaigns.models import Campaign, EarningRule
from points.models import Account
from tests.campaigns.conftest import awarded
from tests.concurrency.threads import run_concurrently, unexpected
from tests.factories import MemberFactory, TierFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args) -> str:
    return datetime(*args, tzinfo=SHANGHAI).isoformat()


@pytest.mark.django_db
def test_caps_per_day_week_and_lifetime(pos, member, only_rule):
    only_rule(cap_per_day=30, cap_per_week=50, cap_lifetime=60)
    # Monday 2026-11-23 and Tuesday (same ISO week), then the next Monday.
    assert awarded(pos.purchase("u-1001", "a", "20", occurred_at=at(2026, 11, 23, 10))) == 20
    assert awarded(pos.purchase("u-1001", "b", "20", occurred_at=at(2026, 11, 23, 11))) == 10
    assert awarded(pos.purchase("u-1001", "c", "40", occurred_at=at(2026, 11, 24, 10))) == 20
    assert awarded(pos.purchase("u-1001", "d", "40", occurred_at=at(2026, 11, 25, 10))) == 0
    assert awarded(pos.purchase("u-1001", "e", "40", occurred_at=at(2026, 11, 30, 10))) == 10
    assert awarded(pos.purchase("u-1001", "f", "40", occurred_at=at(2026, 12, 1, 10))) == 0


@pytest.mark.django_db
def test_day_cap_resets_at_local_midnight(pos, member, only_rule):
    only_rule(cap_per_day=10)
    assert awarded(pos.purchase("u-1001", "a", "10", occurred_at=at(2026, 11, 23, 23, 59))) == 10
    assert awarded(pos.purchase("u-1001", "b", "10", occurred_at=at(2026, 11, 24, 0, 0))) == 10


@pytest.mark.django_db
def test_lifetime_points_at_most_k_times_lifetime_spend(pos, member, only_rule, default_rule):
    only_rule(spend_ratio_cap=Decimal("2"), points_per_unit=Decimal("5"))
    # 100 spent: at most 200 points although the rate says 500.
    assert awarded(pos.purchase("u-1001", "a", "100")) == 200
    # 10 more spent: room is 2 x 110 - 200 = 20.
    assert awarded(pos.purchase("u-1001", "b", "10")) == 20


@pytest.mark.django_db
def test_rule_budget_is_never_overspent(pos, member, only_rule):
    rule = only_rule(budget_points=25)
    assert awarded(pos.purchase("u-1001", "a", "20")) == 20
    assert awarded(pos.purchase("u-1001", "b", "20")) == 5
    assert awarded(pos.purchase("u-1001", "c", "20")) == 0
    rule.refresh_from_db()
    assert rule.budget_used == 25


@pytest.mark.django_db
def test_stacking_tier_times_the_best_campaign_bonus_on_top(pos, only_rule):
    gold = TierFactory(code="gold", rank=3, growth_threshold=1000, earn_multiplier=Decimal("1.5"))
    MemberFactory(external_id="g", tier=gold)
    only_rule()
    for code, multiplier, bonus in (("double", "2", 0), ("triple", "3", 0), ("gift", "1", 7)):
        Campaign.objects.create(
            code=code,
            name=code,
            status="active",
            starts_at=at(2026, 1, 1),
            multiplier=Decimal(multiplier),
            bonus_points=bonus,
        )
    body = pos.purchase("g", "o-1", "10.99", occurred_at=at(2026, 11, 24, 12)).json()
    # floor(10.99 x 1.5) = 16 from the rule; floor(10.99 x 1.5 x 3) = 49: 33 from "triple"
    # (the highest multiplier only; "double" does not multiply it); "gift" adds 7 untouched.
    assert sorted((r["rule"], r["points"]) for r in body["rules_applied"]) == [
        ("campaign:gift", 7),
        ("campaign:triple", 33),
        ("r1", 16),
    ]
    assert body["points_awarded"] == 56


@pytest.mark.django_db
def test_caps_bind_the_rule_with_its_campaign_extra(pos, member, only_rule):
    only_rule(cap_per_day=15)
    Campaign.objects.create(
        code="double", name="x2", status="active", starts_at=at(2026, 1, 1), multiplier=2
    )
    body = pos.purchase("u-1001", "o-1", "10", occurred_at=at(2026, 11, 24, 12)).json()
    assert body["points_awarded"] == 15
    assert {r["rule"]: r["points"] for r in body["rules_applied"]} == {
        "r1": 10,
        "campaign:double": 5,
    }


@pytest.mark.django_db
def test_double_points_tuesday_starts_and_ends_at_local_midnight(pos, member):
    Campaign.objects.create(
        code="tue",
        name="Double Tuesday",
        status="active",
        starts_at=at(2026, 1, 1),
        recurrence="weekly",
        weekdays=[2],
        multiplier=2,
    )
    # 2026-11-24 is a Tuesday in Shanghai; 23:59 Monday local is 15:59 UTC Monday.
    assert awarded(pos.purchase("u-1001", "a", "10", occurred_at=at(2026, 11, 23, 23, 59))) == 10
    assert awarded(pos.purchase("u-1001", "b", "10", occurred_at=at(2026, 11, 24, 0, 0))) == 20
    assert awarded(pos.purchase("u-1001", "c", "10", occurred_at=at(2026, 11, 24, 23, 59))) == 20
    assert awarded(pos.purchase("u-1001", "d", "10", occurred_at=at(2026, 11, 25, 0, 0))) == 10


@pytest.mark.django_db
def test_monthly_recurrence_on_the_8th(pos, member):
    Campaign.objects.create(
        code="eighth",
        name="8th",
        status="active",
        starts_at=at(2026, 1, 1),
        recurrence="monthly",
        month_days=[8],
        bonus_points=8,
    )
    assert awarded(pos.purchase("u-1001", "a", "10", occurred_at=at(2026, 12, 8, 0, 0))) == 18
    assert awarded(pos.purchase("u-1001", "b", "10", occurred_at=at(2026, 12, 9, 0, 0))) == 10


@pytest.mark.django_db
def test_campaign_targets_tiers_and_is_bounded_by_its_dates(pos, member):
    gold = TierFactory(code="gold", rank=3, growth_threshold=1000)
    MemberFactory(external_id="g", tier=gold)
    campaign = Campaign.objects.create(
        code="gold-week",
        name="gold",
        status="active",
        starts_at=at(2026, 11, 23),
        ends_at=at(2026, 11, 30),
        multiplier=2,
    )
    campaign.tiers.set([gold])
    assert awarded(pos.purchase("u-1001", "a", "10", occurred_at=at(2026, 11, 24))) == 10
    assert awarded(pos.purchase("g", "b", "10", occurred_at=at(2026, 11, 24))) == 20
    assert awarded(pos.purchase("g", "c", "10", occurred_at=at(2026, 11, 30))) == 10


@pytest.mark.django_db
def test_campaign_schedule_is_in_celery_beat_and_syncs_running_state(member):
    campaign = Campaign.objects.create(
        code="tue",
        name="Double Tuesday",
        status="active",
        starts_at=at(2026, 1, 1),
        recurrence="weekly",
        weekdays=[2],
        multiplier=2,
    )
    scheduling.sync_campaign_schedule(campaign=campaign)
    start = PeriodicTask.objects.get(name="campaign tue: start")
    stop = PeriodicTask.objects.get(name="campaign tue: stop")
    assert (start.crontab.day_of_week, start.crontab.hour, start.crontab.minute) == ("2", "0", "0")
    assert stop.crontab.day_of_week == "3"
    assert str(start.crontab.timezone) == "Asia/Shanghai"
    tuesday = datetime(2026, 11, 24, 0, 0, 1, tzinfo=SHANGHAI)
    assert scheduling.sync_campaign_state(campaign_id=campaign.pk, now=tuesday) is True
    assert (
        scheduling.sync_campaign_state(campaign_id=campaign.pk, now=tuesday + timedelta(days=1))
        is False
    )
    campaign.status = "paused"
    campaign.save()
    scheduling.sync_campaign_schedule(campaign=campaign)
    assert not PeriodicTask.objects.filter(name__startswith="campaign tue").exists()


@pytest.mark.django_db
def test_dry_run_awards_exactly_what_the_real_event_then_awards(pos, member, only_rule):
    only_rule(cap_per_day=25, budget_points=1000)
    Campaign.objects.create(
        code="double",
        name="x2",
        status="active",
        starts_at=at(2026, 1, 1),
        multiplier=2,
        budget_points=7,
        bonus_points=3,
    )
    for reference in ("a", "b", "c"):
        body = {"type": "purchase", "member": "u-1001", "reference": reference, "amount": "10"}
        dry = pos.post("events?dry_run=true", body).json()
        real = pos.post("events", body).json()
        assert dry["dry_run"] is True
        assert (dry["points_awarded"], dry["rules_applied"]) == (
            real["points_awarded"],
            real["rules_applied"],
        )
    # The rule's budget pays its own line (10 + 8); the campaign's budget paid the extra (7).
    assert EarningRule.objects.get(code="r1").budget_used == 18
    assert Campaign.objects.get(code="double").budget_used == 7


@pytest.mark.django_db(transaction=True)
def test_a_budget_is_never_overspent_by_32_concurrent_events(entry_tier, only_rule):
    from tests.ledger_api.conftest import PartnerApi

    pos = PartnerApi("POS")
    members = [MemberFactory(external_id=f"c-{i}") for i in range(32)]
    rule = only_rule(budget_points=500)

    def post(i):
        return awarded(pos.purchase(members[i].external_id, f"o-{i}", "37"))

    outcomes = run_concurrently(*[functools.partial(post, i) for i in range(32)])
    assert unexpected(outcomes) == []
    results = [outcome.value for outcome in outcomes]
    rule.refresh_from_db()
    assert sum(results) == 500 == rule.budget_used
    assert sum(Account.objects.values_list("available", flat=True)) == 500
