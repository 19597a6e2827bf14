"""The daily rollup: per merchant and programme totals from a ledger whose answer is known;
incremental runs add only the days not rolled up; a given day can be recomputed."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from campaigns.health import compute_health_metrics
from campaigns.models import DailyMerchantRollup, DailyProgrammeRollup, DailyTierSize
from points import services
from points.services import programme_settings
from tests.factories import MemberFactory, PartnerFactory
from tests.health.conftest import after, on_day

pytestmark = pytest.mark.django_db

D1 = date(2026, 3, 2)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)


@pytest.fixture
def history():
    """D1: m1 earns 1000 and m3 300 at A, m2 500 at B; D2: m1 spends 200 at A, m2 redeems 100
    at B, m3's 300 expire (no merchant); D3: nothing."""
    zone = programme_settings().zone
    joined = datetime(2026, 1, 1, tzinfo=zone)
    m1, m2, m3 = (MemberFactory(joined_at=joined) for _ in range(3))
    shop_a, shop_b = PartnerFactory(name="A"), PartnerFactory(name="B")
    with on_day(D1):
        services.earn(member=m1, points=1000, partner=shop_a)
        services.earn(member=m2, points=500, partner=shop_b)
        services.earn(
            member=m3,
            points=300,
            partner=shop_a,
            expires_at=datetime.combine(D2, time(0, 30), tzinfo=zone),
        )
    with on_day(D2):
        services.spend(member=m1, points=200, partner=shop_a)
        services.take_for_redemption(member=m2, points=100, redemption_id=1, partner=shop_b)
        services.expire_lots(as_of=datetime.combine(D2, time(1), tzinfo=zone))
    return {"m1": m1, "m2": m2, "m3": m3, "A": shop_a, "B": shop_b}


def merchant_rows(day: date) -> dict:
    return {
        (row.partner.name if row.partner else None): row
        for row in DailyMerchantRollup.objects.filter(day=day).select_related("partner")
    }


def test_rollup_per_merchant_and_day(history):
    run = compute_health_metrics(as_of=after(D3))

    assert run.days == [D1, D2, D3]
    day1, day2 = merchant_rows(D1), merchant_rows(D2)
    assert set(day1) == {"A", "B"}
    assert (day1["A"].issued, day1["A"].active_members, day1["A"].outstanding) == (1300, 2, 1300)
    assert (day1["B"].issued, day1["B"].active_members, day1["B"].outstanding) == (500, 1, 500)
    assert set(day2) == {"A", "B", None}
    assert (day2["A"].spent, day2["A"].net_change, day2["A"].outstanding) == (200, -200, 1100)
    assert (day2["B"].redeemed, day2["B"].outstanding) == (100, 400)
    assert (day2[None].expired, day2[None].active_members, day2[None].outstanding) == (
        300,
        0,
        -300,
    )
    assert merchant_rows(D3) == {}


def test_rollup_programme_totals(history):
    compute_health_metrics(as_of=after(D3))

    rows = {row.day: row for row in DailyProgrammeRollup.objects.all()}
    assert sorted(rows) == [D1, D2, D3]
    one, two, three = rows[D1], rows[D2], rows[D3]
    assert (one.issued, one.outstanding, one.active_members, one.active_30d, one.members) == (
        1800,
        1800,
        3,
        3,
        3,
    )
    assert (two.spent, two.redeemed, two.expired, two.outstanding) == (200, 100, 300, 1200)
    assert (two.active_members, two.active_30d) == (2, 3)
    assert (three.issued, three.outstanding, three.active_members, three.active_30d) == (
        0,
        1200,
        0,
        3,
    )
    # The outstanding balance is the ledger's: what the members hold.
    assert three.outstanding == sum(
        m.account.available + m.account.pending
        for m in (history["m1"], history["m2"], history["m3"])
    )
    assert DailyTierSize.objects.get(day=D3).members == 3


def test_incremental_run_adds_only_new_days(history):
    compute_health_metrics(as_of=after(D2))
    first_ids = set(DailyMerchantRollup.objects.values_list("id", flat=True))
    # An entry dated D1 after D1 was rolled up: a run that rescanned history would count it.
    with on_day(D1):
        services.earn(member=history["m1"], points=7, partner=history["A"])
    with on_day(D3):
        services.earn(member=history["m2"], points=50, partner=history["B"])

    run = compute_health_metrics(as_of=after(D3))

    assert run.days == [D3]
    assert first_ids <= set(DailyMerchantRollup.objects.values_list("id", flat=True))
    assert DailyProgrammeRollup.objects.get(day=D1).issued == 1800
    assert DailyProgrammeRollup.objects.get(day=D3).outstanding == 1250
    assert compute_health_metrics(as_of=after(D3)).days == []


def test_recompute_a_day_carries_its_change_into_later_days(history):
    compute_health_metrics(as_of=after(D2))
    with on_day(D1):
        services.earn(member=history["m1"], points=7, partner=history["A"])
    with on_day(D3):
        services.earn(member=history["m2"], points=50, partner=history["B"])
    compute_health_metrics(as_of=after(D3))

    run = compute_health_metrics(as_of=after(D3), day=D1)

    assert run.days == [D1]
    totals = dict(DailyProgrammeRollup.objects.values_list("day", "outstanding"))
    assert totals == {D1: 1807, D2: 1207, D3: 1257}
    assert DailyProgrammeRollup.objects.get(day=D1).issued == 1807
    assert merchant_rows(D1)["A"].outstanding == 1307
    assert merchant_rows(D2)["A"].outstanding == 1107
    assert merchant_rows(D3)["B"].outstanding == 450


def test_recompute_refuses_a_day_not_ended(history):
    from campaigns.health import HealthDayNotClosed

    with pytest.raises(HealthDayNotClosed):
        compute_health_metrics(as_of=after(D3, days=0), day=D3)


@pytest.mark.parametrize("split", [None, 5, 29, 30])
def test_active_in_30_days_counts_each_member_once_per_window(split):
    """m1 active on D1 only, m2 on D1 + 10: m1 counts 30 days (D1..D1+29), m2 to D1+39;
    the same whether rolled up in one run or two (split after day `split`)."""
    zone = programme_settings().zone
    joined = datetime(2026, 1, 1, tzinfo=zone)
    m1, m2 = MemberFactory(joined_at=joined), MemberFactory(joined_at=joined)
    with on_day(D1):
        services.earn(member=m1, points=10)
        services.earn(member=m1, points=10)
    with on_day(D1 + timedelta(days=10)):
        services.earn(member=m2, points=10)
    if split is not None:
        compute_health_metrics(as_of=after(D1 + timedelta(days=split)))
    compute_health_metrics(as_of=after(D1 + timedelta(days=45)))

    active = dict(DailyProgrammeRollup.objects.values_list("day", "active_30d"))
    assert len(active) == 46
    expected = {0: 1, 9: 1, 10: 2, 29: 2, 30: 1, 39: 1, 40: 0, 45: 0}
    assert {offset: active[D1 + timedelta(days=offset)] for offset in expected} == expected
