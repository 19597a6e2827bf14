"""The member, ledger entry and lot change lists cost the same number of queries however big
the tables are, never count a whole table, and say honestly when a count is not exact."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty_site.admin_paginator import LargeTablePaginator
from loyalty_site.bulk_data import create_ledger_history
from members.models import Member, Tier
from points import services
from points.models import Entry, Lot
from tests.factories import MemberFactory, PartnerFactory

pytestmark = pytest.mark.django_db

# Session, user, the estimate, the bounded count, the page's keys, its rows (with their joins),
# a filter's choices, the search's account lookup: a page may cost at most this, at any size.
QUERY_BUDGET = 10


@pytest.fixture
def merchants(db):
    return [PartnerFactory(name=name) for name in ("Shop A", "Shop B", "Shop C")]


@pytest.fixture
def small_count_cap(monkeypatch):
    # 500 entries must be "more than the cap" to exercise the paths a million rows take.
    monkeypatch.setattr(LargeTablePaginator, "count_cap", 200)


def _date_filter_query(admin_client, url: str, label: str) -> str:
    """The query string of a date filter's choice, as the page itself links it."""
    changelist = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").context["cl"]
    for spec in changelist.filter_specs:
        for choice in spec.choices(changelist):
            if str(choice["display"]) == label:
                return choice["query_string"]
    raise AssertionError(f"no filter choice {label!r}")


def _pages(admin_client, merchants) -> dict[str, str]:
    """Every change list the benchmark times, unfiltered, with each filter and searched."""
    members = reverse("admin:members_member_changelist")
    entries = reverse("admin:points_entry_changelist")
    lots = reverse("admin:points_lot_changelist")
    member = Member.objects.order_by("id").first()
    reference = Entry.objects.filter(kind="spend").order_by("id").first().reference
    tier = Tier.entry_tier()
    return {
        "members": members,
        "members page 2": f"{members}?p=2",
        "members frozen": f"{members}?status__exact=frozen",
        "members of a tier": f"{members}?tier__id__exact={tier.pk}",
        "members consenting": f"{members}?marketing_consent__exact=1",
        "members joined this year": members
        + _date_filter_query(admin_client, members, "This year"),
        "members by external id": f"{members}?q={member.external_id}",
        "members by phone": f"{members}?q={member.phone}",
        "members by name": f"{members}?q={member.name[:1]}",
        "entries": entries,
        "entries page 2": f"{entries}?p=2",
        "entries spent": f"{entries}?kind__exact=spend",
        "entries transferred (none)": f"{entries}?kind__exact=transfer",
        "entries of a merchant": f"{entries}?partner__id__exact={merchants[1].pk}",
        "entries past 7 days": entries + _date_filter_query(admin_client, entries, "Past 7 days"),
        "entries this year": entries + _date_filter_query(admin_client, entries, "This year"),
        "entries by member": f"{entries}?q={member.external_id}",
        "entries by reference": f"{entries}?q={reference}",
        "lots": lots,
        "lots expired": f"{lots}?state__exact=expired",
        "lots of a merchant": f"{lots}?partner__id__exact={merchants[2].pk}",
        "lots expiring this year": lots + _date_filter_query(admin_client, lots, "This year"),
        "lots by member": f"{lots}?q={member.external_id}",
    }


def _queries_per_page(admin_client, pages: dict[str, str], budget_fixture) -> dict[str, int]:
    counts = {}
    for name, url in pages.items():
        with budget_fixture(QUERY_BUDGET) as captured:
            response = admin_client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        counts[name] = len(captured)
    return counts


def test_every_change_list_costs_the_same_queries_at_10_and_at_500_members(
    admin_client, merchants, small_count_cap, django_assert_max_num_queries
):
    # given: 10 members with 100 entries, every filter matching something
    partner_ids = [m.pk for m in merchants]
    create_ledger_history(members=10, entries_per_member=10, due_members=2, partner_ids=partner_ids)
    pages = _pages(admin_client, merchants)
    admin_client.get(pages["members"])  # session and caches warm, as for any later page

    small = _queries_per_page(admin_client, pages, django_assert_max_num_queries)

    # when: 50 times as many, past the paginator's count cap on most lists
    create_ledger_history(
        members=490, entries_per_member=10, due_members=2, partner_ids=partner_ids
    )
    assert Entry.objects.count() == 5000

    large = _queries_per_page(admin_client, pages, django_assert_max_num_queries)

    # then: the same number of queries on every page, within the budget
    assert large == small


