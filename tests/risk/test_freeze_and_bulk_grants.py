"""A bulk grant during an issuance freeze: the run stops, no row is lost or skipped."""

from __future__ import annotations

import pytest

from points.exceptions import IssuanceFrozen
from points.grants import run_bulk_grant
from points.models import BulkGrant, BulkGrantRow
from points.services import freeze_issuance, lift_issuance_freeze
from tests.factories import MemberFactory, OperatorFactory

pytestmark = pytest.mark.django_db


def test_a_freeze_stops_a_bulk_grant_and_resume_grants_every_row_after_it():
    maker, checker = OperatorFactory(), OperatorFactory()
    members = [MemberFactory(external_id=f"bg-{i}") for i in range(3)]
    grant = BulkGrant.objects.create(
        file_name="x.csv",
        content_hash="f" * 64,
        uploaded_by=maker,
        decided_by=checker,
        state=BulkGrant.State.QUEUED,
        total_rows=3,
        total_points=30,
    )
    for number, member in enumerate(members, start=1):
        BulkGrantRow.objects.create(
            grant=grant,
            row_number=number,
            member_external_id=member.external_id,
            points=10,
            reason="goodwill",
        )
    freeze_issuance(reason="fraud wave", operator=checker)
    with pytest.raises(IssuanceFrozen):
        run_bulk_grant(grant_id=grant.pk)
    assert not BulkGrantRow.objects.exclude(status=BulkGrantRow.Status.PENDING).exists()
    lift_issuance_freeze(operator=checker)
    run = run_bulk_grant(grant_id=grant.pk)
    assert (run.granted, run.skipped) == (3, 0)
