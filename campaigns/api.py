"""POST /api/v1/events (api.md, "Events (earning)")."""

from __future__ import annotations

import re
from decimal import Decimal

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from campaigns.services import EventInput, record_event, refund_purchase
from loyalty_site.api.idempotency import IdempotentAPIView
from loyalty_site.api.openapi_params import idempotency_key_parameter
from points.api import (
    EntrySerializer,
    RefundInputSerializer,
    RefundOutputSerializer,
    entry_representation,
)

MONEY = {"max_digits": 14, "decimal_places": 2}


class ItemSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64, required=False, allow_blank=True)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=0, required=False, default=1)
    amount = serializers.DecimalField(**MONEY, min_value=Decimal("0"))
    excluded = serializers.BooleanField(required=False, default=False)


class EventInputSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=64)
    member = serializers.CharField(max_length=128)
    reference = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    occurred_at = serializers.DateTimeField(required=False)
    amount = serializers.DecimalField(**MONEY, min_value=Decimal("0"), required=False)
    currency = serializers.CharField(max_length=3, min_length=3, required=False)
    channel = serializers.ChoiceField(
        choices=["pos", "online", "app"], required=False, allow_blank=True, default=""
    )
    store = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    items = ItemSerializer(many=True, required=False, default=list)
    paid_with_points = serializers.DecimalField(
        **MONEY, min_value=Decimal("0"), required=False, default=Decimal("0")
    )
    attributes = serializers.DictField(required=False, default=dict)

    def validate(self, data):
        _check_purchase(data)
        return data


def _check_purchase(data: dict) -> None:
    if data["type"] == "purchase":
        errors = {}
        if data.get("amount") is None:
            errors["amount"] = [_("A purchase needs its amount.")]
        if not data.get("reference"):
            errors["reference"] = [_("A purchase needs its reference (the order id).")]
        if errors:
            raise serializers.ValidationError(errors)
        if data["paid_with_points"] > data["amount"]:
            raise serializers.ValidationError(
                {"paid_with_points": [_("Cannot be more than the amount.")]}
            )


# --- Fast acceptance of a well-formed event (docs/adr/0020) ---------------------------------
# POST /events is the hot path, and DRF's serializer costs about a fifth of its CPU (it deep-
# copies its declared fields for every request). `well_formed_event` accepts the common, plainly
# valid body with a few type checks and returns exactly what EventInputSerializer would; for
# anything else (a missing or null field, a number sent as a JSON number, whitespace to trim,
# occurred_at, any error) it returns None and the serializer decides, so every error a partner
# sees comes from the serializer. tests/campaigns/test_event_fast_path.py holds the two equal.
_REJECT = object()
_MONEY_TEXT = re.compile(r"\d{1,12}(?:\.\d{1,2})?")
_SURROGATES = re.compile("[\ud800-\udfff]")
_CENT = Decimal("0.01")
_CHANNELS = frozenset({"", "pos", "online", "app"})


def _text(value, max_length: int, *, blank: bool, exact_length: int | None = None):
    """A CharField's value (trimmed), or _REJECT for anything the serializer should judge."""
    if type(value) is not str:
        return _REJECT
    value = value.strip()
    if not value:
        return "" if blank else _REJECT
    if len(value) > max_length or (exact_length is not None and len(value) != exact_length):
        return _REJECT
    if "\x00" in value or (not value.isascii() and _SURROGATES.search(value)):
        return _REJECT
    return value


def _money(value):
    """A DecimalField(14, 2, min 0) value from a plain decimal string, or _REJECT."""
    if type(value) is not str or not _MONEY_TEXT.fullmatch(value):
        return _REJECT
    return Decimal(value).quantize(_CENT)


def _optional(raw: dict, name: str, default, parse, *args, **kwargs):
    if name not in raw:
        return default
    return parse(raw[name], *args, **kwargs)


def _item(raw) -> dict | object:
    if type(raw) is not dict:
        return _REJECT
    item = {}
    for name in ("sku", "category"):
        if name in raw:
            item[name] = _text(raw[name], 64, blank=True)
    quantity = raw.get("quantity", 1)
    item["quantity"] = quantity if type(quantity) is int and 0 <= quantity < 10**18 else _REJECT
    item["amount"] = _money(raw["amount"]) if "amount" in raw else _REJECT
    excluded = raw.get("excluded", False)
    item["excluded"] = excluded if type(excluded) is bool else _REJECT
    return _REJECT if _REJECT in item.values() else item