def test_no_change_list_counts_more_rows_than_the_cap(admin_client, merchants, small_count_cap):
    create_ledger_history(members=60, entries_per_member=10, partner_ids=[merchants[0].pk])

    for url in _pages(admin_client, merchants).values():
        with CaptureQueriesContext(connection) as captured:
            admin_client.get(url)
        counts = [q["sql"] for q in captured if re.search(r"\bCOUNT\(", q["sql"], re.I)]
        assert all("LIMIT 201" in sql for sql in counts), (url, counts)


def test_a_large_unfiltered_list_shows_the_estimate_and_a_filtered_one_more_than_the_cap(
    admin_client, merchants, small_count_cap
):
    create_ledger_history(members=60, entries_per_member=10, partner_ids=[merchants[0].pk])
    url = reverse("admin:points_entry_changelist")

    unfiltered = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    filtered = admin_client.get(url, {"kind__exact": "earn"}, HTTP_ACCEPT_LANGUAGE="en")
    few = admin_client.get(url, {"kind__exact": "expire"})

    assert unfiltered.context["cl"].result_count == 600  # pg_class.reltuples after ANALYZE
    assert unfiltered.context["cl"].paginator.count_is_estimate
    assert "about 600 ledger entries" in unfiltered.content.decode()
    assert filtered.context["cl"].paginator.count_is_exact is False
    assert not filtered.context["cl"].paginator.count_is_estimate
    assert "more than 200 ledger entries" in filtered.content.decode()
    assert few.context["cl"].result_count == 60
    assert few.context["cl"].paginator.count_is_exact


def test_pages_stop_at_the_count_cap(admin_client, merchants, small_count_cap):
    create_ledger_history(members=60, entries_per_member=10, partner_ids=[merchants[0].pk])
    url = reverse("admin:points_entry_changelist")  # 100 a page, cap 200: two pages

    second = admin_client.get(url, {"p": 2})
    third = admin_client.get(url, {"p": 3})

    assert second.status_code == 200
    assert len(second.context["cl"].result_list) == 100
    assert third.status_code == 302 and "e=1" in third["Location"]


def test_entries_are_found_by_reference_or_by_member(admin_client, merchants):
    member, partner = MemberFactory(external_id="u-1001"), merchants[0]
    services.earn(member=member, points=10, partner=partner, reference="o-77")
    services.spend(member=member, points=3, partner=partner, reference="pay-78")
    other = MemberFactory(external_id="u-other")
    services.earn(member=other, points=5, reference="pay-78-not")
    url = reverse("admin:points_entry_changelist")

    by_reference = admin_client.get(url, {"q": "pay-78"}).context["cl"].result_list
    by_member = admin_client.get(url, {"q": member.external_id}).context["cl"].result_list
    nothing = admin_client.get(url, {"q": "nobody"}).context["cl"].result_list

    assert [e.reference for e in by_reference] == ["pay-78"]
    assert sorted(e.amount for e in by_member) == [-3, 10]
    assert list(nothing) == []


def test_lots_filtered_by_expiry_are_listed_in_expiry_order(admin_client, merchants):
    create_ledger_history(members=10, entries_per_member=10, due_members=10)
    url = reverse("admin:points_lot_changelist")
    # The due lots expired one to two days ago: "past 7 days" holds them on any day of the year
    # ("this year" held none on the first days of January).
    query = _date_filter_query(admin_client, url, "Past 7 days")

    listed = admin_client.get(url + query).context["cl"].result_list
    expiries = [lot.expires_at for lot in listed]

    assert expiries and expiries == sorted(expiries, reverse=True)
    today = timezone.localdate()
    assert all(today - timedelta(days=7) <= timezone.localtime(e).date() <= today for e in expiries)


def test_generated_history_is_sound_and_gives_the_jobs_their_work(merchants):
    now = timezone.now()
    sizes = create_ledger_history(
        members=20,
        entries_per_member=10,
        pending_members=4,
        due_members=3,
        partner_ids=[m.pk for m in merchants],
        now=now,
    )

    assert sizes == {"members": 20, "entries": 200, "lots": 120, "allocations": 80}
    assert services.check_ledger_invariants() == []
    assert Lot.objects.filter(state="pending").count() == 4
    assert set(Entry.objects.values_list("kind", flat=True)) == {
        "earn",
        "spend",
        "redeem",
        "expire",
        "adjust",
    }
    # ids follow time, as in the real append-only ledger (the date filters rely on it)
    stamps = list(Entry.objects.order_by("id").values_list("created_at", flat=True))
    assert stamps == sorted(stamps)
    assert services.release_pending_points(as_of=now) == 4
    # 3 members x 5 lots with points left (their released lot included)
    assert services.expire_lots(as_of=now) == 3 * 5
    assert services.check_ledger_invariants() == []
