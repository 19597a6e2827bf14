"""The liability forecast: Monte Carlo bands over the programme's own monthly history."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest
from django.urls import reverse

from points import services
from points.forecast import liability_forecast, monthly_history
from points.selectors import member_points_summary
from tests.factories import MemberFactory
from tests.reports.conftest import at

pytestmark = pytest.mark.django_db

NOW = "2026-11-15 12:00"


@pytest.fixture
def year_of_history(clock, merchants):
    """Twelve months (2025-11 .. 2026-10): each month three members earn 600-1400 points and
    spend about a third of what they hold; a fourth member's lot of 300 is used for 100
    and expires with 200 in 2026-06."""
    a, b, _c = merchants
    rng = random.Random(3)
    members = [MemberFactory() for _ in range(3)]
    far = at("2030-12-31 23:59")
    clock.set(at("2025-10-20 10:00"))
    keeper = MemberFactory()  # uses 100 of a lot of 300: the other 200 expire
    services.earn(member=keeper, points=300, partner=a, expires_at=at("2026-05-31 23:59"))
    services.spend(member=keeper, points=100, partner=b)
    for month in range(12):
        year, number = (2025, 11 + month) if month < 2 else (2026, month - 1)
        clock.set(at(f"{year}-{number:02d}-05 10:00"))
        for member in members:
            services.earn(member=member, points=rng.randint(600, 1400), partner=a, expires_at=far)
        clock.set(at(f"{year}-{number:02d}-20 10:00"))
        for member in members:
            available = member_points_summary(member=member)["available"]
            services.spend(member=member, points=max(available // 3, 1), partner=b)
        if (year, number) == (2026, 6):
            clock.set(at("2026-06-01 00:30"))
            services.expire_lots(as_of=at("2026-06-01 00:30"))
    clock.set(at("2026-11-01 09:00"))
    return members


def test_monthly_history_walks_back_from_todays_balance(year_of_history):
    history = monthly_history(months=12, now=at(NOW))
    assert [month.month.isoformat()[:7] for month in history][:2] == ["2025-11", "2025-12"]
    assert history[0].opening == 200  # only the October lot (300, 100 used) before November
    for before, after in itertools.pairwise(history):
        assert after.opening == before.opening + before.issued - before.used - before.expired
    june = next(month for month in history if month.month.isoformat().startswith("2026-06"))
    assert june.expired == 200
    assert all(month.issued >= 1800 for month in history)


def test_bands_are_ordered_and_the_median_follows_the_average(year_of_history):
    forecast = liability_forecast(simulations=2000, seed=11, now=at(NOW))
    assert len(forecast.months) == 12
    assert forecast.months[0].isoformat() == "2026-12-01"
    for low, mid, high in zip(forecast.p10, forecast.p50, forecast.p90, strict=True):
        assert low <= mid <= high
    assert forecast.p90[-1] > forecast.p10[-1]  # the history varies: so does the future
    for mid, plain in zip(forecast.p50, forecast.deterministic, strict=True):
        assert abs(mid - plain) <= 0.05 * plain
    # Same seed, same figures.
    again = liability_forecast(simulations=2000, seed=11, now=at(NOW))
    assert again.p50 == forecast.p50
    # Breakage from the one lot past its date: 200 of 300 expired unused.
    assert forecast.breakage_rate == Decimal("0.6667")
    first = forecast.rows[0]
    assert first["p50_cost"] == (first["p50"] * Decimal("0.3333") / 100).quantize(Decimal("0.01"))


def test_without_history_there_is_no_forecast(db):
    assert liability_forecast(seed=1, now=at(NOW)) is None


def test_the_forecast_page_draws_the_bands(year_of_history, finance_client):
    response = finance_client.get(
        reverse("admin:points_forecast"), {"seed": "5", "simulations": "500"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page
    assert 'class="band"' in page
    assert 'class="p50"' in page
    forecast = response.context["forecast"]
    assert forecast.simulations == 500
    assert all(low <= high for low, high in zip(forecast.p10, forecast.p90, strict=True))
