"""The campaign return report: cost of a campaign's points and its uplift against control."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns import engine
from campaigns.models import Campaign, Experiment, ExperimentArm
from campaigns.reports import campaign_return
from loyalty_site.reports import ReportFilters
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def test_cost_and_uplift_against_the_control_arm(pos, admin_client):
    experiment = Experiment.objects.create(code="dbl", name="double for B")
    ExperimentArm.objects.create(experiment=experiment, code="A", weight=50, is_control=True)
    arm_b = ExperimentArm.objects.create(experiment=experiment, code="B", weight=50, position=1)
    Campaign.objects.create(
        code="b-double",
        name="x2 for B",
        status="active",
        multiplier=2,
        starts_at=timezone.now() - timedelta(days=1),
        experiment_arm=arm_b,
    )
    members = [MemberFactory(external_id=f"ab-{i}") for i in range(12)]
    in_b = {
        m.external_id
        for m in members
        if engine.arm_bucket(experiment_code="dbl", member_key=m.external_id) >= 5000
    }
    assert 0 < len(in_b) < 12
    for i, member in enumerate(members):
        amount = Decimal("30") if member.external_id in in_b else Decimal("10")
        pos.purchase(member.external_id, f"o-{i}", str(amount))
    today = timezone.localdate()
    [row] = campaign_return(ReportFilters(date_from=today, date_to=today))
    b = len(in_b)
    assert row["campaign"] == "b-double"
    assert row["members"] == b and row["points"] == 30 * b  # the doubling's extra only
    assert row["cost"] == Decimal(30 * b) * Decimal("0.01")
    assert row["control_spend_per_member"] == Decimal("10.00")
    assert row["uplift_per_member"] == Decimal("20.00")
    assert row["return"] == Decimal(20 * b) - row["cost"]
    page = admin_client.get("/admin/points/reportexport/report/campaign-return/")
    assert page.status_code == 200 and b"b-double" in page.content
