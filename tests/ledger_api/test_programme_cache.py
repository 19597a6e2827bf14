"""The programme settings copy kept per process on request paths (points.services)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from points import services
from points.models import ProgrammeSettings

pytestmark = pytest.mark.django_db


def test_settings_are_reread_once_the_copy_is_older_than_the_limit(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    with override_settings(PROGRAMME_CACHE_SECONDS=5):
        services._programme(fresh=True)
        ProgrammeSettings.objects.filter(pk=1).update(currency="HKD")

        clock[0] += 4
        assert services.programme_settings().currency == "CNY"
        clock[0] += 2
        assert services.programme_settings().currency == "HKD"


def test_saving_settings_through_the_service_refreshes_this_process_at_once():
    with override_settings(PROGRAMME_CACHE_SECONDS=3600):
        services._programme(fresh=True)
        programme = ProgrammeSettings.get()
        programme.point_value = "0.02"

        services.programme_settings_save(programme=programme)

        assert str(services.programme_settings().point_value) == "0.020000"
