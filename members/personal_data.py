"""A member's data as JSON (PIPL access request): profile, programme, points and redemptions.

A read across apps for one member, used by the admin action and `export_member_data`; it
changes nothing.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from members.models import GrowthEntry, InboxMessage, Member, RfmScore, TierChange
from members.selectors import member_segments

FORMAT_VERSION = 1

# Apps above members that keep personal data of their own (shipping addresses, logins, raw
# event payloads) register a step here in their AppConfig.ready(); erase_member runs every step
# in its transaction, so members never imports them and nothing is left behind.
_erasure_steps: list = []


def register_erasure_step(step):
    """`step(*, member)` clears what its app holds about the member; returns the step."""
    if step not in _erasure_steps:
        _erasure_steps.append(step)
    return step


def run_erasure_steps(*, member: Member) -> None:
    for step in _erasure_steps:
        step(member=member)


def _value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rows(queryset, fields: list[str]) -> list[dict]:
    return [{field: _value(row[field]) for field in fields} for row in queryset.values(*fields)]


def member_data_export(*, member: Member) -> dict:
    """Everything the programme holds about the member, as JSON-ready data."""
    from points.models import Account, Entry, Order

    profile_fields = [
        "external_id",
        "name",
        "phone",
        "email",
        "birthday",
        "language",
        "marketing_consent",
        "status",
        "referral_code",
        "joined_at",
        "updated_at",
    ]
    data: dict = {
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "member": {field: _value(getattr(member, field)) for field in profile_fields},
        "referred_by": member.referred_by.external_id if member.referred_by_id else None,
        "tier": {
            "code": member.tier.code,
            "name": member.tier.name,
            "since": _value(member.tier_since),
            "period_ends_at": _value(member.tier_period_ends_at),
        },
        "growth": member.growth,
        "growth_entries": _rows(
            GrowthEntry.objects.filter(member_id=member.pk).order_by("id"),
            ["kind", "amount", "reference", "memo", "counts_at", "created_at"],
        ),
        "tier_history": _rows(
            TierChange.objects.filter(member_id=member.pk).order_by("changed_at", "id"),
            ["from_tier__code", "to_tier__code", "reason", "growth", "changed_at"],
        ),
        "status_history": _rows(
            member.status_changes.order_by("created_at", "id"),
            ["from_status", "to_status", "reason", "created_at"],
        ),
        "segments": [segment.code for segment in member_segments(member=member)],
        "rfm": _rows(
            RfmScore.objects.filter(member_id=member.pk),
            [
                "as_of",
                "last_purchase_at",
                "frequency",
                "monetary",
                "recency_score",
                "frequency_score",
                "monetary_score",
            ],
        ),
    }
    data["inbox"] = _rows(
        InboxMessage.objects.filter(member_id=member.pk).order_by("created_at", "id"),
        ["title", "body", "created_at", "read_at"],
    )
    account = Account.objects.filter(member_id=member.pk).first()
    data["points"] = {
        "available": account.available if account else 0,
        "pending": account.pending if account else 0,
        "lifetime_earned": account.lifetime_earned if account else 0,
        "lifetime_spent": account.lifetime_spent if account else 0,
        "lifetime_expired": account.lifetime_expired if account else 0,
    }
    data["ledger"] = _rows(
        Entry.objects.filter(account__member_id=member.pk).order_by("id"),
        [
            "id",
            "kind",
            "amount",
            "balance_after",
            "reference",
            "partner__name",
            "memo",
            "expires_at",
            "created_at",
        ],
    )
    data["orders"] = _rows(
        Order.objects.filter(account__member_id=member.pk).order_by("id"),
        [
            "reference",
            "partner__name",
            "amount",
            "currency",
            "paid_with_points",
            "refunded_amount",
            "points_earned",
            "points_reversed",
            "created_at",
        ],
    )
    if apps.is_installed("rewards_mall"):
        redemption = apps.get_model("rewards_mall", "Redemption")
        data["redemptions"] = _rows(
            redemption.objects.filter(member_id=member.pk).order_by("id"),
            [
                "id",
                "reward__code",
                "status",
                "quantity",
                "points_spent",
                "cash_due",
                "shipping_address",
                "placed_at",
            ],
        )
    return data


def member_data_json(*, member: Member) -> str:
    return json.dumps(
        member_data_export(member=member), cls=DjangoJSONEncoder, ensure_ascii=False, indent=2
    )
