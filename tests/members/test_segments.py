"""RFM scores in quintiles and the named segments, on populations whose answers are known."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from members.models import Member, RfmScore, Segment, SegmentMembership, SegmentSize
from members.selectors import member_segments, segment_members
from members.services import compute_segments, member_set_status
from members.tasks import compute_segments as compute_segments_task
from points.models import Order
from points.services import account_for_member
from tests.factories import MemberFactory, PartnerFactory

pytestmark = pytest.mark.django_db


def buy(member: Member, amount: str, days_ago: float, *, now, refunded: str = "0") -> Order:
    partner = PartnerFactory(name="POS")
    account = account_for_member(member=member)
    count = Order.objects.count()
    return Order.objects.create(
        partner=partner,
        reference=f"o-{count + 1}",
        account=account,
        amount=Decimal(amount),
        refunded_amount=Decimal(refunded),
        created_at=now - timedelta(days=days_ago),
    )


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def population(now):
    """Member k (1..10): last purchase k days ago, k purchases in the window, (11 - k) x 1,000
    spent. So R = M = ceil((11 - k) / 2) and F = ceil(k / 2)."""
    members = {}
    for k in range(1, 11):
        member = MemberFactory(external_id=f"k-{k:02d}")
        buy(member, f"{(11 - k) * 1000 - (k - 1)}.00", days_ago=k, now=now)
        for extra in range(k - 1):
            buy(member, "1.00", days_ago=k + 10 + extra, now=now)
        members[k] = member
    return members


def scores(member: Member) -> tuple[int, int, int]:
    rfm = RfmScore.objects.get(member=member)
    return rfm.recency_score, rfm.frequency_score, rfm.monetary_score


def codes(member: Member) -> set[str]:
    return {segment.code for segment in member_segments(member=member)}


def test_rfm_scores_are_quintiles_of_recency_frequency_and_money(population, now):
    run = compute_segments(as_of=now)

    assert run.members_scored == 10
    for k, member in population.items():
        r_and_m = -(-(11 - k) // 2)
        assert scores(member) == (r_and_m, -(-k // 2), r_and_m), k
    first = RfmScore.objects.get(member=population[1])
    assert (first.frequency, first.monetary) == (1, Decimal("10000.00"))
    last = RfmScore.objects.get(member=population[10])
    assert (last.frequency, last.monetary) == (10, Decimal("1000.00"))


def test_members_land_in_the_segments_whose_ranges_hold_their_scores(population, now):
    compute_segments(as_of=now)

    assert codes(population[1]) == {"potential", "new"}  # R5 F1 M5
    assert codes(population[3]) == {"potential"}  # R4 F2 M4
    assert codes(population[5]) == set()  # R3 F3 M3
    assert codes(population[10]) == {"dormant"}  # R1 F5 M1
    day = timezone.localdate(now)
    sizes = dict(SegmentSize.objects.filter(as_of=day).values_list("segment__code", "members"))
    assert sizes["potential"] == 4  # members 1-4
    assert sizes["dormant"] == 2
    assert sizes["high_value"] == 0
    potential = Segment.objects.get(code="potential")
    assert set(segment_members(segment=potential).values_list("external_id", flat=True)) == {
        "k-01",
        "k-02",
        "k-03",
        "k-04",
    }


def test_no_purchase_scores_zero_and_old_purchases_count_for_recency_only(now):
    never = MemberFactory(external_id="never")
    old = MemberFactory(external_id="old")
    recent = MemberFactory(external_id="recent")
    buy(old, "5000.00", days_ago=400, now=now)
    buy(recent, "10.00", days_ago=1, now=now)

    compute_segments(as_of=now)

    assert scores(never) == (0, 0, 0)
    assert codes(never) == {"no_purchase"}
    old_rfm = RfmScore.objects.get(member=old)
    assert (old_rfm.frequency, old_rfm.monetary) == (0, Decimal("0"))
    assert old_rfm.recency_score < RfmScore.objects.get(member=recent).recency_score


def test_refunds_lower_the_money_and_a_fully_refunded_order_is_no_purchase(now):
    member = MemberFactory(external_id="refunder")
    buy(member, "300.00", days_ago=2, now=now, refunded="100.00")
    buy(member, "50.00", days_ago=1, now=now, refunded="50.00")

    compute_segments(as_of=now)

    rfm = RfmScore.objects.get(member=member)
    assert (rfm.frequency, rfm.monetary) == (1, Decimal("200.00"))
    assert rfm.last_purchase_at == Order.objects.get(amount=Decimal("300.00")).created_at


def test_closed_members_are_not_scored(now):
    member = MemberFactory(external_id="gone")
    buy(member, "10.00", days_ago=1, now=now)
    member_set_status(member=member, status="closed", operator=None, reason="asked to leave")

    run = compute_segments(as_of=now)

    assert run.members_scored == 0
    assert not SegmentMembership.objects.filter(member=member).exists()


def test_a_rerun_for_the_same_day_replaces_it_and_earlier_days_stay(population, now):
    compute_segments(as_of=now - timedelta(days=1))
    compute_segments(as_of=now)
    first_count = SegmentMembership.objects.filter(as_of=timezone.localdate(now)).count()

    call_command("compute_segments", "--as-of", now.isoformat())
    result = compute_segments_task(as_of=now.isoformat())

    assert result["members"] == 10
    today = SegmentMembership.objects.filter(as_of=timezone.localdate(now))
    assert today.count() == first_count
    days = set(SegmentSize.objects.values_list("as_of", flat=True))
    assert days == {timezone.localdate(now - timedelta(days=1)), timezone.localdate(now)}


def test_a_catch_up_run_for_an_earlier_day_keeps_the_latest_scores(population, now):
    compute_segments(as_of=now)
    compute_segments(as_of=now - timedelta(days=30))

    assert RfmScore.objects.filter(as_of=timezone.localdate(now)).count() == 10


def test_the_segment_admin_draws_the_size_of_each_segment_over_time(admin_client, population, now):
    for days_ago in (2, 1, 0):
        compute_segments(as_of=now - timedelta(days=days_ago))

    response = admin_client.get(reverse("admin:members_segment_changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page
    assert page.count("<polyline") == Segment.objects.filter(is_active=True).count()
    assert timezone.localdate(now).isoformat() in page
