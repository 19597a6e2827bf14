"""Fixtures of the ledger tests. After every database test the ledger invariant must hold."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from points import services
from points.models import ProgrammeSettings
from points.services import check_ledger_invariants
from tests.factories import MemberFactory, OperatorFactory, PartnerFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """A moment in the programme's default time zone, e.g. at("2025-03-01 10:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _in_english():
    # Messages and system memos are written in the active language (zh-hans by default).
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _ledger_invariant_holds(request):
    yield
    if request.node.get_closest_marker("django_db") is None:
        return
    if "broken_ledger" in request.fixturenames:
        return
    assert check_ledger_invariants() == []


@pytest.fixture
def broken_ledger():
    """Marks a test that corrupts the ledger on purpose (no invariant check afterwards)."""


@pytest.fixture
def member(db):
    return MemberFactory(external_id="u-1001")


@pytest.fixture
def other_member(db):
    return MemberFactory(external_id="u-1002")


@pytest.fixture
def partner(db):
    return PartnerFactory(name="POS")


@pytest.fixture
def operator(db):
    return OperatorFactory(username="ops")


@pytest.fixture
def programme(db):
    """The programme settings; change them with `configure(field=value, ...)`."""
    return ProgrammeSettings.get()


@pytest.fixture
def configure(db):
    def apply(**fields) -> ProgrammeSettings:
        settings_row = ProgrammeSettings.get()
        for name, value in fields.items():
            setattr(settings_row, name, value)
        return services.programme_settings_save(programme=settings_row)

    return apply
