"""Each report on a hand-built history, and the Reports pages with their downloads."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from loyalty_site.reports import ReportFilters, get_report, registered_reports
from points import services
from points.reports import breakage_rate, liability_by_day, outstanding_by_day
from rewards_mall.services import cancel_redemption, redeem
from tests.factories import MemberFactory, OperatorFactory, RewardFactory, TierFactory
from tests.reports.conftest import at

pytestmark = pytest.mark.django_db

SEP_1, SEP_5 = date(2026, 9, 1), date(2026, 9, 5)


@pytest.fixture
def history(clock, merchants):
    """Five days of September 2026 (Shanghai) at merchants A and B:

    09-01  m1 earns 500 at A (expires 09-04) and 300 at B; m2 earns 200 at B
    09-02  m1 spends 100 at B (A's lot); m2 redeems 50 at A (B's lot); m1 adjusted +20
    09-03  the redemption is cancelled (50 back, at A); m1 buys at B for 100 points, refunded
    09-05  the expiry run expires the 400 left of A's lot
    """
    a, b, _c = merchants
    m1, m2 = MemberFactory(), MemberFactory()
    far = at("2027-12-31 23:59")
    clock.set(at("2026-09-01 10:00"))
    services.earn(member=m1, points=500, partner=a, expires_at=at("2026-09-04 23:59:59"))
    services.earn(member=m1, points=300, partner=b, expires_at=far)
    services.earn(member=m2, points=200, partner=b, expires_at=far)
    clock.set(at("2026-09-02 10:00"))
    services.spend(member=m1, points=100, partner=b)
    redeemed = services.take_for_redemption(member=m2, points=50, redemption_id="r", partner=a)
    services.adjust(member=m1, points=20, reason="goodwill", operator=OperatorFactory())
    clock.set(at("2026-09-03 10:00"))
    services.give_back_redemption(entry=redeemed)
    services.record_purchase(
        member=m1, partner=b, reference="p-1", amount=Decimal("100"), currency="CNY", points=100
    )
    services.refund_order(partner=b, reference="p-1")
    clock.set(at("2026-09-05 00:30"))
    services.expire_lots(as_of=at("2026-09-05 00:30"))
    clock.set(at("2026-09-05 12:00"))
    return m1, m2


def figures(rows, *keys):
    return {row["day"].isoformat(): tuple(row[key] for key in keys) for row in rows}


def test_activity_by_day_counts_each_kind_on_its_day(history, merchants):
    a, b, _c = merchants
    report = get_report("points-activity")
    keys = ("issued", "adjusted", "spent", "redeemed", "returned", "reversed", "expired", "net")

    every = figures(report.rows(ReportFilters(SEP_1, SEP_5)), *keys)
    at_a = figures(report.rows(ReportFilters(SEP_1, SEP_5, partner_id=a.pk)), *keys)
    at_b = figures(report.rows(ReportFilters(SEP_1, SEP_5, partner_id=b.pk)), *keys)

    assert every == {
        "2026-09-01": (1000, 0, 0, 0, 0, 0, 0, 1000),
        "2026-09-02": (0, 20, 100, 50, 0, 0, 0, -130),
        "2026-09-03": (100, 0, 0, 0, 50, 100, 0, 50),
        "2026-09-04": (0, 0, 0, 0, 0, 0, 0, 0),
        "2026-09-05": (0, 0, 0, 0, 0, 0, 400, -400),
    }
    # Expiry belongs to the merchant that issued the points (A's lot).
    assert at_a["2026-09-02"] == (0, 0, 0, 50, 0, 0, 0, -50)
    assert at_a["2026-09-05"] == (0, 0, 0, 0, 0, 0, 400, -400)
    assert at_b["2026-09-03"] == (100, 0, 0, 0, 0, 100, 0, 0)
    assert at_b["2026-09-05"][6] == 0
    day_one = report.rows(ReportFilters(SEP_1, SEP_1))[0]
    assert day_one["issued_value"] == Decimal("10.00")


def test_liability_is_outstanding_points_at_each_day_end(history, merchants):
    a, b, _c = merchants
    every = outstanding_by_day(ReportFilters(SEP_1, SEP_5))
    assert [every[day] for day in sorted(every)] == [1000, 870, 920, 920, 520]
    at_a = outstanding_by_day(ReportFilters(SEP_1, SEP_5, partner_id=a.pk))
    assert [at_a[day] for day in sorted(at_a)] == [500, 400, 400, 400, 0]
    at_b = outstanding_by_day(ReportFilters(SEP_1, SEP_5, partner_id=b.pk))
    assert [at_b[day] for day in sorted(at_b)] == [500, 450, 500, 500, 500]


def test_breakage_comes_from_lots_whose_date_has_passed(history, merchants):
    _a, b, _c = merchants
    # Only A's lot (500) is past its date; 400 of it expired unused.
    assert breakage_rate(now=at("2026-11-25 12:00")) == Decimal("0.8000")
    assert breakage_rate(partner_id=b.pk, now=at("2026-11-25 12:00")) == Decimal("0")
    assert breakage_rate(now=at("2026-09-01 00:00")) == Decimal("0")


def test_liability_rows_value_the_points_and_take_off_breakage(history):
    rows = liability_by_day(ReportFilters(SEP_1, SEP_5))
    last = rows[-1]
    assert last["outstanding"] == 520
    assert last["value"] == Decimal("5.20")
    # 400 of the 500 points whose date has passed expired unused: 80 % breakage.
    assert last["breakage_rate"] == Decimal("80.00")
    assert last["expected_breakage"] == 416  # 520 x 80 %
    assert last["expected_cost"] == Decimal("1.04")  # (520 - 416) points at 100 a yuan


def test_tier_distribution_counts_members_and_those_active(history, merchants, entry_tier):
    _a, b, _c = merchants
    gold = TierFactory(code="gold", name="金卡", name_en="Gold", rank=3)
    MemberFactory(tier=gold)
    MemberFactory(tier=gold, status="closed")
    rows = get_report("tier-distribution").rows(ReportFilters(SEP_1, SEP_5, partner_id=b.pk))
    by_code = {row["code"]: row for row in rows}
    assert by_code["member"]["members"] == 2
    assert by_code["member"]["active_members"] == 2  # both earned at B
    assert by_code["member"]["share"] == Decimal("100.00")
    assert by_code["member"]["points_held"] == 520
    assert by_code["gold"]["members"] == 1  # the closed member is left out
    assert by_code["gold"]["active_members"] == 0
    assert by_code["gold"]["tier"] == "Gold"


def test_top_rewards_rank_by_units_without_cancelled_orders(entry_tier, merchants):
    a, b, _c = merchants
    m1, m2 = MemberFactory(), MemberFactory()
    services.earn(member=m1, points=1000)
    services.earn(member=m2, points=1000)
    spa = RewardFactory(code="spa", kind="service", points_price=100)
    tea = RewardFactory(code="tea", kind="service", points_price=30)
    redeem(member=m1, reward_code="spa", quantity=2, partner=a)
    redeem(member=m2, reward_code="tea", partner=a)
    cancel_redemption(redemption=redeem(member=m1, reward_code="tea", partner=a))
    redeem(member=m2, reward_code="tea", partner=b)
    today = timezone.localdate()

    rows = get_report("top-rewards").rows(ReportFilters(today, today, partner_id=a.pk))

    assert [(r["reward"], r["units"], r["points"], r["cancelled"]) for r in rows] == [
        (spa.code, 2, 200, 0),
        (tea.code, 1, 30, 1),
    ]
    assert rows[0]["points_value"] == Decimal("2.00")


def test_every_report_is_listed_on_the_reports_page(finance_client):
    response = finance_client.get(reverse("admin:points_reportexport_changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    for report in registered_reports():
        assert reverse("admin:points_report", args=[report.key]) in page
    assert reverse("admin:points_settlement") in page
    assert reverse("admin:points_forecast") in page
    assert {"points-activity", "liability", "settlement", "tier-distribution", "top-rewards"} <= {
        report.key for report in registered_reports()
    }


def test_a_report_page_shows_the_table(history, finance_client):
    url = reverse("admin:points_report", args=["points-activity"])
    response = finance_client.get(url, {"date_from": "2026-09-01", "date_to": "2026-09-05"})
    assert response.status_code == 200
    assert response.context["rows"][0]["issued"] == 1000
    assert 'id="report-table"' in response.content.decode()


def test_csv_download_parses_back(history, finance_client):
    url = reverse("admin:points_report", args=["points-activity"])
    response = finance_client.get(
        url, {"date_from": "2026-09-01", "date_to": "2026-09-05", "download": "csv"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["day", "issued", "adjusted"]
    assert len(rows) == 6
    assert rows[1][:2] == ["2026-09-01", "1000"]
    assert rows[5][7] == "400"  # expired (headers are in the request's language)


def test_xlsx_download_parses_back(history, finance_client):
    url = reverse("admin:points_report", args=["liability"])
    response = finance_client.get(
        url, {"date_from": "2026-09-01", "date_to": "2026-09-05", "download": "xlsx"}
    )
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("day", "outstanding points", "face value")
    assert [row[1] for row in rows[1:]] == [1000, 870, 920, 920, 520]
    assert rows[5][2] == pytest.approx(5.20)


def test_reports_need_the_finance_permission(client, django_user_model):
    staff = django_user_model.objects.create_user(username="ops", password="x", is_staff=True)
    client.force_login(staff)
    url = reverse("admin:points_report", args=["liability"])
    assert client.get(url).status_code == 403
    assert client.get(reverse("admin:points_settlement")).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302  # to the login page