def well_formed_event(raw) -> dict | None:
    """EventInputSerializer's validated data for a plainly valid body, else None (see above)."""
    if type(raw) is not dict or "occurred_at" in raw:
        return None
    items = raw.get("items", [])
    data = {
        "type": _text(raw.get("type"), 64, blank=False),
        "member": _text(raw.get("member"), 128, blank=False),
        "reference": _optional(raw, "reference", "", _text, 128, blank=True),
        "channel": _optional(raw, "channel", "", _channel),
        "store": _optional(raw, "store", "", _text, 64, blank=True),
        "items": [_item(item) for item in items] if type(items) is list else _REJECT,
        "paid_with_points": _optional(raw, "paid_with_points", Decimal("0"), _money),
        "attributes": _optional(raw, "attributes", {}, _attributes),
    }
    if "amount" in raw:
        data["amount"] = _money(raw["amount"])
    if "currency" in raw:
        data["currency"] = _text(raw["currency"], 3, blank=False, exact_length=3)
    if _REJECT in data.values() or _REJECT in data["items"]:
        return None
    try:
        _check_purchase(data)
    except serializers.ValidationError:
        return None
    return data


def _channel(value):
    return value if type(value) is str and value in _CHANNELS else _REJECT


def _attributes(value):
    return dict(value) if type(value) is dict else _REJECT


class RuleAppliedSerializer(serializers.Serializer):
    rule = serializers.CharField()
    points = serializers.IntegerField()


class EventOutputSerializer(serializers.Serializer):
    event_id = serializers.IntegerField(allow_null=True)
    points_awarded = serializers.IntegerField(
        help_text=_("Points the event earned, pending ones included.")
    )
    points_pending = serializers.IntegerField(
        help_text=_("The part of points_awarded that becomes available after the return window.")
    )
    entries = EntrySerializer(many=True)
    rules_applied = RuleAppliedSerializer(many=True)
    held_for_review = serializers.BooleanField()
    dry_run = serializers.BooleanField(required=False)


def _event_input(validated: dict, raw: dict) -> EventInput:
    return EventInput(
        type=validated["type"],
        member=validated["member"],
        reference=validated["reference"],
        occurred_at=validated.get("occurred_at"),
        amount=validated.get("amount"),
        currency=validated.get("currency", ""),
        channel=validated["channel"],
        store=validated["store"],
        items=tuple(dict(item) for item in validated["items"]),
        paid_with_points=validated["paid_with_points"],
        attributes=validated["attributes"],
        payload=raw,
    )


class EventCreateApi(IdempotentAPIView):
    required_scopes = ["events:write"]

    @extend_schema(
        request=EventInputSerializer,
        responses={201: EventOutputSerializer},
        parameters=[
            idempotency_key_parameter(required=False),
            OpenApiParameter(
                "dry_run",
                OpenApiTypes.BOOL,
                description=_("Evaluate only: answer what would be awarded, write nothing."),
            ),
        ],
        summary=_("Post an event (a purchase or a configured event type) to earn points"),
    )
    def post(self, request, *args, **kwargs):
        if request.query_params.get("dry_run", "").lower() in {"1", "true", "yes"}:
            # A dry run writes nothing, so it needs no Idempotency-Key and stores no response.
            return self._evaluate(request, dry_run=True)
        return super().post(request, *args, **kwargs)

    def perform_post(self, request, *args, **kwargs):
        return self._evaluate(request, dry_run=False)

    def _evaluate(self, request, *, dry_run: bool) -> Response:
        validated = well_formed_event(request.data)
        if validated is None:
            serializer = EventInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            validated = serializer.validated_data
        outcome = record_event(
            partner=request.user.partner,
            data=_event_input(validated, request.data),
            dry_run=dry_run,
        )
        body = {
            "event_id": outcome.event.pk if outcome.event else None,
            "points_awarded": outcome.points_awarded,
            "points_pending": outcome.points_pending,
            "entries": [entry_representation(e) for e in outcome.entries],
            # The event's member's lines; an inviter's referral reward is in the stored event.
            "rules_applied": [
                {"rule": a.rule, "points": a.points}
                for a in outcome.rules_applied
                if a.member is None
            ],
            "held_for_review": outcome.held_for_review,
        }
        if dry_run:
            body["dry_run"] = True
        return Response(body, status=status.HTTP_201_CREATED)


class OrderRefundApi(IdempotentAPIView):
    """Refund an order: points (the ledger) and growth value (members) in one transaction."""

    required_scopes = ["events:write"]

    @extend_schema(
        request=RefundInputSerializer,
        responses={201: RefundOutputSerializer},
        parameters=[idempotency_key_parameter()],
        summary=_("Refund an order: reverse the points it earned, return the points it used"),
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request, reference: str):
        serializer = RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = refund_purchase(
            partner=request.user.partner,
            reference=reference,
            amount=serializer.validated_data.get("amount"),
        )
        return Response(
            {
                "points_reversed": result.points_reversed,
                "entries": [entry_representation(e) for e in result.entries],
            },
            status=status.HTTP_201_CREATED,
        )


urlpatterns = [
    path("events", EventCreateApi.as_view(), name="api-events"),
    path("orders/<str:reference>/refunds", OrderRefundApi.as_view(), name="api-order-refunds"),
]
