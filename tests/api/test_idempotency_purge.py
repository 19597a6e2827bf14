"""Idempotency-Keys are forgotten after IDEMPOTENCY_KEY_TTL_HOURS, never before 24 hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from loyalty_site.api.idempotency import purge_expired_records
from loyalty_site.models import IdempotencyRecord
from loyalty_site.tasks import purge_idempotency_records
from tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db


def record(key: str, age: timedelta) -> IdempotencyRecord:
    row = IdempotencyRecord.objects.create(
        partner=PartnerFactory(name="Purge partner"),
        key=key,
        fingerprint="f" * 64,
        method="POST",
        path="/api/v1/events",
        response_status=201,
        response_body={},
    )
    IdempotencyRecord.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
    return row


def remaining_keys() -> set[str]:
    return set(IdempotencyRecord.objects.values_list("key", flat=True))


def test_the_purge_task_deletes_only_records_past_the_ttl(settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 48
    record("fresh", timedelta(hours=47))
    record("old", timedelta(hours=49))

    assert purge_idempotency_records() == 1

    assert remaining_keys() == {"fresh"}


def test_keys_are_kept_at_least_24_hours_even_if_configured_shorter(settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 1
    record("young", timedelta(hours=23))
    record("old", timedelta(hours=25))

    purge_expired_records()

    assert remaining_keys() == {"young"}


def test_a_large_backlog_is_purged_in_batches():
    for index in range(7):
        record(f"old-{index}", timedelta(days=10))

    assert purge_expired_records(batch_size=3) == 7
    assert remaining_keys() == set()


def test_the_purge_runs_every_hour_in_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["purge-idempotency-records"]

    assert entry["task"] == purge_idempotency_records.name
    assert entry["schedule"] <= 24 * 3600
