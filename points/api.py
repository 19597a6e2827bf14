"""The ledger over HTTP (api.md): a member's entries and points as payment (order refunds, which
also take back growth value, are served by campaigns/api.py)."""

from __future__ import annotations

from decimal import Decimal

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response

from loyalty_site.api.errors import PROBLEM_CONTENT_TYPE
from loyalty_site.api.idempotency import IdempotentAPIView
from loyalty_site.api.openapi_params import idempotency_key_parameter
from loyalty_site.api.schema import problem
from members.exceptions import MemberNotFound
from members.models import Member
from members.selectors import member_by_external_id
from points.exceptions import InvalidTransfer
from points.models import Conversion, Entry
from points.selectors import member_ledger
from points.services import convert_points, spend, transfer_points

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


# --- Transfers and exchange (api.md "Transfers and exchange"; docs/adr/0016) ------------------
class TransferInputSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=64, help_text=_("External id of the receiving member."))
    points = serializers.IntegerField(min_value=1)
    reference = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Your id of this transfer; one transfer per reference."),
    )


class TransferEntrySerializer(EntrySerializer):
    member = serializers.CharField(help_text=_("External id of the member this entry is for."))


class TransferOutputSerializer(serializers.Serializer):
    entries = TransferEntrySerializer(
        many=True,
        help_text=_("The giving member's entry (negative), then the receiving member's."),
    )


def _credit_or_debit_representation(entry: Entry, partner) -> dict:
    """An entry of a transfer or conversion; one that credits points made a new lot, so it
    says when that lot expires, as an earn does."""
    entry.partner = partner
    body = entry_representation(entry)
    if entry.amount > 0:
        body["expires_at"] = (
            serializers.DateTimeField().to_representation(entry.expires_at)
            if entry.expires_at
            else None
        )
    return body


def _transfer_entry(entry: Entry, member: Member, partner) -> dict:
    return {**_credit_or_debit_representation(entry, partner), "member": member.external_id}


class MemberTransferApi(IdempotentAPIView):
    required_scopes = ["points:spend"]

    @extend_schema(
        operation_id="members_points_transfer",
        request=TransferInputSerializer,
        responses={
            201: OpenApiResponse(
                TransferOutputSerializer, description=_("Transferred: one entry on each side.")
            ),
            (422, PROBLEM_CONTENT_TYPE): problem(
                _(
                    "`insufficient_points`, `member_frozen` (either member), `limit_exceeded` "
                    "(a daily limit of the giver or the receiver), or `validation_error` (unknown "
                    "or same receiving member, a reference already used); nothing was moved."
                )
            ),
        },
        parameters=[idempotency_key_parameter()],
        summary=_("Give points to another member"),
        description=_(
            "Takes the points from the member in the path (soonest-expiring first) and credits "
            "them to `to` as a new lot, in one transaction, within the daily limits set in "
            "admin (calendar days in the programme's time zone)."
        ),
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request, external_id: str):
        serializer = TransferInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        sender = member_by_external_id(external_id=external_id)
        try:
            recipient = member_by_external_id(external_id=data["to"])
        except MemberNotFound:
            raise InvalidTransfer(
                _("No member with the external id given in `to`."), to=data["to"]
            ) from None
        partner = request.user.partner
        result = transfer_points(
            sender=sender,
            recipient=recipient,
            points=data["points"],
            partner=partner,
            reference=data["reference"],
        )
        return Response(
            {
                "entries": [
                    _transfer_entry(result.out_entry, sender, partner),
                    _transfer_entry(result.in_entry, recipient, partner),
                ]
            },
            status=status.HTTP_201_CREATED,
        )


class ConvertInputSerializer(serializers.Serializer):
    programme = serializers.CharField(
        max_length=64, help_text=_("Code of the exchange partner programme, e.g. airline-x.")
    )
    direction = serializers.ChoiceField(
        choices=Conversion.Direction.values,
        help_text=_("`out`: our points to partner units; `in`: partner units to our points."),
    )
    amount = serializers.IntegerField(
        min_value=1, help_text=_("`out`: our points offered; `in`: partner units received.")
    )
    reference = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Your id of this conversion; one conversion per reference."),
    )


class ConvertOutputSerializer(serializers.Serializer):
    entry = EntrySerializer()
    rate = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        coerce_to_string=True,
        help_text=_("Our points per ONE partner unit: base rate x adjustment factor."),
    )
    points = serializers.IntegerField(
        help_text=_(
            "Our points moved: `out` takes only what the whole units cost (<= amount); "
            "`in` credits floor(amount x rate)."
        )
    )
    partner_units = serializers.IntegerField(
        help_text=_("Partner units: `out` gives floor(amount / rate); `in` is the amount.")
    )


class MemberConvertApi(IdempotentAPIView):
    required_scopes = ["points:spend"]

    @extend_schema(
        operation_id="members_points_convert",
        request=ConvertInputSerializer,
        responses={
            201: OpenApiResponse(ConvertOutputSerializer, description=_("Converted.")),
            (422, PROBLEM_CONTENT_TYPE): problem(
                _(
                    "`insufficient_points`, `limit_exceeded` (the member's daily limit with "
                    "this programme and direction), `member_frozen`, or `validation_error` "
                    "(unknown or inactive programme, an amount worth less than one point or "
                    "unit, a reference already used); nothing was moved."
                )
            ),
        },
        parameters=[idempotency_key_parameter()],
        summary=_("Exchange points with another programme"),
        description=_(
            "Rounding never favours the member: `out` buys whole partner units and takes only "
            "the points they cost (rounded up); `in` credits whole points (rounded down)."
        ),
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request, external_id: str):
        serializer = ConvertInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        member = member_by_external_id(external_id=external_id)
        partner = request.user.partner
        result = convert_points(
            member=member,
            programme_code=data["programme"],
            direction=data["direction"],
            amount=data["amount"],
            partner=partner,
            reference=data["reference"],
        )
        return Response(
            {
                "entry": _credit_or_debit_representation(result.entry, partner),
                "rate": f"{result.rate.normalize():f}",
                "points": result.points,
                "partner_units": result.partner_units,
            },
            status=status.HTTP_201_CREATED,
        )


urlpatterns = [
    path("members/<str:external_id>/ledger", MemberLedgerApi.as_view(), name="api-member-ledger"),
    path(
        "members/<str:external_id>/points/spend",
        MemberSpendApi.as_view(),
        name="api-member-spend",
    ),
    path(
        "members/<str:external_id>/points/transfer",
        MemberTransferApi.as_view(),
        name="api-member-transfer",
    ),
    path(
        "members/<str:external_id>/points/convert",
        MemberConvertApi.as_view(),
        name="api-member-convert",
    ),
]
