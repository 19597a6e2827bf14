"""POST /api/v1/events (api.md, "Events (earning)")."""

from __future__ import annotations

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
        return data


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
        serializer = EventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = record_event(
            partner=request.user.partner,
            data=_event_input(serializer.validated_data, request.data),
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
