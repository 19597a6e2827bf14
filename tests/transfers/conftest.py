"""Fixtures of the transfer and exchange tests (api.md "Transfers and exchange").

tests/conftest.py checks the ledger invariant after every database test.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from points import services
from points.models import ProgrammeSettings, TransferSettings
from tests.factories import ExchangePartnerFactory, MemberFactory
from tests.ledger_api.conftest import PartnerApi

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """A moment in the programme's time zone (Asia/Shanghai), e.g. at("2025-03-01 23:59")."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _programme(request):
    # Transactional tests may have emptied every table: the entry tier and settings again.
    if request.node.get_closest_marker("django_db") is not None:
        request.getfixturevalue("entry_tier")
        programme = ProgrammeSettings.get()
        programme.time_zone = "Asia/Shanghai"
        services.programme_settings_save(programme=programme)


@pytest.fixture
def pos(db) -> PartnerApi:
    return PartnerApi("POS")


@pytest.fixture
def limits(db):
    """limits(out=..., into=...): the daily transfer limits (None: no limit)."""

    def apply(*, out: int | None = None, into: int | None = None) -> TransferSettings:
        settings = TransferSettings.get()
        settings.daily_out_limit, settings.daily_in_limit = out, into
        settings.save()
        return settings

    return apply


@pytest.fixture
def alice(db):
    member = MemberFactory(external_id="u-alice")
    services.earn(member=member, points=1000)
    return member


@pytest.fixture
def bob(db):
    member = MemberFactory(external_id="u-bob")
    services.earn(member=member, points=1000)
    return member


@pytest.fixture
def airline(db):
    """airline-x: 10 of our points per mile (base 8 x factor 1.25), no daily limits."""
    return ExchangePartnerFactory(
        code="airline-x",
        name="Airline X",
        base_rate=Decimal("8"),
        factor=Decimal("1.25"),
        min_factor=Decimal("0.5"),
        max_factor=Decimal("1.5"),
    )
