"""Fixtures of the concurrency tests.

The tests run real threads against real PostgreSQL, so they need `transaction=True` (threads
see only committed rows). An earlier transactional test may have emptied every table, so the
default programme (entry tier, settings row) is made again first. tests/conftest.py checks the
ledger invariant after every database test.
"""

from __future__ import annotations

import pytest

from points import services
from points.models import ProgrammeSettings

TRANSACTIONAL = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _default_programme(request):
    if request.node.get_closest_marker("django_db") is not None:
        request.getfixturevalue("entry_tier")
        ProgrammeSettings.get()


@pytest.fixture
def configure():
    """configure(field=value, ...): change the programme settings through the service."""

    def apply(**fields) -> ProgrammeSettings:
        programme = ProgrammeSettings.get()
        for name, value in fields.items():
            setattr(programme, name, value)
        return services.programme_settings_save(programme=programme)

    return apply
