"""Fixtures of the finance report tests: a ledger clock to write history in the past, and the
three merchants of a small coalition."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.factories import PartnerFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """A moment in the programme's default time zone, e.g. at("2026-09-03 10:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture
def clock(db, entry_tier):
    """clock.set(moment): the ledger rows written next carry created_at = moment (the demo
    seed's LedgerClock: a trigger that lives inside the test's transaction only)."""
    from loyalty_site.management.commands.seed_demo import LedgerClock

    ledger_clock = LedgerClock()
    with ledger_clock.running():
        yield ledger_clock


@pytest.fixture
def merchants(db):
    """Merchants A, B and C of one coalition, created in that order (ids ascending)."""
    return (
        PartnerFactory(name="A Hotel"),
        PartnerFactory(name="B Restaurant"),
        PartnerFactory(name="C Shop"),
    )


@pytest.fixture
def finance_user(db, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(
        username="auditor", password="pw-auditor-1", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_finance_reports"))
    return user


@pytest.fixture
def finance_client(client, finance_user):
    client.force_login(finance_user)
    # Headers and labels are asserted in English (the admin's default is zh-hans).
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client
