"""The dashboard page, the alert banner and acknowledging in the admin; the command and task."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import reverse

from campaigns import tasks
from campaigns.health import evaluate_alerts
from campaigns.models import HealthAlert, HealthMetric
from points import services
from points.services import programme_settings
from tests.factories import MemberFactory, OperatorFactory, PartnerFactory
from tests.health.conftest import after, on_day

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 2)
CHART_JS = "campaigns/vendor/chartjs/chart.umd.min.js"


@pytest.fixture
def history(thresholds):
    zone = programme_settings().zone
    member = MemberFactory(joined_at=datetime(2026, 1, 1, tzinfo=zone))
    with on_day(DAY):
        services.earn(member=member, points=2500, partner=PartnerFactory())
    return member


def test_dashboard_draws_each_metric_with_its_threshold(
    admin_client, history, django_assert_max_num_queries
):
    call_command("compute_health_metrics", as_of=after(DAY).isoformat(), stdout=StringIO())
    url = reverse("admin:campaigns_healthdashboard_changelist")

    with django_assert_max_num_queries(15):
        response = admin_client.get(url, {"days": 365})

    assert response.status_code == 200
    page = response.content.decode()
    assert f'src="/static/{CHART_JS}"' in page
    assert finders.find(CHART_JS), "Chart.js must be vendored in the static files"
    assert finders.find("campaigns/health_dashboard.js")
    marker = '<script id="health-dashboard-data" type="application/json">'
    data = json.loads(page.split(marker)[1].split("</script>")[0])
    assert data["days"] == [DAY.isoformat()]
    per_member = next(m for m in data["metrics"] if m["metric"] == "outstanding_per_member")
    assert per_member["values"] == [2500.0]
    assert per_member["upper"] == 2000.0
    assert data["flow"]["issued"] == [2500]
    assert data["tiers"]["members"] == [1]
    # 2,500 per member is above 2,000: the run raised that alert; page and banner show it.
    assert 'id="health-open-alerts"' in page
    assert 'id="health-alert-banner"' in page


def test_banner_on_every_admin_page_until_acknowledged(admin_client, admin_user, thresholds):
    evaluate_alerts(day=DAY, values={HealthMetric.OUTSTANDING_POINTS: Decimal("8000001")})

    assert 'id="health-alert-banner"' in admin_client.get(reverse("admin:index")).content.decode()

    alert = HealthAlert.objects.get()
    response = admin_client.post(
        reverse("admin:campaigns_healthalert_changelist"),
        {"action": "acknowledge", "_selected_action": [alert.pk]},
        follow=True,
    )
    assert response.status_code == 200
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == (HealthAlert.State.ACKNOWLEDGED, admin_user)
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="health-alert-banner"' not in index


def test_thresholds_editable_in_admin(admin_client, thresholds):
    threshold = thresholds[HealthMetric.OUTSTANDING_POINTS]
    url = reverse("admin:campaigns_healththreshold_change", args=[threshold.pk])

    response = admin_client.post(
        url,
        {
            "metric": threshold.metric,
            "lower": "",
            "upper": "9000000",
            "weeks_running": 1,
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    threshold.refresh_from_db()
    assert threshold.upper == 9_000_000


def test_command_recomputes_a_day(history):
    out = StringIO()
    call_command("compute_health_metrics", as_of=after(DAY).isoformat(), stdout=out)
    assert "1 days rolled up" in out.getvalue()

    out = StringIO()
    call_command(
        "compute_health_metrics", as_of=after(DAY).isoformat(), day="2026-03-02", stdout=out
    )
    assert "1 days rolled up" in out.getvalue()

    out = StringIO()
    call_command("compute_health_metrics", as_of=after(DAY).isoformat(), stdout=out)
    assert "0 days rolled up" in out.getvalue()


def test_task_rolls_up_to_yesterday(history):
    result = tasks.compute_health_metrics(as_of=after(DAY).isoformat())

    assert result["days"] == [DAY.isoformat()]
    assert result["alerts_raised"] == 1  # 2,500 points for one member


def test_dashboard_needs_its_view_permission(client, thresholds):
    from django.contrib.auth.models import Permission

    operator = OperatorFactory()
    client.force_login(operator)
    url = reverse("admin:campaigns_healthdashboard_changelist")

    assert client.get(url).status_code == 403

    operator.user_permissions.add(Permission.objects.get(codename="view_healthdashboard"))
    assert client.get(url).status_code == 200
