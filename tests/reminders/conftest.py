"""Fixtures of the expiry reminder tests: members with lots expiring on given local dates."""

from __future__ import annotations

import importlib
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps

from campaigns import sms
from members.models import Member
from points.expiry import end_of_day
from points.services import earn
from tests.factories import MemberFactory

ZONE = ZoneInfo("Asia/Shanghai")
_defaults = importlib.import_module("campaigns.migrations.0005_default_reminder_templates")


def at(text: str) -> datetime:
    """A moment in the programme's time zone, e.g. at("2031-03-03 10:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def seed_reminder_defaults() -> None:
    """The settings row and templates of migration campaigns.0003 (a transactional test
    flushes them)."""
    _defaults.create_defaults(apps, None)


@pytest.fixture(autouse=True)
def _reminder_defaults(request):
    if request.node.get_closest_marker("django_db") is not None:
        request.getfixturevalue("entry_tier")
        seed_reminder_defaults()


@pytest.fixture(autouse=True)
def _empty_sms_outbox():
    sms.outbox.clear()
    yield
    sms.outbox.clear()


def member_with_points(
    external_id: str,
    *lots: tuple[int, date],
    language: str = Member.Language.ZH_HANS,
    **fields,
) -> Member:
    """A member holding `lots` of (points, last valid local date)."""
    member = MemberFactory(external_id=external_id, language=language, **fields)
    for points, last_day in lots:
        earn(member=member, points=points, expires_at=end_of_day(last_day, ZONE))
    return member
