"""`manage.py seed_demo`: the demo data a new user meets on the first `make run`."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from loyalty_site.api.auth import principal_for_key
from loyalty_site.management.commands.seed_demo import demo_people
from members.models import Member
from points.models import ApiScope, Entry
from points.services import check_ledger_invariants, earn

pytestmark = pytest.mark.django_db

CJK = re.compile(r"[\u4e00-\u9fff]")


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def test_first_run_prints_a_working_admin_password_and_partner_key():
    output = seed(members=4)

    password = re.search(r"password: (\S+)", output).group(1)
    assert authenticate(username="admin", password=password).is_superuser
    key = re.search(r"Authorization: Api-Key (\S+)", output).group(1)
    principal = principal_for_key(key)
    assert principal.partner.name == "Demo POS"
    assert principal.scopes == frozenset(ApiScope.values)


def test_second_run_prints_no_secret_and_adds_nothing():
    first = seed(members=4)
    counts = (Member.objects.count(), Entry.objects.count())

    second = seed(members=4)

    assert "password:" in first and "password:" not in second
    assert "Api-Key" in first and "Api-Key" not in second
    assert "Admin user `admin` exists" in second
    assert "Demo members exist" in second
    assert (Member.objects.count(), Entry.objects.count()) == counts


def test_demo_members_are_believable_people():
    seed(members=30)
    members = list(Member.objects.filter(external_id__startswith="demo-"))
    assert len(members) == 30
    assert sum(bool(CJK.search(m.name)) for m in members) >= 10
    assert sum(bool(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", m.name)) for m in members) >= 3
    assert all(re.fullmatch(r"1[3-9]\d{9}", m.phone) for m in members)
    assert all(re.fullmatch(r"[a-z.]+\d+@example\.(com|net|org)", m.email) for m in members)
    now = timezone.now()
    assert all(now - timedelta(days=731) < m.joined_at < now for m in members)
    assert len({m.joined_at.date() for m in members}) > 20
    adult = timezone.localdate() - timedelta(days=18 * 365)
    assert all(m.birthday is None or m.birthday <= adult for m in members)


def test_demo_history_spans_two_years_of_purchases_spends_refunds_and_expiry():
    seed(members=30)

    demo_entries = Entry.objects.filter(account__member__external_id__startswith="demo-")
    assert set(demo_entries.values_list("kind", flat=True)) == {
        Entry.Kind.EARN,
        Entry.Kind.SPEND,
        Entry.Kind.REVERSE,
        Entry.Kind.EXPIRE,
    }
    span = demo_entries.aggregate(first=Min("created_at"), last=Max("created_at"))
    assert span["last"] - span["first"] > timedelta(days=365)
    assert span["last"] <= timezone.now()
    # every member shopped, and no entry predates the member joining
    for member in Member.objects.filter(external_id__startswith="demo-"):
        entries = demo_entries.filter(account__member=member)
        assert entries.filter(kind=Entry.Kind.EARN).exists(), member
        assert entries.aggregate(first=Min("created_at"))["first"] >= member.joined_at
    # expired points went in the nightly run after their last day
    for entry in demo_entries.filter(kind=Entry.Kind.EXPIRE):
        assert timezone.localtime(entry.created_at).strftime("%H:%M") == "00:30"
    assert check_ledger_invariants() == []


def test_after_seeding_the_ledger_stamps_new_entries_with_the_real_time_again():
    seed(members=4)
    before = timezone.now()

    entry = earn(member=Member.objects.get(external_id="demo-0001"), points=10).entry
    entry.refresh_from_db()

    assert entry.created_at >= before - timedelta(seconds=5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'loyalty_demo_clock'")
        assert cursor.fetchone()[0] == 0


def test_demo_people_are_the_same_for_the_same_seed_and_differ_for_another():
    today = timezone.localdate()
    first = demo_people(count=10, seed=7, today=today)
    assert demo_people(count=10, seed=7, today=today) == first
    assert demo_people(count=10, seed=8, today=today) != first
