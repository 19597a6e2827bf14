"""The ledger over HTTP (api.md): a member's entries and points as payment (order refunds, which
also take back growth value, are served by campaigns/api.py)."""

from __future__ import annotations

from decimal import Decimal

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response

from loyalty_site.api.idempotency import IdempotentAPIView
from loyalty_site.api.openapi_params import idempotency_key_parameter
from members.selectors import member_by_external_id
from points.models import Entry
from points.selectors import member_ledger
from points.services import spend

# The kinds a partner sees; `release` (pending -> available) is an internal bookkeeping entry.
PUBLIC_KINDS = ["earn", "redeem", "expire", "reverse", "adjust", "spend", "transfer", "convert"]


class EntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=PUBLIC_KINDS)
    amount = serializers.IntegerField(help_text=_("Signed change of the member's points."))
    balance_after = serializers.IntegerField(help_text=_("Available points after this entry."))
    created_at = serializers.DateTimeField()
    reference = serializers.CharField(allow_blank=True)
    merchant = serializers.CharField(allow_null=True)
    memo = serializers.CharField(allow_blank=True)
    expires_at = serializers.DateTimeField(allow_null=True, required=False)
    available_at = serializers.DateTimeField(allow_null=True, required=False)


def entry_representation(entry: Entry) -> dict:
    body = {
        "id": entry.pk,
        "kind": entry.kind,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "created_at": serializers.DateTimeField().to_representation(entry.created_at),
        "reference": entry.reference,
        "merchant": entry.partner.name if entry.partner_id else None,
        "memo": entry.memo,
    }
    if entry.kind == "earn":
        body["expires_at"] = (
            serializers.DateTimeField().to_representation(entry.expires_at)
            if entry.expires_at
            else None
        )
        if entry.available_at and entry.pending_delta:
            body["available_at"] = serializers.DateTimeField().to_representation(entry.available_at)
    return body


class LedgerFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PUBLIC_KINDS, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class MemberLedgerApi(ListAPIView):
    required_scopes = ["members:read"]
    serializer_class = EntrySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=PUBLIC_KINDS),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
        ],
        summary=_("A member's ledger entries, newest first"),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = LedgerFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        member = member_by_external_id(external_id=self.kwargs["external_id"])
        return (
            member_ledger(member=member, **filters.validated_data)
            .exclude(kind="release")
            .select_related("partner")
        )

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([entry_representation(e) for e in page])


class SpendInputSerializer(serializers.Serializer):
    points = serializers.IntegerField(min_value=1)
    reference = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    memo = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class SpendOutputSerializer(serializers.Serializer):
    entry = EntrySerializer()
    cash_value = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()


class MemberSpendApi(IdempotentAPIView):
    required_scopes = ["points:spend"]

    @extend_schema(
        request=SpendInputSerializer,
        responses={201: SpendOutputSerializer},
        parameters=[idempotency_key_parameter()],
        summary=_("Pay with points (积分抵扣)"),
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request, external_id: str):
        serializer = SpendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = member_by_external_id(external_id=external_id)
        result = spend(member=member, partner=request.user.partner, **serializer.validated_data)
        result.entry.partner = request.user.partner
        return Response(
            {
                "entry": entry_representation(result.entry),
                "cash_value": f"{result.cash_value.quantize(Decimal('0.01'))}",
                "currency": result.currency,
            },
            status=status.HTTP_201_CREATED,
        )


class RefundInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0.01"), required=False
    )


class RefundOutputSerializer(serializers.Serializer):
    points_reversed = serializers.IntegerField()
    entries = EntrySerializer(many=True)


urlpatterns = [
    path("members/<str:external_id>/ledger", MemberLedgerApi.as_view(), name="api-member-ledger"),
    path(
        "members/<str:external_id>/points/spend",
        MemberSpendApi.as_view(),
        name="api-member-spend",
    ),
]
