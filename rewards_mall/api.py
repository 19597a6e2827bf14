"""Rewards and redemptions over HTTP (api.md, "Rewards and redemptions"), and the mall link
(api.md, "Members": POST /members/{external_id}/mall-link).

A redemption is visible to, and can be cancelled by, the partner that placed it only: another
partner's GET or cancel answers 404 `not_found`, as if it did not exist.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty_site.api.errors import PROBLEM_CONTENT_TYPE
from loyalty_site.api.idempotency import IdempotentAPIView
from loyalty_site.api.openapi_params import idempotency_key_parameter
from loyalty_site.api.pagination import CursorPagination
from loyalty_site.api.schema import problem
from loyalty_site.audit import audit_context, partner_metadata, record_api_call
from members.models import Tier
from members.selectors import member_by_external_id
from points.models import ProgrammeSettings
from points.selectors import member_points_summary
from rewards_mall.models import Redemption, Reward
from rewards_mall.selectors import (
    Offer,
    catalogue,
    member_price,
    partner_redemption,
    reward_by_code,
)
from rewards_mall.services import (
    MAX_QUANTITY,
    cancel_redemption,
    create_mall_link,
    redeem,
    redemption_coupon_codes,
    reward_upsert,
)

MONEY = {"max_digits": 12, "decimal_places": 2}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.01'))}"


# --- Rewards ---------------------------------------------------------------------------------
class RewardOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField(help_text=_("In the language of Accept-Language."))
    description = serializers.CharField(allow_blank=True)
    category = serializers.CharField(allow_null=True, help_text=_("The category's code."))
    kind = serializers.ChoiceField(choices=Reward.Kind.choices)
    points_price = serializers.IntegerField(
        help_text=_("With affordable_for: that member's price (tier pricing).")
    )
    cash_price = serializers.DecimalField(**MONEY, allow_null=True)
    currency = serializers.CharField()
    stock_left = serializers.IntegerField()
    per_member_limit = serializers.IntegerField(allow_null=True)
    available_from = serializers.DateTimeField(allow_null=True)
    available_until = serializers.DateTimeField(allow_null=True)
    tiers = serializers.ListField(
        child=serializers.CharField(), help_text=_("Tier codes allowed; empty = every tier.")
    )
    featured = serializers.BooleanField()
    active = serializers.BooleanField()


def reward_representation(offer: Offer, currency: str) -> dict:
    reward = offer.reward
    return {
        "code": reward.code,
        "name": reward.name,
        "description": reward.description,
        "category": reward.category.code if reward.category_id else None,
        "kind": reward.kind,
        "points_price": offer.price.points,
        "cash_price": _money(offer.price.cash),
        "currency": currency,
        "stock_left": reward.stock,
        "per_member_limit": reward.per_member_limit,
        "available_from": _datetime(reward.available_from),
        "available_until": _datetime(reward.available_until),
        "tiers": sorted(tier.code for tier in reward.tiers.all()),
        "featured": reward.is_featured,
        "active": reward.is_active,
    }


def _datetime(value):
    return None if value is None else serializers.DateTimeField().to_representation(value)


class RewardListFilterSerializer(serializers.Serializer):
    category = serializers.CharField(required=False, allow_blank=True)
    affordable_for = serializers.CharField(required=False, allow_blank=True)


class RewardPagination(CursorPagination):
    ordering = "id"


class RewardListApi(ListAPIView):
    """The catalogue; with `affordable_for`, as that member sees it."""

    required_scopes = ["rewards:read"]
    queryset = Reward.objects.none()  # the schema's model; list() builds the real page
    pagination_class = RewardPagination
    serializer_class = RewardOutputSerializer

    @extend_schema(
        operation_id="rewards_list",
        summary=_("List rewards"),
        description=_(
            "Active rewards. With `affordable_for` (a member's external id): prices are that "
            "member's, and only the rewards the member may redeem now (window, tier) and can "
            "afford with their available points are listed."
        ),
        tags=["rewards"],
        parameters=[
            OpenApiParameter("category", OpenApiTypes.STR, description=_("A category code.")),
            OpenApiParameter(
                "affordable_for", OpenApiTypes.STR, description=_("A member's external id.")
            ),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        filters = RewardListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        external_id = filters.validated_data.get("affordable_for")
        member = member_by_external_id(external_id=external_id) if external_id else None
        offers = catalogue(
            member=member,
            category=filters.validated_data.get("category") or None,
            affordable_points=(
                member_points_summary(member=member)["available"] if member else None
            ),
            only_available=member is not None,
        )
        if member is None:
            offers = [offer for offer in offers if offer.reward.is_active]
        by_id = {offer.reward.pk: offer for offer in offers}
        page = self.paginate_queryset(Reward.objects.filter(pk__in=list(by_id)).only("id"))
        currency = ProgrammeSettings.get().currency
        return self.get_paginated_response(
            [reward_representation(by_id[reward.pk], currency) for reward in page]
        )


class RewardInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    name_en = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    category = serializers.SlugField(
        max_length=64, required=False, allow_null=True, allow_blank=True
    )
    kind = serializers.ChoiceField(choices=Reward.Kind.choices, required=False)
    points_price = serializers.IntegerField(min_value=0, required=False)
    cash_price = serializers.DecimalField(
        **MONEY, min_value=Decimal("0"), required=False, allow_null=True
    )
    stock = serializers.IntegerField(
        min_value=0,
        required=False,
        help_text=_("Units available to redeem from now on; omit to leave it unchanged."),
    )
    per_member_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    available_from = serializers.DateTimeField(required=False, allow_null=True)
    available_until = serializers.DateTimeField(required=False, allow_null=True)
    tiers = serializers.SlugRelatedField(
        many=True, slug_field="code", queryset=Tier.objects.all(), required=False
    )
    active = serializers.BooleanField(required=False)


class RewardDetailApi(APIView):
    required_scopes = {"PUT": ["rewards:write"]}

    @extend_schema(
        operation_id="rewards_upsert",
        summary=_("Create or update a reward"),
        tags=["rewards"],
        request=RewardInputSerializer,
        responses={
            200: OpenApiResponse(RewardOutputSerializer, description=_("Updated.")),
            201: OpenApiResponse(RewardOutputSerializer, description=_("Created.")),
            (422, PROBLEM_CONTENT_TYPE): problem(
                _("`validation_error`: e.g. setting a coupon reward's stock.")
            ),
        },
    )
    def put(self, request, code: str):
        if len(code) > Reward._meta.get_field("code").max_length:
            raise serializers.ValidationError({"code": [_("At most 64 characters.")]})
        serializer = RewardInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The catalogue change is attributed to the partner in the audit trail; a stock change
        # also leaves an ApiCallRecord, in the same transaction.
        with transaction.atomic(), audit_context(**partner_metadata(request)):
            reward, created = reward_upsert(
                code=code, partner=request.user.partner, **serializer.validated_data
            )
            if "stock" in serializer.validated_data:
                record_api_call(request, status_code=201 if created else 200)
        offer = catalogue_offer(reward.code)
        return Response(
            reward_representation(offer, ProgrammeSettings.get().currency),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def catalogue_offer(code: str) -> Offer:
    reward = reward_by_code(code=code)
    return Offer(reward=reward, price=member_price(reward=reward, member=None), unavailable=None)


# --- Redemptions ---------------------------------------------------------------------------
class RedemptionInputSerializer(serializers.Serializer):
    member = serializers.CharField(max_length=128, help_text=_("The member's external id."))
    reward = serializers.CharField(max_length=64, help_text=_("The reward's code."))
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    shipping_address = serializers.DictField(
        required=False,
        allow_null=True,
        help_text=_("Required for physical rewards: name, phone, address lines, city, ..."),
    )


class RedemptionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Redemption.Status.choices)
    points_spent = serializers.IntegerField()
    cash_due = serializers.DecimalField(**MONEY)
    currency = serializers.CharField()
    coupon_codes = serializers.ListField(child=serializers.CharField())
    member = serializers.CharField()
    reward = serializers.CharField()
    quantity = serializers.IntegerField()
    shipping_address = serializers.DictField()
    tracking_number = serializers.CharField(allow_blank=True)
    carrier = serializers.CharField(allow_blank=True)
    placed_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def redemption_representation(redemption: Redemption) -> dict:
    return {
        "id": redemption.pk,
        "status": redemption.status,
        "points_spent": redemption.points_spent,
        "cash_due": _money(redemption.cash_due),
        "currency": redemption.currency,
        "coupon_codes": redemption_coupon_codes(redemption),
        "member": redemption.member.external_id,
        "reward": redemption.reward.code,
        "quantity": redemption.quantity,
        "shipping_address": redemption.shipping_address,
        "tracking_number": redemption.tracking_number,
        "carrier": redemption.carrier,
        "placed_at": _datetime(redemption.placed_at),
        "updated_at": _datetime(redemption.updated_at),
    }


REDEMPTION_ERRORS = {
    (422, PROBLEM_CONTENT_TYPE): problem(
        _(
            "`out_of_stock`, `insufficient_points`, `limit_exceeded`, `reward_unavailable`, "
            "`member_frozen` or `validation_error`; nothing was taken."
        )
    ),
}


class RedemptionCreateApi(IdempotentAPIView):
    required_scopes = ["redemptions:write"]

    @extend_schema(
        operation_id="redemptions_create",
        summary=_("Redeem a reward for a member"),
        tags=["redemptions"],
        request=RedemptionInputSerializer,
        parameters=[idempotency_key_parameter()],
        responses={
            201: OpenApiResponse(RedemptionOutputSerializer, description=_("Placed.")),
            **REDEMPTION_ERRORS,
        },
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request):
        serializer = RedemptionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        member = member_by_external_id(external_id=data["member"])
        redemption = redeem(
            member=member,
            reward_code=data["reward"],
            quantity=data["quantity"],
            shipping_address=data.get("shipping_address"),
            partner=request.user.partner,
            channel=Redemption.Channel.API,
        )
        return Response(redemption_representation(redemption), status=status.HTTP_201_CREATED)


REDEMPTION_ID = OpenApiParameter("redemption_id", OpenApiTypes.INT, location=OpenApiParameter.PATH)


class RedemptionDetailApi(APIView):
    # Reading a redemption back is part of placing it: the same scope.
    required_scopes = {"GET": ["redemptions:write"]}

    @extend_schema(
        operation_id="redemptions_retrieve",
        summary=_("Read a redemption this partner placed"),
        tags=["redemptions"],
        parameters=[REDEMPTION_ID],
        responses={200: RedemptionOutputSerializer},
    )
    def get(self, request, redemption_id: int):
        redemption = partner_redemption(partner=request.user.partner, redemption_id=redemption_id)
        return Response(redemption_representation(redemption))


class CancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class RedemptionCancelApi(IdempotentAPIView):
    required_scopes = ["redemptions:write"]

    @extend_schema(
        operation_id="redemptions_cancel",
        summary=_("Cancel a redemption: points back to their lots, stock restored"),
        description=_("Only a `placed` redemption; a shipped one is 422 `validation_error`."),
        tags=["redemptions"],
        request=CancelInputSerializer,
        parameters=[REDEMPTION_ID, idempotency_key_parameter()],
        responses={
            200: RedemptionOutputSerializer,
            (422, PROBLEM_CONTENT_TYPE): problem(_("`validation_error`: no longer cancellable.")),
        },
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request, redemption_id: int):
        serializer = CancelInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        redemption = partner_redemption(partner=request.user.partner, redemption_id=redemption_id)
        cancelled = cancel_redemption(
            redemption=redemption, reason=serializer.validated_data["reason"]
        )
        cancelled.member = redemption.member
        return Response(redemption_representation(cancelled))


# --- Mall link -----------------------------------------------------------------------------
class MallLinkOutputSerializer(serializers.Serializer):
    url = serializers.URLField(help_text=_("Open it once, within 5 minutes."))
    expires_at = serializers.DateTimeField()


class MallLinkApi(APIView):
    required_scopes = {"POST": ["members:write"]}

    @extend_schema(
        operation_id="members_mall_link",
        summary=_("A signed, single-use link into the rewards mall pages"),
        tags=["members"],
        parameters=[
            OpenApiParameter("external_id", OpenApiTypes.STR, location=OpenApiParameter.PATH)
        ],
        request=None,
        responses={201: MallLinkOutputSerializer},
    )
    def post(self, request, external_id: str):
        member = member_by_external_id(external_id=external_id)
        link = create_mall_link(member=member, partner=request.user.partner)
        enter_path = reverse("rewards_mall:enter", args=[link.token])
        base = settings.MALL_BASE_URL.rstrip("/")
        url = f"{base}{enter_path}" if base else request.build_absolute_uri(enter_path)
        return Response(
            {"url": url, "expires_at": _datetime(link.expires_at)},
            status=status.HTTP_201_CREATED,
        )


urlpatterns = [
    path("rewards", RewardListApi.as_view(), name="api-rewards"),
    path("rewards/<str:code>", RewardDetailApi.as_view(), name="api-reward-detail"),
    path("redemptions", RedemptionCreateApi.as_view(), name="api-redemptions"),
    path(
        "redemptions/<int:redemption_id>",
        RedemptionDetailApi.as_view(),
        name="api-redemption-detail",
    ),
    path(
        "redemptions/<int:redemption_id>/cancel",
        RedemptionCancelApi.as_view(),
        name="api-redemption-cancel",
    ),
    path(
        "members/<str:external_id>/mall-link",
        MallLinkApi.as_view(),
        name="api-member-mall-link",
    ),
]
