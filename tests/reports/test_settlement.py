"""Coalition settlement: a generated coalition of three merchants against a hand computation,
and a closed month that late entries do not change."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.urls import reverse

from points import services
from points.exceptions import SettlementRefused
from points.models import SettledEntry, SettlementLine, SettlementStatement
from points.settlement import close_settlement_month, settlement_preview
from tests.factories import MemberFactory
from tests.reports.conftest import at

pytestmark = pytest.mark.django_db

SEPTEMBER, OCTOBER = date(2026, 9, 1), date(2026, 10, 1)


def build_september(clock, merchants):
    """Hand-built month. FIFO is fixed by explicit expiry dates.

    m1: earns 1000 at A, 500 at B; spends 700 at B (A's lot)      -> A owes B 700
        spends 200 at C (A's lot), C refunds it                   -> A owes C 200 - 200 = 0
    m2: earns 800 at C (expires first), 400 at A; redeems 1000 at A -> C owes A 800 (+200 A at A)
    m3: earns 600 at B; spends 300 at C, 100 at A                 -> B owes C 300, B owes A 100
        redeems 50 at C, cancelled                                -> B owes C 50 - 50 = 0
    """
    a, b, c = merchants
    m1, m2, m3 = MemberFactory(), MemberFactory(), MemberFactory()
    clock.set(at("2026-09-03 10:00"))
    services.earn(member=m1, points=1000, partner=a, expires_at=at("2027-03-31 23:59"))
    services.earn(member=m1, points=500, partner=b, expires_at=at("2027-06-30 23:59"))
    services.earn(member=m2, points=800, partner=c, expires_at=at("2027-01-31 23:59"))
    services.earn(member=m2, points=400, partner=a, expires_at=at("2027-05-31 23:59"))
    services.earn(member=m3, points=600, partner=b, expires_at=at("2027-04-30 23:59"))
    clock.set(at("2026-09-10 12:00"))
    services.spend(member=m1, points=700, partner=b)
    services.take_for_redemption(member=m2, points=1000, redemption_id="r-1", partner=a)
    services.spend(member=m3, points=300, partner=c)
    services.spend(member=m3, points=100, partner=a)
    clock.set(at("2026-09-21 18:00"))
    services.spend(member=m1, points=200, partner=c, reference="c-77")
    services.refund_order(partner=c, reference="c-77")
    redeemed = services.take_for_redemption(member=m3, points=50, redemption_id="r-2", partner=c)
    services.give_back_redemption(entry=redeemed)
    clock.set(at("2026-09-30 23:59:59"))
    return m1, m2, m3


def lines_of(statement) -> list[tuple]:
    return [
        (
            line.payer.name,
            line.payee.name,
            line.payer_points_used_at_payee,
            line.payee_points_used_at_payer,
            line.net_points,
            line.amount,
        )
        for line in SettlementLine.objects.filter(statement=statement)
        .select_related("payer", "payee")
        .order_by("id")
    ]


def test_three_merchants_match_the_hand_computation(clock, merchants):
    # given
    build_september(clock, merchants)
    # when
    statement = close_settlement_month(month=SEPTEMBER)
    # then: point value 0.01 (100 points = 1.00)
    assert lines_of(statement) == [
        ("A Hotel", "B Restaurant", 700, 100, 600, Decimal("6.00")),
        ("C Shop", "A Hotel", 800, 0, 800, Decimal("8.00")),
        ("B Restaurant", "C Shop", 300, 0, 300, Decimal("3.00")),
    ]
    assert statement.amount_settled == Decimal("17.00")
    assert statement.points_used_elsewhere == 700 + 800 + 100 + 300
    # 4 spends, 2 redemptions, the refund's give-back and the cancellation's give-back
    assert statement.entries == 8
    assert statement.late_entries == 0
    assert statement.point_value == Decimal("0.01")


def test_the_preview_equals_what_the_close_writes(clock, merchants):
    build_september(clock, merchants)
    preview = settlement_preview(month=SEPTEMBER)
    statement = close_settlement_month(month=SEPTEMBER)
    assert [(line["net_points"], line["amount"]) for line in preview.lines] == [
        (net, amount) for *_names, net, amount in lines_of(statement)
    ]
    assert preview.entries == statement.entries


def test_a_closed_month_does_not_change_when_late_entries_arrive(clock, merchants):
    # given: September closed
    a, b, _c = merchants
    _m1, m2, m3 = build_september(clock, merchants)
    september = close_settlement_month(month=SEPTEMBER)
    before = lines_of(september)
    settled_before = SettledEntry.objects.filter(statement=september).count()

    # when: an entry of September arrives after the close (its transaction began in
    # September), and an October entry
    clock.set(at("2026-09-20 09:00"))
    late = services.spend(member=m3, points=40, partner=a)  # B's lot: B owes A 40
    clock.set(at("2026-10-05 11:00"))
    services.spend(member=m2, points=100, partner=b)  # A's lot: A owes B 100
    october = close_settlement_month(month=OCTOBER)

    # then: September is as it was; the late entry is settled by October
    september.refresh_from_db()
    assert lines_of(september) == before
    assert SettledEntry.objects.filter(statement=september).count() == settled_before
    assert september.amount_settled == Decimal("17.00")
    assert SettledEntry.objects.get(entry=late.entry).statement == october
    assert october.late_entries == 1
    assert october.entries == 2
    assert lines_of(october) == [("A Hotel", "B Restaurant", 100, 40, 60, Decimal("0.60"))]


def test_every_entry_is_settled_once(clock, merchants):
    build_september(clock, merchants)
    close_settlement_month(month=SEPTEMBER)
    october = close_settlement_month(month=OCTOBER)
    assert october.entries == 0
    assert list(october.lines.all()) == []


def test_months_close_once_in_order_and_only_when_over(clock, merchants):
    build_september(clock, merchants)
    close_settlement_month(month=SEPTEMBER)
    with pytest.raises(SettlementRefused, match="already closed"):
        close_settlement_month(month=SEPTEMBER)
    with pytest.raises(SettlementRefused, match="close 2026-10 first"):
        close_settlement_month(month=date(2026, 11, 1), now=at("2026-12-02 00:00"))
    with pytest.raises(SettlementRefused, match="not over"):
        close_settlement_month(month=OCTOBER, now=at("2026-10-31 12:00"))


def test_the_database_refuses_to_change_a_closed_statement(clock, merchants):
    build_september(clock, merchants)
    statement = close_settlement_month(month=SEPTEMBER)
    line = statement.lines.first()
    for change in (
        lambda: SettlementStatement.objects.filter(pk=statement.pk).update(entries=0),
        lambda: SettlementLine.objects.filter(pk=line.pk).update(amount=0),
        lambda: SettledEntry.objects.filter(statement=statement).delete(),
        lambda: SettlementStatement.objects.filter(pk=statement.pk).delete(),
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            change()
    assert lines_of(statement)[0][-1] == Decimal("6.00")


def test_the_settlement_page_previews_and_closes_a_month(clock, merchants, admin_client):
    build_september(clock, merchants)
    admin_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    url = reverse("admin:points_settlement")

    preview = admin_client.get(url, {"month": "2026-09"})
    assert preview.status_code == 200
    assert [line["amount"] for line in preview.context["preview_lines"]] == [
        Decimal("6.00"),
        Decimal("8.00"),
        Decimal("3.00"),
    ]
    assert preview.context["can_close"]
    assert "C Shop" in preview.content.decode()

    response = admin_client.post(url, {"month": "2026-09"})
    statement = SettlementStatement.objects.get(month=SEPTEMBER)
    assert response.status_code == 302
    assert statement.amount_settled == Decimal("17.00")
    closed = admin_client.get(url, {"month": "2026-09"})
    assert closed.context["closed"] == statement
    assert len(closed.context["closed_lines"]) == 3
    change = admin_client.get(
        reverse("admin:points_settlementstatement_change", args=[statement.pk])
    )
    assert change.status_code == 200


def test_closing_needs_its_own_permission(clock, merchants, finance_client):
    build_september(clock, merchants)
    url = reverse("admin:points_settlement")
    assert finance_client.get(url, {"month": "2026-09"}).status_code == 200
    assert finance_client.post(url, {"month": "2026-09"}).status_code == 403
    assert not SettlementStatement.objects.exists()


def test_the_command_closes_the_month_before_as_of(clock, merchants):
    build_september(clock, merchants)
    out = io.StringIO()
    call_command("close_settlement_month", "--as-of", "2026-10-03T08:00", stdout=out)
    assert SettlementStatement.objects.get().month == SEPTEMBER
    assert "17.00" in out.getvalue()


def test_the_first_statement_sweeps_earlier_months_without_calling_them_late(clock, merchants):
    a, b, _c = merchants
    august = MemberFactory()
    clock.set(at("2026-08-10 10:00"))
    services.earn(member=august, points=100, partner=a, expires_at=at("2027-08-31 23:59"))
    clock.set(at("2026-08-15 10:00"))
    services.spend(member=august, points=100, partner=b)
    build_september(clock, merchants)

    statement = close_settlement_month(month=SEPTEMBER)

    assert statement.entries == 9
    assert statement.late_entries == 0
    assert lines_of(statement)[0] == ("A Hotel", "B Restaurant", 800, 100, 700, Decimal("7.00"))
