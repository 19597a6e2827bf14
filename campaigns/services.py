"""Events in, points out: the one path every event takes, real or dry run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns import rules
from campaigns.exceptions import CurrencyMismatch, UnknownEventType
from campaigns.models import Event
from members.exceptions import MemberFrozen
from members.selectors import member_by_external_id
from members.services import growth_for_purchase, growth_reverse_for_order
from points.models import Order, Partner
from points.services import (
    EarnResult,
    RefundResult,
    programme_settings,
    purchase_available_at,
    record_purchase,
    refund_order,
)

SUPPORTED_TYPES = frozenset({"purchase"})


@dataclass
class EventOutcome:
    event: Event | None
    points_awarded: int
    points_pending: int
    rules_applied: list[rules.RuleAward]
    entries: list = field(default_factory=list)
    held_for_review: bool = False


@dataclass(frozen=True)
class EventInput:
    type: str
    member: str
    reference: str = ""
    occurred_at: datetime | None = None
    amount: Decimal | None = None
    currency: str = ""
    channel: str = ""
    store: str = ""
    items: tuple[dict, ...] = ()
    paid_with_points: Decimal = Decimal("0")
    attributes: dict = field(default_factory=dict)
    payload: dict = field(default_factory=dict)


def _facts(data: EventInput) -> rules.EventFacts:
    return rules.EventFacts(
        type=data.type,
        amount=data.amount or Decimal("0"),
        paid_with_points=data.paid_with_points or Decimal("0"),
        items=data.items,
        channel=data.channel,
        store=data.store,
    )


def record_event(*, partner: Partner, data: EventInput, dry_run: bool = False) -> EventOutcome:
    """Evaluate an event against the programme's rules and, unless `dry_run`, grant the points.

    A dry run takes exactly the same path up to the first write and then stops, so its answer
    is what the real event would get at this moment.
    """
    if data.type not in SUPPORTED_TYPES:
        raise UnknownEventType(type=data.type)
    programme = programme_settings()
    if data.currency and data.currency != programme.currency:
        raise CurrencyMismatch(
            _("This programme accounts in %(currency)s.") % {"currency": programme.currency}
        )
    member = member_by_external_id(external_id=data.member)
    if member.is_frozen:
        raise MemberFrozen(member=member.external_id)
    awards = [
        a
        for a in rules.evaluate(_facts(data), points_per_unit=programme.purchase_points_per_unit)
        if a.points > 0
    ]
    points = sum(award.points for award in awards)
    now = timezone.now()
    available_at = purchase_available_at(
        occurred_at=data.occurred_at or now, programme=programme, now=now
    )
    pending = points if available_at is not None else 0
    if dry_run:
        return EventOutcome(
            event=None, points_awarded=points, points_pending=pending, rules_applied=awards
        )
    return _grant(
        partner=partner,
        member=member,
        data=data,
        awards=awards,
        points=points,
        pending=pending,
        available_at=available_at,
        programme=programme,
    )


@transaction.atomic(savepoint=False)
def _grant(*, partner, member, data, awards, points, pending, available_at, programme):
    result = record_purchase(
        member=member,
        partner=partner,
        reference=data.reference,
        amount=data.amount,
        currency=data.currency or programme.currency,
        paid_with_points=data.paid_with_points or Decimal("0"),
        points=points,
        occurred_at=data.occurred_at,
        available_at=available_at,
        source_type="rule",
    )
    earn: EarnResult | None = result.earn
    if earn is not None:
        earn.entry.partner = partner  # the response names the merchant: no query for it
    # Growth value (members) in the same transaction: a threshold reached upgrades at once.
    growth_for_purchase(
        member=member,
        spent=_facts(data).earning_amount,
        order_id=result.order.pk,
        reference=data.reference,
        occurred_at=data.occurred_at,
    )
    event = Event.objects.create(
        partner=partner,
        type=data.type,
        member=member,
        reference=data.reference,
        occurred_at=data.occurred_at or timezone.now(),
        payload=data.payload,
        points_awarded=points,
        points_pending=pending,
        outcome=Event.Outcome.AWARDED if points else Event.Outcome.NO_POINTS,
        rules_applied=[{"rule": a.rule, "points": a.points} for a in awards],
    )
    return EventOutcome(
        event=event,
        points_awarded=points,
        points_pending=pending,
        rules_applied=awards,
        entries=[earn.entry] if earn else [],
    )


@transaction.atomic(savepoint=False)
def refund_purchase(
    *, partner: Partner, reference: str, amount: Decimal | None = None
) -> RefundResult:
    """Refund (part of) an order: the ledger reverses its points (points.services.refund_order)
    and the member's growth value is taken back in the same proportion, in one transaction.

    Orchestrated here because points knows nothing of growth value (docs/adr/0007).
    """
    result = refund_order(partner=partner, reference=reference, amount=amount)
    order = Order.objects.get(partner_id=partner.pk, reference=reference)
    growth_reverse_for_order(order=order)
    return result


def erase_event_personal_data(*, member) -> None:
    """Personal data erasure step (members.personal_data): stored event payloads keep their
    amounts and items for audit and replay, but lose the member's old id and the attributes
    (device, IP) a partner sent."""
    Event.objects.filter(member=member).update(
        payload=RawSQL(
            "(payload - 'attributes') || jsonb_build_object('member', %s::text)",
            (member.external_id,),
        )
    )
