"""The programme health dashboard in a real browser: Chart.js is served from our static files
(no network) and draws every chart."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.conf import settings
from django.test import Client

from campaigns.health import compute_health_metrics
from points import services
from points.services import programme_settings
from tests.factories import MemberFactory, PartnerFactory
from tests.health.conftest import DEFAULTS, after, on_day, thresholds  # noqa: F401

DAY = date(2026, 3, 2)
CHARTS = len(DEFAULTS) + 3  # every metric, the points flow, tiers, segments


@pytest.fixture
def rolled_up(thresholds, entry_tier):  # noqa: F811
    member = MemberFactory(joined_at=datetime(2026, 1, 1, tzinfo=programme_settings().zone))
    with on_day(DAY):
        services.earn(member=member, points=2500, partner=PartnerFactory())
    compute_health_metrics(as_of=after(DAY, days=2))


@pytest.mark.django_db(transaction=True)
def test_dashboard_draws_every_chart_offline(
    live_server, chromium, screenshot, admin_user, rolled_up
):
    client = Client()
    client.force_login(admin_user)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    # Offline: anything not served by this server fails the page.
    outside = []
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(live_server.url)
            else (outside.append(route.request.url), route.abort())
        ),
    )
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/admin/campaigns/healthdashboard/?days=365")
    page.wait_for_function(f"window.Chart && Object.keys(Chart.instances).length === {CHARTS}")

    screenshot(page, "health-dashboard")
    assert errors == []
    assert outside == []
    assert page.locator("#health-alert-banner").is_visible()
    context.close()
